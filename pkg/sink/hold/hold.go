// Package hold delays a sink's output until the checkpoint that produced
// it completes: alerts are delivered only once their checkpoint is durable,
// so a crash never delivers an alert that the restored pipeline will
// produce again differently. Rows held at a barrier travel in the
// checkpoint; Commit hands them to the wrapped sink. Recovery commits the
// restored checkpoint's rows again, so a consumer may see the rows of the
// last checkpoint twice after a crash — with the same deterministic alert
// ids, which is what consumers deduplicate on — unless the runtime knows
// the commit completed (it records that in the checkpoint store), or the
// wrapped sink can rewind an interrupted hand-over (a file, see
// sink.Rewinder), in which cases nothing is delivered twice.
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
	// delivered is, by task, the newest checkpoint whose rows were handed
	// to the wrapped sink.
	delivered map[string]int64
}

var (
	_ sink.Transactional       = (*Sink)(nil)
	_ sink.Preparer            = (*Writer)(nil)
	_ sink.CommittedRecoverer  = (*Sink)(nil)
	_ sink.CheckpointCommitter = (*Sink)(nil)
)

// New wraps inner.
func New(inner sink.Sink) *Sink {
	return &Sink{inner: inner, out: make(map[string]sink.Writer), delivered: make(map[string]int64)}
}

// Writer holds one task's rows until a completed checkpoint covers them.
// Rows are kept in segments, one per barrier: a checkpoint that fails
// leaves its segment to the next one, so no row is lost.
type Writer struct {
	s      *Sink
	task   string
	schema *record.Schema
	rows   int
	buf    []byte
	segs   []segment
}

