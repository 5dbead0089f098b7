package operator

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// DefaultSinkQueue is how many batches a task may have waiting for one sink
// writer: sink I/O (an upload, a produce waiting for acks, a webhook) runs
// on the writer's own goroutine, so a task keeps computing while its last
// batches are written, and a slow sink slows the task — and through it the
// sources — instead of growing memory.
const DefaultSinkQueue = 8

// errWriterClosed is returned for commands after Close.
var errWriterClosed = errors.New("sink writer is closed")

// asyncWriter runs one sink writer on its own goroutine behind a bounded
// queue of commands, executed in order: writes, ticks, prepares and the
// close. A batch handed to Write does not change until every writer it
// was handed to has written it: an emitter lends a batch it recycles
// (batchLoan), and the writer gives it back once Write has returned — sink
// writers never retain a batch or its strings after Write.
type asyncWriter struct {
	w      sink.Writer
	prep   sink.Preparer // nil when the writer takes no part in checkpoints
	final  finalPreparer // nil when it cannot publish everything at the end
	ticker sink.Ticker   // nil when it does not act on time
	// room is the writer's bound on what it holds until a checkpoint
	// (nil: none). It is waited for on the producing task's goroutine,
	// before a write is queued: a Write waiting for a checkpoint would
	// block the Prepare of that checkpoint's barrier queued behind it.
	room sink.RoomWaiter
	cmds chan sinkCmd
	// onError is told of every failed write or tick, on the writer's
	// goroutine.
	onError func(error)
	// bp accounts the time the producing task waits for room, as waiting
	// on `on` ("sink:<name>").
	bp     *backpressure
	on     string
	closed bool
	exited chan struct{}
	// busy is when (now, Unix ns) the command running started, 0 while
	// the writer waits for one: a write that never returns stalls the
	// pipeline as a task would (see Runtime.Stalled).
	busy atomic.Int64
	now  func() time.Time
	// pendingTick is set while a tick is queued: ticks are not stacked.
	tickMu      sync.Mutex
	pendingTick bool
}

type sinkCmdKind uint8

const (
	cmdWrite sinkCmdKind = iota
	cmdTick
	cmdEndInput
	cmdPrepare
	cmdPrepareFinal
	cmdClose
)

type sinkCmd struct {
	kind    sinkCmdKind
	ctx     context.Context
	b       *record.Batch
	loan    *batchLoan // nil when the batch is not to be given back
	now, wm int64
	id      int64
	reply   chan sinkReply
}

type sinkReply struct {
	state []byte
	err   error
}

func newAsyncWriter(w sink.Writer, queue int, bp *backpressure, on string, onError func(error)) *asyncWriter {
	return newAsyncWriterClock(w, queue, bp, on, onError, time.Now)
}

// newAsyncWriterClock is newAsyncWriter with the clock of busy.
func newAsyncWriterClock(w sink.Writer, queue int, bp *backpressure, on string, onError func(error), now func() time.Time) *asyncWriter {
	if queue <= 0 {
		queue = DefaultSinkQueue
	}
	a := &asyncWriter{w: w, cmds: make(chan sinkCmd, queue), onError: onError, bp: bp, on: on, exited: make(chan struct{}), now: now}
	a.prep, _ = w.(sink.Preparer)
	a.final, _ = w.(finalPreparer)
	a.ticker, _ = w.(sink.Ticker)
	a.room, _ = w.(sink.RoomWaiter)
	go a.run()
	return a
}

func (a *asyncWriter) run() {
	defer close(a.exited)
	for c := range a.cmds {
		a.busy.Store(a.now().UnixNano())
		a.exec(c)
		a.busy.Store(0)
		if c.kind == cmdClose {
			return
		}
	}
}

