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
//
// What a writer holds is bounded: past Config.MaxHeldBytes, the producing
// task waits before it queues its next write (Writer.AwaitRoom, called by
// the runtime on the task's goroutine) — the task stops, and with it,
// through the exchange, the sources — until a completed checkpoint has
// delivered the rows it closed, and the writer asks the coordinator for a
// checkpoint as soon as it is over the bound. Write itself never waits:
// it runs on the writer's own goroutine, where the Prepare of the barrier
// that would release it may be queued behind it. Nothing is dropped and nothing delivered twice: the wait only
// delays the task. A writer waits only for a checkpoint that can still
// complete without it (one whose barrier it has already passed); when
// none can, it asks for one and goes on, so it never waits for a barrier
// stuck behind itself.
package hold

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/internal/promreg"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// stateVersion is the first byte of a held-rows state. Version 2 follows
// the type byte of a nested field with its members (record.AppendFieldType);
// it is written only for schemas with nested fields, so the state of a
// flat schema stays version 1, which older binaries read.
const (
	stateVersionFlat = 1
	stateVersion     = 2
)

// DefaultMaxHeldBytes bounds what a sink holds when Config leaves it
// unset: 16 MiB of encoded rows (tens of thousands of alerts).
const DefaultMaxHeldBytes = 16 << 20

// minShare is the least a writer may hold before it waits, however many
// writers share the sink's bound: below it, every few rows would ask for
// a checkpoint.
const minShare = 256 << 10

// Config configures a holding sink.
type Config struct {
	// Name labels the sink's metrics.
	Name string
	// MaxHeldBytes bounds the encoded rows the sink holds until a
	// checkpoint delivers them. It is shared evenly by the sink's writers
	// (its producing tasks), each getting at least 256 KiB (or all of it,
	// when smaller); a writer past its share makes its task wait.
	// 0 means DefaultMaxHeldBytes.
	MaxHeldBytes int64
}

// Sink wraps another sink.
type Sink struct {
	inner sink.Sink
	max   int64
	// delivering serializes deliveries to the wrapped sink and guards
	// out. It is a channel rather than a mutex so that goroutines queued
	// behind a slow delivery count as blocked (testing/synctest).
	delivering chan struct{}
	// out holds the wrapped sink's writers used by Commit, by task.
	out map[string]sink.Writer

	// st guards what writers wait on; it is never held across I/O, so
	// a slow delivery does not stall a task's Prepare.
	st sync.Mutex
	// delivered is, by task, the newest checkpoint whose rows were handed
	// to the wrapped sink; failed the newest whose delivery failed.
	delivered map[string]int64
	failed    map[string]int64
	// failure is the failed hand-over being retried (with the next
	// checkpoint), nil once every task delivered what failed.
	failure *store.RetryError
	// started is the newest checkpoint whose barriers are on their way,
	// acked the newest every task has acknowledged (it completes without
	// any task's help), aborted the newest the coordinator gave up on (or
	// could not start).
	started, acked, aborted int64
	// changed is closed (and replaced) whenever one of the above moves.
	changed chan struct{}
	// request asks the coordinator for a checkpoint; nil until bound.
	request func()

	// mark is where the newest hand-over began in a wrapped sink that
	// reads its output back (sink.ReadBacker); nil until a checkpoint
	// asks for one, or one is restored.
	mark *handoverMark
	// skipSeen is what the output had when the hand-over of checkpoint
	// skipFor was retried (under skipMark); only the coordinator's commit
	// goroutine touches them.
	skipFor  int64
	skipMark *handoverMark
	skipSeen map[sink.RowID]struct{}

	heldBytes, heldRows atomic.Int64
	// writers counts the open writers sharing max.
	writers atomic.Int64
	m       *holdMetrics
}

type holdMetrics struct {
	bytes, rows prometheus.Gauge
	waited      prometheus.Counter
	requests    prometheus.Counter
	skips       prometheus.Counter
}

var (
	_ sink.Transactional       = (*Sink)(nil)
	_ sink.Preparer            = (*Writer)(nil)
	_ sink.CommittedRecoverer  = (*Sink)(nil)
	_ sink.CheckpointCommitter = (*Sink)(nil)
	_ sink.CheckpointAware     = (*Sink)(nil)
	_ sink.RoomWaiter          = (*Writer)(nil)
	_ sink.Retrier             = (*Sink)(nil)
)