type segment struct {
	id   int64
	rows int
	buf  []byte
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

// Prepare closes the current segment under checkpoint id and returns every
// segment not yet delivered.
func (w *Writer) Prepare(_ context.Context, id int64) ([]byte, error) {
	if w.rows > 0 {
		w.segs = append(w.segs, segment{id: id, rows: w.rows, buf: w.buf})
		w.rows, w.buf = 0, nil
	}
	w.s.mu.Lock()
	done := w.s.delivered[w.task]
	w.s.mu.Unlock()
	kept := w.segs[:0]
	for _, sg := range w.segs {
		if sg.id > done {
			kept = append(kept, sg)
		}
	}
	w.segs = kept
	return w.encode(), nil
}

func (w *Writer) encode() []byte {
	st := []byte{stateVersion}
	st = binary.AppendUvarint(st, uint64(w.schema.Len()))
	for i := 0; i < w.schema.Len(); i++ {
		f := w.schema.Field(i)
		st = binary.AppendUvarint(st, uint64(len(f.Name)))
		st = append(st, f.Name...)
		st = append(st, byte(f.Type))
	}
	st = binary.AppendUvarint(st, uint64(len(w.segs)))
	for _, sg := range w.segs {
		st = binary.AppendVarint(st, sg.id)
		st = binary.AppendUvarint(st, uint64(sg.rows))
		st = binary.AppendUvarint(st, uint64(len(sg.buf)))
		st = append(st, sg.buf...)
	}
	return binary.LittleEndian.AppendUint32(st, crc32.ChecksumIEEE(st))
}

// PrepareFinal returns every row held, for the last checkpoint of the
// task (the end of the input, or a revoked split). Without a checkpoint id
// (0: the final checkpoint of a run, whose id is not known yet) the rows
// get an id above any other, so nothing can supersede them; with one, a
// later writer of the same task goes on with later ids.
func (w *Writer) PrepareFinal(ctx context.Context, id int64) ([]byte, error) {
	if id <= 0 {
		id = 1 << 62
	}
	return w.Prepare(ctx, id)
}

// Close releases the task. Rows that no completed checkpoint covers are
// dropped: the restored pipeline produces them again. (At the end of the
// input the runtime first calls PrepareFinal and commits.)
func (w *Writer) Close(context.Context) error {
	w.rows, w.buf, w.segs = 0, nil, nil
	return nil
}

// Commit delivers the rows of a prepared state's segments that are newer
// than what this task already delivered.
func (s *Sink) Commit(ctx context.Context, task string, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	schema, b, newest, err := decodeState(state, s.delivered[task])
	if err != nil {
		return fmt.Errorf("commit held rows of %s: %w", task, err)
	}
	if b.Len() == 0 {
		s.delivered[task] = max(s.delivered[task], newest)
		return nil
	}
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
	s.delivered[task] = max(s.delivered[task], newest)
	return nil
}

// CommitCheckpoint is Commit for checkpoint id. A wrapped sink that can
// rewind (a file) first records where the hand-over of id starts.
func (s *Sink) CommitCheckpoint(ctx context.Context, id int64, task string, state []byte) error {
	if rw, ok := s.inner.(sink.Rewinder); ok {
		if err := rw.BeginHandover(ctx, id); err != nil {
			return fmt.Errorf("commit held rows of %s: %w", task, err)
		}
	}
	return s.Commit(ctx, task, state)
}

// RecoverCheckpoint is Recover for checkpoint id, whose hand-over may have
// been cut short by the crash: a wrapped sink that can rewind undoes what
// it got of it first, so handing the rows over again repeats nothing.
func (s *Sink) RecoverCheckpoint(ctx context.Context, id int64, states map[string][]byte) error {
	if rw, ok := s.inner.(sink.Rewinder); ok {
		if err := rw.RewindHandover(ctx, id); err != nil {
			return fmt.Errorf("recover held rows: %w", err)
		}
	}
	for task, st := range states {
		if err := s.CommitCheckpoint(ctx, id, task, st); err != nil {
			return err
		}
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

// RecoverCommitted is Recover for a checkpoint whose commit completed: its
// rows were delivered, so nothing is sent again.
func (s *Sink) RecoverCommitted(context.Context, map[string][]byte) error { return nil }

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

// decodeState returns the rows of the segments newer than after, and the
// newest segment id.
func decodeState(st []byte, after int64) (*record.Schema, *record.Batch, int64, error) {
	schema, b, newest, err := decodeSegments(st, after)
	return schema, b, newest, err
}

func decodeSegments(st []byte, after int64) (*record.Schema, *record.Batch, int64, error) {
	if len(st) < 5 || st[0] != stateVersion {
		return nil, nil, 0, errCorrupt
	}
	body := st[:len(st)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(st[len(st)-4:]) {
		return nil, nil, 0, fmt.Errorf("%w: checksum mismatch", errCorrupt)
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
		return nil, nil, 0, errCorrupt
	}
	fields := make([]record.Field, nf)
	for i := range fields {
		l, ok := uv()
		if !ok || l+1 > uint64(len(p)) {
			return nil, nil, 0, errCorrupt
		}
		fields[i] = record.Field{Name: string(p[:l]), Type: record.Type(p[l])}
		p = p[l+1:]
	}
	schema, err := record.NewSchema(fields...)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	nsegs, ok := uv()
	if !ok || nsegs > uint64(len(p)) {
		return nil, nil, 0, errCorrupt
	}
	b := record.NewBatch(len(fields), 0)
	var newest int64
	for sgi := uint64(0); sgi < nsegs; sgi++ {
		id, n := binary.Varint(p)
		if n <= 0 {
			return nil, nil, 0, errCorrupt
		}
		p = p[n:]
		rows, ok1 := uv()
		size, ok2 := uv()
		if !ok1 || !ok2 || size > uint64(len(p)) || rows > size {
			return nil, nil, 0, errCorrupt
		}
		seg := p[:size]
		p = p[size:]
		newest = max(newest, id)
		if id <= after {
			continue // delivered before
		}
		for r := uint64(0); r < rows; r++ {
			t, n := binary.Varint(seg)
			if n <= 0 {
				return nil, nil, 0, errCorrupt
			}
			seg = seg[n:]
			row := b.AppendRow(t)
			for i := range row {
				if row[i], seg, err = window.ReadValue(seg); err != nil {
					return nil, nil, 0, fmt.Errorf("%w: %w", errCorrupt, err)
				}
			}
		}
		if len(seg) != 0 {
			return nil, nil, 0, fmt.Errorf("%w: %d trailing bytes in a segment", errCorrupt, len(seg))
		}
	}
	if len(p) != 0 {
		return nil, nil, 0, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(p))
	}
	return schema, b, newest, nil
}

// Check forwards to the wrapped sink's startup check, if it has one.
func (s *Sink) Check(ctx context.Context) error {
	if c, ok := s.inner.(interface{ Check(context.Context) error }); ok {
		return c.Check(ctx)
	}
	return nil
}