// exec runs one command on the writer's goroutine.
func (a *asyncWriter) exec(c sinkCmd) {
	switch c.kind {
	case cmdWrite:
		err := a.w.Write(c.ctx, c.b)
		c.loan.release()
		if err != nil {
			a.onError(err)
		}
	case cmdTick:
		a.tickMu.Lock()
		a.pendingTick = false
		a.tickMu.Unlock()
		if err := a.ticker.Tick(c.ctx, c.now, c.wm); err != nil {
			a.onError(err)
		}
	case cmdEndInput:
		c.reply <- sinkReply{err: a.ticker.Tick(c.ctx, c.now, maxWM)}
	case cmdPrepare:
		state, err := a.prep.Prepare(c.ctx, c.id)
		c.reply <- sinkReply{state, err}
	case cmdPrepareFinal:
		state, err := a.final.PrepareFinal(c.ctx, c.id)
		c.reply <- sinkReply{state, err}
	case cmdClose:
		c.reply <- sinkReply{err: a.w.Close(c.ctx)}
	}
}

// send queues c, waiting for room; the wait is backpressure.
func (a *asyncWriter) send(c sinkCmd) {
	select {
	case a.cmds <- c:
		return
	default:
	}
	start := time.Now()
	a.cmds <- c
	a.bp.addOn(a.on, time.Since(start))
}

// write queues b, once the writer has room for it. Errors are reported
// through onError.
func (a *asyncWriter) write(ctx context.Context, b *record.Batch, loan *batchLoan) {
	if a.closed {
		loan.release()
		a.onError(errWriterClosed)
		return
	}
	if a.room != nil {
		a.bp.addOn(a.on, a.room.AwaitRoom(ctx))
	}
	a.send(sinkCmd{kind: cmdWrite, ctx: ctx, b: b, loan: loan})
}

// batchPool is a bounded free list of batches: a task's emitted batches
// once every writer is done with them, a stage's exchange batches once
// their subtask has processed them. Without it a task writing to sinks
// would allocate every batch it emits, and a window firing would grow its
// result batch from nothing each time; a sync.Pool is emptied by every
// collection. Batches beyond its size are left to the collector. A nil
// pool keeps nothing.
type batchPool struct {
	free chan *record.Batch
}

func newBatchPool(size int) *batchPool {
	return &batchPool{free: make(chan *record.Batch, size)}
}

// get returns an empty batch of the given width, recycled when one is free.
func (p *batchPool) get(width, capacity int) *record.Batch {
	for p != nil {
		select {
		case b := <-p.free:
			if b.Width == width {
				return b
			}
			continue // a batch of an older schema: dropped
		default:
		}
		break
	}
	return record.NewBatch(width, capacity)
}

// put empties b and keeps it if there is room. With arena set, b's arena
// chunks are reused too (Batch.Recycle): only when none of its interned
// strings is referenced any more.
func (p *batchPool) put(b *record.Batch, arena bool) {
	if p == nil {
		return
	}
	clear(b.Values) // drop references to strings of other batches
	if arena {
		b.Recycle()
	} else {
		b.Reset()
	}
	select {
	case p.free <- b:
	default:
	}
}

// lend hands b to n writers (and the emitting task, which returns its own
// share once the batch has also gone to the exchanges).
func (p *batchPool) lend(b *record.Batch, n int) *batchLoan {
	l := &batchLoan{b: b, pool: p}
	l.refs.Store(int32(n))
	return l
}

// batchLoan counts the holders of a lent batch; the last to release it
// empties it and gives it back to its pool. Emptying drops the batch's
// arena (strings handed out stay valid): only its slices are reused.
type batchLoan struct {
	b    *record.Batch
	pool *batchPool
	refs atomic.Int32
}

func (l *batchLoan) release() {
	if l == nil || l.refs.Add(-1) != 0 {
		return
	}
	l.pool.put(l.b, false)
}

// tick queues a tick unless one is already waiting: a writer that is
// behind gets the newest time when it gets to it, and ticks never hold a
// task back.
func (a *asyncWriter) tick(ctx context.Context, now, wm int64) {
	if a.ticker == nil || a.closed {
		return
	}
	a.tickMu.Lock()
	if a.pendingTick {
		a.tickMu.Unlock()
		return
	}
	a.pendingTick = true
	a.tickMu.Unlock()
	select {
	case a.cmds <- sinkCmd{kind: cmdTick, ctx: ctx, now: now, wm: wm}:
	default:
		a.tickMu.Lock()
		a.pendingTick = false
		a.tickMu.Unlock()
	}
}

