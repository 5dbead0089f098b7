package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamd/streamd/pkg/sink"
)

// RowHeader is the message header that names the row a message carries,
// when the sink delivers exactly once: a hand-over a crash interrupted is
// done again without the messages the topic already has. Its value is
// the nonce (8 bytes, big endian), the segment and the index (uvarints)
// and the task.
const RowHeader = "streamd-row"

func appendRowName(b []byte, id sink.RowID) []byte {
	b = binary.BigEndian.AppendUint64(b, id.Nonce)
	b = binary.AppendUvarint(b, uint64(id.Segment))
	b = binary.AppendUvarint(b, uint64(id.Index))
	return append(b, id.Task...)
}

// parseRowName reads a RowHeader value; ok is false for one this version
// does not write.
func parseRowName(b []byte) (id sink.RowID, ok bool) {
	if len(b) < 10 {
		return id, false
	}
	id.Nonce = binary.BigEndian.Uint64(b)
	b = b[8:]
	seg, n := binary.Uvarint(b)
	if n <= 0 || seg > 1<<62 {
		return id, false
	}
	b = b[n:]
	idx, n := binary.Uvarint(b)
	if n <= 0 || idx > 1<<31 {
		return id, false
	}
	id.Segment, id.Index, id.Task = int64(seg), int(idx), string(b[n:])
	return id, true
}

// Position returns the end offsets of the topic's partitions.
func (s *Sink) Position(ctx context.Context) ([]byte, error) {
	ends, err := s.offsets(ctx, kafka.LastOffset)
	if err != nil {
		return nil, fmt.Errorf("position of kafka sink %s: %w", s.cfg.Name, err)
	}
	return encodePosition(ends), nil
}

// offsets lists the first or last offsets (which) of every partition.
func (s *Sink) offsets(ctx context.Context, which int64) (map[int]int64, error) {
	parts, err := s.conn.Partitions(ctx, []string{s.cfg.Topic})
	if err != nil {
		return nil, err
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, p := range parts[s.cfg.Topic] {
		req.Topics[s.cfg.Topic] = append(req.Topics[s.cfg.Topic], kafka.OffsetRequest{Partition: p, Timestamp: which})
	}
	cl := &kafka.Client{Addr: kafka.TCP(s.cfg.Brokers...), Transport: s.transport}
	res, err := cl.ListOffsets(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64)
	for _, p := range res.Topics[s.cfg.Topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("partition %d: %w", p.Partition, p.Error)
		}
		if which == kafka.LastOffset {
			out[p.Partition] = p.LastOffset
		} else {
			out[p.Partition] = p.FirstOffset
		}
	}
	if len(out) != len(parts[s.cfg.Topic]) {
		return nil, fmt.Errorf("list offsets of %s: %d of %d partitions answered", s.cfg.Topic, len(out), len(parts[s.cfg.Topic]))
	}
	return out, nil
}

func encodePosition(offsets map[int]int64) []byte {
	parts := make([]int, 0, len(offsets))
	for p := range offsets {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	b := binary.AppendUvarint(nil, uint64(len(parts)))
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(p))
		b = binary.AppendUvarint(b, uint64(max(offsets[p], 0)))
	}
	return b
}

func decodePosition(b []byte) (map[int]int64, error) {
	bad := fmt.Errorf("kafka position of %d bytes does not decode", len(b))
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, bad
	}
	b = b[k:]
	out := make(map[int]int64, n)
	for range n {
		p, k := binary.Uvarint(b)
		if k <= 0 || p > 1<<31 {
			return nil, bad
		}
		b = b[k:]
		off, k := binary.Uvarint(b)
		if k <= 0 || off > 1<<62 {
			return nil, bad
		}
		b = b[k:]
		out[int(p)] = int64(off)
	}
	if len(b) != 0 {
		return nil, bad
	}
	return out, nil
}

// readIdle is how long Delivered waits for more of a partition before it
// checks whether the partition's end (when it began) is behind it: the
// last offsets of a partition may hold no message to return (transaction
// markers of another producer).
const readIdle = 2 * time.Second

// readStuck is how long Delivered goes without progress in a partition
// before it fails.
const readStuck = 2 * time.Minute

// Delivered reads every partition from pos (its first offset when pos is
// nil or does not list it) to its end when the call began and calls fn
// with the rows named under nonce.
func (s *Sink) Delivered(ctx context.Context, pos []byte, nonce uint64, fn func(sink.RowID)) error {
	var from map[int]int64
	if pos != nil {
		var err error
		if from, err = decodePosition(pos); err != nil {
			return err
		}
	}
	ends, err := s.offsets(ctx, kafka.LastOffset)
	if err != nil {
		return fmt.Errorf("read back kafka sink %s: %w", s.cfg.Name, err)
	}
	firsts, err := s.offsets(ctx, kafka.FirstOffset)
	if err != nil {
		return fmt.Errorf("read back kafka sink %s: %w", s.cfg.Name, err)
	}
	parts := make([]int, 0, len(ends))
	for p := range ends {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		start, ok := from[p]
		if !ok || start < firsts[p] {
			start = firsts[p]
		}
		if err := s.readPartition(ctx, p, start, ends[p], nonce, fn); err != nil {
			return fmt.Errorf("read back kafka sink %s: %w", s.cfg.Name, err)
		}
	}
	return nil
}

// readPartition calls fn with the rows named under nonce in partition p
// from start up to end.
func (s *Sink) readPartition(ctx context.Context, p int, start, end int64, nonce uint64, fn func(sink.RowID)) error {
	if start >= end {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: s.cfg.Brokers, Topic: s.cfg.Topic, Partition: p, Dialer: s.conn.Dialer(),
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		return fmt.Errorf("partition %d: %w", p, err)
	}
	lastProgress := time.Now()
	for {
		fctx, cancel := context.WithTimeout(ctx, readIdle)
		m, err := r.FetchMessage(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("partition %d at offset %d: %w", p, r.Offset(), err)
			}
			if r.Offset() >= end {
				return nil
			}
			if time.Since(lastProgress) > readStuck {
				return fmt.Errorf("partition %d: no progress at offset %d of %d for %s", p, r.Offset(), end, readStuck)
			}
			continue
		}
		lastProgress = time.Now()
		if m.Offset >= end {
			return nil
		}
		for _, h := range m.Headers {
			if h.Key != RowHeader {
				continue
			}
			if id, ok := parseRowName(h.Value); ok && id.Nonce == nonce {
				fn(id)
			}
		}
		if m.Offset+1 >= end {
			return nil
		}
	}
}