// New wraps inner with the default bound and no metrics.
func New(inner sink.Sink) *Sink { return NewWith(inner, Config{}, nil) }

// NewWith wraps inner; reg may be nil (no metrics).
func NewWith(inner sink.Sink, cfg Config, reg prometheus.Registerer) *Sink {
	s := &Sink{
		inner: inner, max: cfg.MaxHeldBytes,
		delivering: make(chan struct{}, 1),
		out:        make(map[string]sink.Writer),
		delivered:  make(map[string]int64), failed: make(map[string]int64),
		changed: make(chan struct{}),
	}
	if s.max <= 0 {
		s.max = DefaultMaxHeldBytes
	}
	if reg != nil {
		f := promreg.With(reg)
		l := prometheus.Labels{"sink": cfg.Name}
		s.m = &holdMetrics{
			bytes:    f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_sink_held_bytes", Help: "Encoded rows an exactly-once sink holds until their checkpoint completes."}, []string{"sink"}).With(l),
			rows:     f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_sink_held_rows", Help: "Rows an exactly-once sink holds until their checkpoint completes."}, []string{"sink"}).With(l),
			waited:   f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_sink_held_wait_seconds_total", Help: "Time producing tasks waited because an exactly-once sink held its maximum: backpressure from delivery."}, []string{"sink"}).With(l),
			requests: f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_sink_held_checkpoint_requests_total", Help: "Checkpoints an exactly-once sink asked for early because a writer held its maximum."}, []string{"sink"}).With(l),
			skips:    f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_sink_handover_skipped_rows_total", Help: "Held rows a repeated hand-over left out because the sink's output, read back, already had them."}, []string{"sink"}).With(l),
		}
	}
	return s
}

// BindCheckpoints receives the coordinator's request function: from then
// on writers past their bound wait for checkpoints and ask for them.
// Without it (no checkpoints) a writer never waits: nothing would release it.
func (s *Sink) BindCheckpoints(request func()) {
	s.st.Lock()
	s.request = request
	s.st.Unlock()
}

// raise moves one of the checkpoint marks up to id and wakes the writers
// waiting on the marks.
func (s *Sink) raise(mark *int64, id int64) {
	s.st.Lock()
	if id > *mark {
		*mark = id
		s.notifyLocked()
	}
	s.st.Unlock()
}

// CheckpointStarted records that the barriers of checkpoint id are on
// their way to every task: a writer waiting for a barrier may go on to
// meet it.
func (s *Sink) CheckpointStarted(id int64) {
	s.raise(&s.started, id)
}

// CheckpointAcknowledged records that every task has acknowledged
// checkpoint id: from now on it completes (or fails) without any task's
// help, so a writer may wait for it.
func (s *Sink) CheckpointAcknowledged(id int64) {
	s.raise(&s.acked, id)
}

// CheckpointAborted records that checkpoint id will not complete, or could
// not start: writers waiting for it stop waiting (their rows travel in a
// later checkpoint). math.MaxInt64 means no checkpoint will come any more.
func (s *Sink) CheckpointAborted(id int64) {
	s.raise(&s.aborted, id)
}

// share is what one writer may hold before its task waits.
func (s *Sink) share() int64 {
	n := max(s.writers.Load(), 1)
	return max(s.max/n, min(s.max, minShare))
}

// notifyLocked wakes every waiting writer; s.st is held.
func (s *Sink) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Sink) deliveredTo(task string) int64 {
	s.st.Lock()
	defer s.st.Unlock()
	return s.delivered[task]
}

func (s *Sink) setDelivered(task string, id int64) {
	s.st.Lock()
	if id > s.delivered[task] {
		s.delivered[task] = id
		s.notifyLocked()
	}
	if s.failure != nil && !s.pendingLocked() {
		s.failure = nil
	}
	s.st.Unlock()
}

func (s *Sink) setFailed(task string, id int64, err error) {
	s.st.Lock()
	if id > s.failed[task] {
		s.failed[task] = id
		s.notifyLocked()
	}
	if s.failure == nil {
		s.failure = &store.RetryError{Since: time.Now()}
	}
	s.failure.Requests++
	s.failure.Err = err
	s.st.Unlock()
}

