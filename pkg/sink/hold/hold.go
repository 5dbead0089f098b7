// Package hold delays a sink's output until the checkpoint that produced
// it completes: alerts are delivered only once their checkpoint is durable,
// so a crash never delivers an alert that the restored pipeline will
// produce again differently. Rows held at a barrier travel in the
// checkpoint; Commit hands them to the wrapped sink. Recovery commits the
// restored checkpoint's rows again, so a consumer may see the rows of the
// last checkpoint twice after a crash — with the same deterministic alert
// ids, which is what consumers deduplicate on.
package hold

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/window"
)

const stateVersion = 1

// Sink wraps another sink.
type Sink struct {
	inner sink.Sink
	mu    sync.Mutex
	// out holds the wrapped sink's writers used by Commit, by task.
	out map[string]sink.Writer
}

var (
	_ sink.Transactional = (*Sink)(nil)
	_ sink.Preparer      = (*Writer)(nil)
)

// New wraps inner.
func New(inner sink.Sink) *Sink { return &Sink{inner: inner, out: make(map[string]sink.Writer)} }

// Writer holds one task's rows until the next barrier.
type Writer struct {
	s      *Sink
	task   string
	schema *record.Schema
	rows   int
	buf    []byte
}

// NewWriter returns a holding writer for task.
func (s *Sink) NewWriter(task string, schema *record.Schema) (sink.Writer, error) {
	return &Writer{s: s, task: task, schema: schema}, nil
}

// Write holds the rows.
func (w *Writer) Write(_ context.Context, b *record.Batch) error {
	for i := 0; i < b.Len(); i++ {
		w.buf = binary.AppendVarint(w.buf, b.Times[i])
		for _, v := range b.Row(i) {
			w.buf = window.AppendValue(w.buf, v)
		}
		w.rows++
	}
	return nil
}

// Prepare hands the rows held so far to the checkpoint.
func (w *Writer) Prepare(context.Context, int64) ([]byte, error) {
	st := []byte{stateVersion}
	st = binary.AppendUvarint(st, uint64(w.schema.Len()))
	for i := 0; i < w.schema.Len(); i++ {
		f := w.schema.Field(i)
		st = binary.AppendUvarint(st, uint64(len(f.Name)))
		st = append(st, f.Name...)
		st = append(st, byte(f.Type))
	}
	st = binary.AppendUvarint(st, uint64(w.rows))
	st = append(st, w.buf...)
	st = binary.LittleEndian.AppendUint32(st, crc32.ChecksumIEEE(st))
	w.rows, w.buf = 0, w.buf[:0]
	return st, nil
}

// Close delivers rows no checkpoint took (the input ended without a final
// checkpoint: nothing will replay them), then releases the task.
func (w *Writer) Close(ctx context.Context) error {
	if w.rows == 0 {
		return nil
	}
	st, _ := w.Prepare(ctx, 0)
	return w.s.Commit(ctx, w.task, st)
}

// Commit delivers the rows of a prepared state to the wrapped sink.
func (s *Sink) Commit(ctx context.Context, task string, state []byte) error {
	schema, b, err := decodeState(state)
	if err != nil {
		return fmt.Errorf("commit held rows of %s: %w", task, err)
	}
	if b.Len() == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.out[task]
	if w == nil {
		if w, err = s.inner.NewWriter(task, schema); err != nil {
			return fmt.Errorf("commit held rows of %s: %w", task, err)
		}
		s.out[task] = w
	}
	if err := w.Write(ctx, b); err != nil {
		return fmt.Errorf("commit held rows of %s: %w", task, err)
	}
	return nil
}

// Recover delivers the rows of the restored checkpoint again.
func (s *Sink) Recover(ctx context.Context, states map[string][]byte) error {
	for task, st := range states {
		if err := s.Commit(ctx, task, st); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the wrapped sink's writers and the sink.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for task, w := range s.out {
		errs = append(errs, w.Close(ctx))
		delete(s.out, task)
	}
	errs = append(errs, s.inner.Close(ctx))
	return errors.Join(errs...)
}

var errCorrupt = errors.New("corrupt held-rows state")

func decodeState(st []byte) (*record.Schema, *record.Batch, error) {
	if len(st) < 5 || st[0] != stateVersion {
		return nil, nil, errCorrupt
	}
	body := st[:len(st)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(st[len(st)-4:]) {
		return nil, nil, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	p := body[1:]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	nf, ok := uv()
	if !ok || nf > uint64(len(p)) {
		return nil, nil, errCorrupt
	}
	fields := make([]record.Field, nf)
	for i := range fields {
		l, ok := uv()
		if !ok || l+1 > uint64(len(p)) {
			return nil, nil, errCorrupt
		}
		fields[i] = record.Field{Name: string(p[:l]), Type: record.Type(p[l])}
		p = p[l+1:]
	}
	schema, err := record.NewSchema(fields...)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	rows, ok := uv()
	if !ok || rows > uint64(len(p)) {
		return nil, nil, errCorrupt
	}
	b := record.NewBatch(len(fields), int(rows))
	for r := uint64(0); r < rows; r++ {
		t, n := binary.Varint(p)
		if n <= 0 {
			return nil, nil, errCorrupt
		}
		p = p[n:]
		row := b.AppendRow(t)
		for i := range row {
			if row[i], p, err = window.ReadValue(p); err != nil {
				return nil, nil, fmt.Errorf("%w: %w", errCorrupt, err)
			}
		}
	}
	if len(p) != 0 {
		return nil, nil, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(p))
	}
	return schema, b, nil
}