// endInput ticks the writer with the maximum watermark, after everything
// queued, and waits: the input of its task has ended (see finalStates).
func (a *asyncWriter) endInput(ctx context.Context, now int64) error {
	if a.ticker == nil {
		return nil
	}
	_, err := a.call(sinkCmd{kind: cmdEndInput, ctx: ctx, now: now})
	return err
}

// call queues a command and waits for its reply: everything queued before
// it is written first.
func (a *asyncWriter) call(c sinkCmd) ([]byte, error) {
	if a.closed {
		return nil, errWriterClosed
	}
	c.reply = make(chan sinkReply, 1)
	a.send(c)
	r := <-c.reply
	return r.state, r.err
}

// Prepare makes everything written so far recoverable (sink.Preparer).
func (a *asyncWriter) Prepare(ctx context.Context, id int64) ([]byte, error) {
	return a.call(sinkCmd{kind: cmdPrepare, ctx: ctx, id: id})
}

// PrepareFinal prepares everything the writer holds for publishing.
func (a *asyncWriter) PrepareFinal(ctx context.Context, id int64) ([]byte, error) {
	return a.call(sinkCmd{kind: cmdPrepareFinal, ctx: ctx, id: id})
}

// Close writes what is queued, closes the writer and ends its goroutine.
func (a *asyncWriter) Close(ctx context.Context) error {
	if a.closed {
		return nil
	}
	_, err := a.call(sinkCmd{kind: cmdClose, ctx: ctx})
	a.closed = true
	close(a.cmds)
	<-a.exited
	return err
}

// newBackpressure returns a task's backpressure account, counted in
// streamd_task_backpressured_seconds_total.
func (r *Runtime) newBackpressure(task string) *backpressure {
	c := r.m.backpressured.WithLabelValues(task)
	return &backpressure{observe: func(d time.Duration) { c.Add(d.Seconds()) }}
}

// backpressure accounts the time a task waits for the tasks and writers it
// feeds: Flink's backpressured time. It is written by the task's goroutine
// and read by status and metrics.
type backpressure struct {
	mu      sync.Mutex
	total   time.Duration
	waiting string // what the task waited on last ("sink:alerts", "stage:per-tag")
	// last and ratio are the share of wall time spent waiting over the
	// last measured interval.
	lastTotal time.Duration
	lastAt    time.Time
	ratio     float64
	observe   func(time.Duration)
}

func (b *backpressure) add(d time.Duration) {
	if b == nil || d <= 0 {
		return
	}
	b.mu.Lock()
	b.total += d
	b.mu.Unlock()
	if b.observe != nil {
		b.observe(d)
	}
}

// on records what the task waits on, then adds the wait.
func (b *backpressure) addOn(on string, d time.Duration) {
	if b == nil || d <= 0 {
		return
	}
	b.mu.Lock()
	b.waiting = on
	b.mu.Unlock()
	b.add(d)
}

// backpressureWindow is the interval over which the waiting ratio of
// status is measured.
const backpressureWindow = time.Second

// sample updates the ratio of waiting to wall time since the last sample,
// at most once per backpressureWindow.
func (b *backpressure) sample(now time.Time) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.lastAt.IsZero() && now.Sub(b.lastAt) < backpressureWindow {
		return
	}
	if !b.lastAt.IsZero() {
		if wall := now.Sub(b.lastAt); wall > 0 {
			r := float64(b.total-b.lastTotal) / float64(wall)
			b.ratio = min(1, max(0, r))
		}
	}
	if b.ratio == 0 {
		b.waiting = ""
	}
	b.lastAt, b.lastTotal = now, b.total
}

// snapshot returns the last ratio and what was waited on.
func (b *backpressure) snapshot() (float64, string) {
	if b == nil {
		return 0, ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ratio, b.waiting
}