// Retrying implements sink.Retrier: the wrapped sink's failure being
// retried, or else a hand-over that failed and waits for the next
// checkpoint to be tried again; nil when rows are being delivered.
func (s *Sink) Retrying() error {
	if rt, ok := s.inner.(sink.Retrier); ok {
		if err := rt.Retrying(); err != nil {
			return err
		}
	}
	s.st.Lock()
	defer s.st.Unlock()
	if s.failure == nil {
		return nil
	}
	f := *s.failure
	return &f
}

// skipped counts rows a repeated hand-over left out.
func (s *Sink) skipped(n int) {
	if s.m != nil {
		s.m.skips.Add(float64(n))
	}
}

// held adds to the sink's totals (and gauges) what one writer gained or
// released.
func (s *Sink) held(bytes, rows int64) {
	b, r := s.heldBytes.Add(bytes), s.heldRows.Add(rows)
	if s.m != nil {
		s.m.bytes.Set(float64(b))
		s.m.rows.Set(float64(r))
	}
}

// Writer holds one task's rows until a completed checkpoint covers them.
// Rows are kept in segments, one per barrier: a checkpoint that fails
// leaves its segment to the next one, so no row is lost.
type Writer struct {
	s      *Sink
	task   string
	schema *record.Schema
	// rows and buf, the open segment, belong to the writer's goroutine
	// (Write, Prepare, Close); mu guards the rest, which AwaitRoom reads
	// on the producing task's goroutine.
	rows int
	buf  []byte
	mu   sync.Mutex
	segs []segment
	// bytes is what the writer holds: buf and every segment.
	bytes int64
	// prepared is the checkpoint of the last barrier that passed the
	// writer; requested is set once it asked for a checkpoint after it.
	prepared  int64
	requested bool
	closed    bool
}

type segment struct {
	id   int64
	rows int
	buf  []byte
}

// NewWriter returns a holding writer for task.
func (s *Sink) NewWriter(task string, schema *record.Schema) (sink.Writer, error) {
	s.writers.Add(1)
	return &Writer{s: s, task: task, schema: schema}, nil
}

// Write holds the rows. It never waits: the task waits before queueing
// it, in AwaitRoom.
func (w *Writer) Write(_ context.Context, b *record.Batch) error {
	n := len(w.buf)
	for i := 0; i < b.Len(); i++ {
		w.buf = binary.AppendVarint(w.buf, b.Times[i])
		for _, v := range b.Row(i) {
			w.buf = record.AppendValue(w.buf, v)
		}
		w.rows++
	}
	added := int64(len(w.buf) - n)
	w.mu.Lock()
	if len(w.segs) > 0 {
		w.pruneLocked(w.s.deliveredTo(w.task)) // free what was delivered meanwhile
	}
	w.bytes += added
	w.mu.Unlock()
	w.s.held(added, int64(b.Len()))
	return nil
}

// AwaitRoom blocks while the writer holds its share of the sink's bound
// (Config.MaxHeldBytes over the open writers), until a completed
// checkpoint has delivered what it closed — once every task has
// acknowledged that checkpoint, so none needs this one. When nothing it
// closed is on its way to delivery, only a barrier still to come through
// its task can release rows: it asks for a checkpoint and waits until one
// has started — its barrier then comes behind what is already in flight,
// so the task goes on to meet it — or until none can start. It never
// waits for anything that needs its own task. A cancelled ctx ends the
// wait (the rows are kept: nothing is lost). It returns how long it
// waited.
//
// It runs on the producing task's goroutine, between the task's events:
// every Prepare for a barrier the task passed has returned, so the
// writer's last prepared checkpoint is the task's. Writes queued but not
// yet run are not counted: a writer holds at most its share plus its
// queue.
func (w *Writer) AwaitRoom(ctx context.Context) time.Duration {
	s := w.s
	var start time.Time
	defer func() {
		if !start.IsZero() && s.m != nil {
			s.m.waited.Add(time.Since(start).Seconds())
		}
	}()
	for {
		done := s.deliveredTo(w.task)
		w.mu.Lock()
		w.pruneLocked(done)
		if w.bytes < s.share() {
			w.mu.Unlock()
			break
		}
		newest := int64(0)
		if n := len(w.segs); n > 0 {
			newest = w.segs[n-1].id
		}
		prepared := w.prepared
		s.st.Lock()
		request, changed := s.request, s.changed
		// The checkpoint of the last barrier may still need this task (an
		// asynchronous snapshot finishes on its goroutine): no waiting
		// until every task has acknowledged it.
		mine := prepared > s.acked && prepared > s.aborted
		// The newest closed segment's checkpoint covers every older one:
		// it is worth waiting for while it may still deliver.
		pending := newest > 0 && newest > s.aborted && newest > s.failed[w.task]
		barrier := s.started > prepared || s.aborted > prepared
		s.st.Unlock()
		if request == nil || mine || !pending && barrier {
			// No checkpoints (nothing would release the rows), one that
			// waits for this task, or a barrier coming (or none can): go
			// on.
			w.mu.Unlock()
			break
		}
		ask := !pending && !w.requested
		if ask {
			w.requested = true
		}
		w.mu.Unlock()
		if ask {
			request()
			if s.m != nil {
				s.m.requests.Inc()
			}
		}
		if start.IsZero() {
			start = time.Now()
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return time.Since(start)
		}
	}
	if start.IsZero() {
		return 0
	}
	return time.Since(start)
}

