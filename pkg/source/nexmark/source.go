package nexmark

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/streamd/streamd/internal/pace"
	"github.com/streamd/streamd/pkg/source"
)

// SplitPrefix starts every split id: "nexmark-0" … "nexmark-N-1".
const SplitPrefix = "nexmark-"

var (
	_ source.Source = (*Generator)(nil)
	_ source.Reader = (*Reader)(nil)
)

// Splits returns the generator's splits.
func (g *Generator) Splits(context.Context) ([]source.Split, error) {
	splits := make([]source.Split, g.cfg.Splits)
	for i := range splits {
		splits[i] = source.Split{ID: SplitPrefix + strconv.Itoa(i)}
	}
	return splits, nil
}

// Open returns a reader of a split starting at its start.Offset-th event
// (0 when start is nil).
func (g *Generator) Open(_ context.Context, split source.Split, start *source.Position) (source.Reader, error) {
	s, ok := strings.CutPrefix(split.ID, SplitPrefix)
	idx, err := strconv.Atoi(s)
	if !ok || err != nil || idx < 0 || idx >= g.cfg.Splits || strconv.Itoa(idx) != s {
		return nil, fmt.Errorf("open nexmark split: unknown split %q", split.ID)
	}
	end := g.SplitEvents(idx)
	if end < 0 {
		// An unbounded stream ends where event times would leave the range
		// of timestamps, thousands of years of event time on.
		end = (g.limit - int64(idx) + int64(g.cfg.Splits) - 1) / int64(g.cfg.Splits)
	}
	r := &Reader{g: g, split: idx, end: end}
	if start != nil {
		if start.Offset < 0 {
			return nil, fmt.Errorf("open nexmark split %s: negative offset %d", split.ID, start.Offset)
		}
		r.next = start.Offset
	}
	if g.cfg.EmitRate > 0 {
		r.pacer = pace.New(g.cfg.EmitRate/float64(g.cfg.Splits), g.cfg.Now)
	}
	return r, nil
}

// Close implements source.Source; a generator holds nothing.
func (g *Generator) Close(context.Context) error { return nil }

// Reader reads one split. It is used by one goroutine.
type Reader struct {
	g     *Generator
	split int
	next  int64
	end   int64

	// pacer holds the split to its share of the rate; nil = unthrottled.
	pacer *pace.Pacer

	ev   Event
	buf  []byte
	ends []int
}

// Position is the position of the next event Read returns.
func (r *Reader) Position() source.Position { return source.Position{Offset: r.next} }

// Read appends up to limit events. Messages carry the event time as their
// timestamp, and the event's JSON (FormatJSON) or its 8-byte big-endian
// event number (FormatNative). They stay valid until the next Read.
func (r *Reader) Read(ctx context.Context, b *source.Batch, limit int) error {
	if r.end >= 0 && r.next >= r.end {
		return source.ErrEndOfSplit
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n := int64(limit)
	if n <= 0 {
		return nil
	}
	if r.end >= 0 {
		n = min(n, r.end-r.next)
	}
	if r.pacer != nil {
		due, err := r.pacer.Wait(ctx)
		if err != nil {
			return err
		}
		n = min(n, due)
	}
	r.buf = r.buf[:0]
	r.ends = r.ends[:0]
	first := len(b.Messages)
	native := r.g.cfg.Format == FormatNative
	for i := range n {
		num := r.g.EventNumber(r.split, r.next+i)
		var ts int64
		if native {
			r.buf = binary.BigEndian.AppendUint64(r.buf, uint64(num))
			ts = r.g.TimeOf(num)
		} else {
			r.g.Event(num, &r.ev)
			r.buf = AppendJSON(r.buf, &r.ev)
			ts = r.ev.Time
		}
		r.ends = append(r.ends, len(r.buf))
		b.Messages = append(b.Messages, source.Message{Timestamp: ts, Position: source.Position{Offset: r.next + i}})
	}
	// Slice values only now: appending may have moved the buffer.
	start := 0
	for i, end := range r.ends {
		b.Messages[first+i].Value = r.buf[start:end:end]
		start = end
	}
	r.next += n
	if r.pacer != nil {
		r.pacer.Emitted(n)
	}
	if r.end >= 0 && r.next >= r.end {
		return source.ErrEndOfSplit
	}
	return nil
}

// Close releases the reader's timer.
func (r *Reader) Close() error {
	if r.pacer != nil {
		r.pacer.Stop()
	}
	return nil
}