// pruneLocked drops the segments a completed checkpoint (done) delivered;
// w.mu is held.
func (w *Writer) pruneLocked(done int64) {
	kept := w.segs[:0]
	var rows, bytes int64
	for _, sg := range w.segs {
		if sg.id > done {
			kept = append(kept, sg)
			continue
		}
		rows += int64(sg.rows)
		bytes += int64(len(sg.buf))
	}
	clear(w.segs[len(kept):])
	w.segs = kept
	if bytes > 0 || rows > 0 {
		w.bytes -= bytes
		w.s.held(-bytes, -rows)
	}
}

// Prepare closes the current segment under checkpoint id and returns every
// segment not yet delivered.
func (w *Writer) Prepare(_ context.Context, id int64) ([]byte, error) {
	done := w.s.deliveredTo(w.task)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rows > 0 {
		w.segs = append(w.segs, segment{id: id, rows: w.rows, buf: w.buf})
		w.rows, w.buf = 0, nil
	}
	w.prepared, w.requested = id, false
	w.pruneLocked(done)
	return w.encode(), nil
}

func (w *Writer) encode() []byte {
	st := []byte{stateVersionFlat}
	st = binary.AppendUvarint(st, uint64(w.schema.Len()))
	for i := 0; i < w.schema.Len(); i++ {
		f := w.schema.Field(i)
		if f.Type.Nested() {
			st[0] = stateVersion
		}
		st = binary.AppendUvarint(st, uint64(len(f.Name)))
		st = append(st, f.Name...)
		st = record.AppendFieldType(st, f)
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
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.s.writers.Add(-1)
	w.s.st.Lock()
	w.s.notifyLocked() // the other writers' shares grew
	w.s.st.Unlock()
	var rows int64
	for _, sg := range w.segs {
		rows += int64(sg.rows)
	}
	w.s.held(-w.bytes, -rows-int64(w.rows))
	w.rows, w.buf, w.segs, w.bytes = 0, nil, nil, 0
	return nil
}

// Commit delivers the rows of a prepared state's segments that are newer
// than what this task already delivered.
func (s *Sink) Commit(ctx context.Context, task string, state []byte) error {
	return s.commit(ctx, task, state, 0, nil)
}

// commit is Commit with the rows named under nonce (when non-zero and the
// wrapped writer carries names), leaving out those skip holds.
func (s *Sink) commit(ctx context.Context, task string, state []byte, nonce uint64, skip map[sink.RowID]struct{}) error {
	s.delivering <- struct{}{}
	defer func() { <-s.delivering }()
	// Rows are decoded and handed over a chunk at a time: decoded rows
	// take several times their encoded size, and a writer may hold its
	// whole bound.
	w := s.out[task]
	var ids []sink.RowID
	newest, err := decodeChunks(state, s.deliveredTo(task), commitChunk, func(schema *record.Schema, b *record.Batch, seg int64, first int) error {
		if b.Len() == 0 {
			return nil
		}
		if w == nil {
			var err error
			if w, err = s.inner.NewWriter(task, schema); err != nil {
				return err
			}
			s.out[task] = w
		}
		iw, named := w.(sink.IdentifiedWriter)
		if !named || nonce == 0 {
			return w.Write(ctx, b)
		}
		ids = ids[:0]
		var kept *record.Batch
		for i := 0; i < b.Len(); i++ {
			id := sink.RowID{Nonce: nonce, Task: task, Segment: seg, Index: first + i}
			if _, ok := skip[id]; ok {
				if kept == nil { // the rows before this one are kept
					kept = record.NewBatch(b.Width, b.Len())
					for j := range i {
						kept.AppendFrom(b, j)
					}
				}
				s.skipped(1)
				continue
			}
			if kept != nil {
				kept.AppendFrom(b, i)
			}
			ids = append(ids, id)
		}
		if kept != nil {
			b = kept
		}
		if b.Len() == 0 {
			return nil
		}
		return iw.WriteIdentified(ctx, b, ids)
	})
	if err != nil {
		if errors.Is(err, errCorrupt) {
			// Waiting writers must not wait for rows that cannot be delivered.
			newest = math.MaxInt64
		}
		err = fmt.Errorf("commit held rows of %s: %w", task, err)
		s.setFailed(task, newest, err)
		return err
	}
	s.setDelivered(task, newest)
	return nil
}

// HandoverMark returns, for a wrapped sink that reads its output back,
// where the hand-over of checkpoint id's rows begins at the earliest, and
// the nonce its rows are named under. After a hand-over that failed (its
// rows travel again in this checkpoint, some of them already delivered)
// the older mark is kept, and so is it when the output's position cannot
// be read now: an older position is still a lower bound.
func (s *Sink) HandoverMark(ctx context.Context, _ int64) []byte {
	rb, ok := s.inner.(sink.ReadBacker)
	if !ok {
		return nil
	}
	s.st.Lock()
	m, pending := s.mark, s.pendingLocked()
	s.st.Unlock()
	if m == nil || !pending {
		pctx, cancel := context.WithTimeout(ctx, markTimeout)
		pos, err := rb.Position(pctx)
		cancel()
		switch {
		case err == nil:
			m = &handoverMark{nonce: newNonce(), pos: pos, known: true}
		case m == nil:
			// Nothing older to fall back to: recovery reads the whole output.
			m = &handoverMark{nonce: newNonce()}
		}
		s.st.Lock()
		s.mark = m
		s.st.Unlock()
	}
	return m.encode()
}

// pendingLocked reports a task whose last hand-over failed after it may
// have delivered part of its rows; s.st is held.
func (s *Sink) pendingLocked() bool {
	for task, f := range s.failed {
		if f > s.delivered[task] {
			return true
		}
	}
	return false
}

// CommitCheckpoint is Commit for checkpoint id. A wrapped sink that can
// rewind (a file) first records where the hand-over of id starts; one
// that reads its output back gets the rows named, and after a failed
// hand-over it is read back first so that rows already delivered are not
// delivered again.
func (s *Sink) CommitCheckpoint(ctx context.Context, id int64, task string, state []byte) error {
	if rw, ok := s.inner.(sink.Rewinder); ok {
		if err := rw.BeginHandover(ctx, id); err != nil {
			return fmt.Errorf("commit held rows of %s: %w", task, err)
		}
	}
	s.st.Lock()
	m := s.mark
	retry := s.failed[task] > s.delivered[task]
	s.st.Unlock()
	if m == nil {
		return s.Commit(ctx, task, state)
	}
	var skip map[sink.RowID]struct{}
	if retry {
		// Read back once per checkpoint, for every task that retries.
		if s.skipFor != id || s.skipMark != m {
			seen, err := s.readBack(ctx, m)
			if err != nil {
				return fmt.Errorf("commit held rows of %s: %w", task, err)
			}
			s.skipFor, s.skipMark, s.skipSeen = id, m, seen
		}
		skip = s.skipSeen
	}
	return s.commit(ctx, task, state, m.nonce, skip)
}

// readBack returns the names of the rows under m's nonce that the output
// already has.
func (s *Sink) readBack(ctx context.Context, m *handoverMark) (map[sink.RowID]struct{}, error) {
	rb := s.inner.(sink.ReadBacker)
	var pos []byte
	if m.known {
		pos = m.pos
	}
	seen := make(map[sink.RowID]struct{})
	if err := rb.Delivered(ctx, pos, m.nonce, func(id sink.RowID) { seen[id] = struct{}{} }); err != nil {
		return nil, fmt.Errorf("read back delivered rows: %w", err)
	}
	return seen, nil
}

// RecoverCheckpoint is Recover for checkpoint id, whose hand-over may have
// been cut short by the crash: a wrapped sink that can rewind undoes what
// it got of it first, and one that reads its output back is read from the
// checkpoint's mark, so handing the rows over again repeats nothing.
// Without a mark (a checkpoint written before marks existed) the rows are
// handed over again whole.
func (s *Sink) RecoverCheckpoint(ctx context.Context, id int64, states map[string][]byte, mark []byte) error {
	if rw, ok := s.inner.(sink.Rewinder); ok {
		if err := rw.RewindHandover(ctx, id); err != nil {
			return fmt.Errorf("recover held rows: %w", err)
		}
	}
	var skip map[sink.RowID]struct{}
	var nonce uint64
	if _, ok := s.inner.(sink.ReadBacker); ok && mark != nil {
		m, err := decodeMark(mark)
		if err != nil {
			return fmt.Errorf("recover held rows: %w", err)
		}
		if skip, err = s.readBack(ctx, m); err != nil {
			return fmt.Errorf("recover held rows: %w", err)
		}
		nonce = m.nonce
		s.st.Lock()
		s.mark = m
		s.st.Unlock()
	}
	for task, st := range states {
		if rw, ok := s.inner.(sink.Rewinder); ok {
			if err := rw.BeginHandover(ctx, id); err != nil {
				return fmt.Errorf("recover held rows of %s: %w", task, err)
			}
		}
		if err := s.commit(ctx, task, st, nonce, skip); err != nil {
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
	s.delivering <- struct{}{}
	defer func() { <-s.delivering }()
	var errs []error
	for task, w := range s.out {
		errs = append(errs, w.Close(ctx))
		delete(s.out, task)
	}
	errs = append(errs, s.inner.Close(ctx))
	return errors.Join(errs...)
}

var errCorrupt = errors.New("corrupt held-rows state")

// markTimeout bounds how long a checkpoint waits for the wrapped sink's
// output position; past it, the older mark is kept.
const markTimeout = 5 * time.Second

const markVersion = 1

// handoverMark is where a hand-over began in the wrapped sink's output
// (pos, when known; else from the beginning) and the nonce its rows are
// named under.
type handoverMark struct {
	nonce uint64
	known bool
	pos   []byte
}

func (m *handoverMark) encode() []byte {
	b := []byte{markVersion}
	b = binary.BigEndian.AppendUint64(b, m.nonce)
	if !m.known {
		return append(b, 0)
	}
	return append(append(b, 1), m.pos...)
}

func decodeMark(b []byte) (*handoverMark, error) {
	if len(b) < 10 || b[0] != markVersion || b[9] > 1 {
		return nil, fmt.Errorf("hand-over mark of %d bytes is not one this version writes", len(b))
	}
	m := &handoverMark{nonce: binary.BigEndian.Uint64(b[1:9]), known: b[9] == 1}
	if m.known {
		m.pos = b[10:]
	}
	return m, nil
}

// newNonce returns a random non-zero nonce. It comes from crypto/rand:
// two processes of one pipeline must not draw the same one, whatever
// their seeds.
func newNonce() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		if n := binary.BigEndian.Uint64(b[:]); n != 0 {
			return n
		}
	}
}

// commitChunk is how many rows a commit decodes and hands over at once.
const commitChunk = 4096

// decodeState returns the rows of the segments newer than after, and the
// newest segment id.
func decodeState(st []byte, after int64) (*record.Schema, *record.Batch, int64, error) {
	var schema *record.Schema
	var all *record.Batch
	newest, err := decodeChunks(st, after, math.MaxInt, func(sc *record.Schema, b *record.Batch, _ int64, _ int) error {
		schema = sc
		if all == nil {
			all = record.NewBatch(sc.Len(), b.Len())
		}
		for i := 0; i < b.Len(); i++ {
			all.AppendFrom(b, i)
		}
		return nil
	})
	if err != nil {
		return nil, nil, 0, err
	}
	if all == nil {
		if schema, err = decodeSchema(st); err != nil {
			return nil, nil, 0, err
		}
		all = record.NewBatch(schema.Len(), 0)
	}
	return schema, all, newest, nil
}

// decodeSchema returns the schema of a state.
func decodeSchema(st []byte) (*record.Schema, error) {
	var schema *record.Schema
	_, err := decodeChunks(st, math.MaxInt64, 1, func(sc *record.Schema, _ *record.Batch, _ int64, _ int) error { schema = sc; return nil })
	return schema, err
}

// decodeChunks checks a state and calls fn with the rows of the segments
// newer than after, at most chunk rows at a time, in order; it returns the
// newest segment id. Every call gets a new batch (a writer may keep it).
// The checksum and the segment framing are checked before fn is first
// called, so a damaged state hands nothing over; a row that does not
// decode (the checksum makes that a bug, not damage) ends the hand-over
// with errCorrupt. With nothing newer than after, fn is called once with
// the schema and no rows.
func decodeChunks(st []byte, after int64, chunk int, fn func(schema *record.Schema, b *record.Batch, seg int64, first int) error) (int64, error) {
	if len(st) < 5 || st[0] < stateVersionFlat || st[0] > stateVersion {
		return 0, errCorrupt
	}
	version := st[0]
	body := st[:len(st)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(st[len(st)-4:]) {
		return 0, fmt.Errorf("%w: checksum mismatch", errCorrupt)
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
		return 0, errCorrupt
	}
	fields := make([]record.Field, nf)
	for i := range fields {
		l, ok := uv()
		if !ok || l+1 > uint64(len(p)) {
			return 0, errCorrupt
		}
		name := string(p[:l])
		if version == stateVersionFlat && record.Type(p[l]).Nested() {
			return 0, fmt.Errorf("%w: nested field %q in a version %d state", errCorrupt, name, version)
		}
		var err error
		if fields[i], p, err = record.ReadFieldType(p[l:], name); err != nil {
			return 0, fmt.Errorf("%w: %w", errCorrupt, err)
		}
	}
	schema, err := record.NewSchema(fields...)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	nsegs, ok := uv()
	if !ok || nsegs > uint64(len(p)) {
		return 0, errCorrupt
	}
	type span struct {
		id   int64
		rows uint64
		data []byte
	}
	var todo []span
	var newest int64
	for sgi := uint64(0); sgi < nsegs; sgi++ {
		id, n := binary.Varint(p)
		if n <= 0 {
			return 0, errCorrupt
		}
		p = p[n:]
		rows, ok1 := uv()
		size, ok2 := uv()
		if !ok1 || !ok2 || size > uint64(len(p)) || rows > size {
			return 0, errCorrupt
		}
		seg := p[:size]
		p = p[size:]
		newest = max(newest, id)
		if id > after { // older segments were delivered before
			todo = append(todo, span{id, rows, seg})
		}
	}
	if len(p) != 0 {
		return 0, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(p))
	}
	chunk = max(chunk, 1)
	for _, sp := range todo {
		seg := sp.data
		b, first := record.NewBatch(len(fields), 0), 0
		for r := uint64(0); r < sp.rows; r++ {
			t, n := binary.Varint(seg)
			if n <= 0 {
				return 0, errCorrupt
			}
			seg = seg[n:]
			row := b.AppendRow(t)
			for i := range row {
				if row[i], seg, err = record.ReadValue(seg); err != nil {
					return 0, fmt.Errorf("%w: %w", errCorrupt, err)
				}
			}
			if b.Len() >= chunk {
				if err := fn(schema, b, sp.id, first); err != nil {
					return newest, err
				}
				first += b.Len()
				b = record.NewBatch(len(fields), 0)
			}
		}
		if len(seg) != 0 {
			return 0, fmt.Errorf("%w: %d trailing bytes in a segment", errCorrupt, len(seg))
		}
		if b.Len() > 0 {
			if err := fn(schema, b, sp.id, first); err != nil {
				return newest, err
			}
		}
	}
	if len(todo) == 0 {
		if err := fn(schema, record.NewBatch(len(fields), 0), 0, 0); err != nil {
			return newest, err
		}
	}
	return newest, nil
}

// Check forwards to the wrapped sink's startup check, if it has one.
func (s *Sink) Check(ctx context.Context) error {
	if c, ok := s.inner.(interface{ Check(context.Context) error }); ok {
		return c.Check(ctx)
	}
	return nil
}
