package operator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/retry"
	"github.com/streamd/streamd/pkg/keyed"
	"github.com/streamd/streamd/pkg/operator/coordinator"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/source"
	"github.com/streamd/streamd/pkg/window"
)

const maxRawDeadLetter = 64 << 10

// splitTask reads one split: read → decode → steps → watermark → emit. It
// is the only goroutine touching its decoder, steps and watermarker.
type splitTask struct {
	r       *Runtime
	src     *sourceRT
	split   source.Split
	reader  source.Reader
	dec     Decoder
	steps   []Step
	wm      *watermarker
	out     *emitter
	dead    *emitter
	status  *splitStatus
	records prometheus.Counter
	bytes   prometheus.Counter
	wmGauge prometheus.Gauge
	wmDelay prometheus.Gauge
	idleG   prometheus.Gauge
	// failingG and readFails meter reads that fail (see setFailing).
	failingG  prometheus.Gauge
	readFails prometheus.Counter
	deadBy    map[string]prometheus.Counter
	deadB     *record.Batch
	// between are the batches of the decoder and the steps, reused from
	// one read to the next (see batch).
	between []*record.Batch
	// written recycles the last stage's batches that sink writers take
	// (see batch).
	written *batchPool
	ctrl    mailbox
	last    source.Position
	// end is how the task ends; revoked is set before a revoked split is
	// stopped (see lifecycle.go).
	end     splitEnd
	revoked atomic.Bool
	done    chan struct{}
}

// startSplit opens a split and starts its task. It registers the task as a
// producer of its streams before returning, so a stage cannot see the end of
// its input while a split is starting.
//
// With held set, the task is registered but its reading is appended to
// held instead of started: the initial splits all join their consumers
// before any of them emits, so a fast split cannot move event time past a
// split that has not joined yet.
//
// It returns the task's handle, nil when no task was started.
func (r *Runtime) startSplit(ctx context.Context, src *sourceRT, sp source.Split, start *source.Position, tasks *sync.WaitGroup, held *[]func()) *splitHandle {
	if start == nil && r.restore.IsFinished(src.spec.Name, sp.ID) {
		r.log.Info("split was read to its end before the restored checkpoint; not reading it again", zap.String("source", src.spec.Name), zap.String("split", sp.ID))
		return nil
	}
	src.out.producers.Add(1)
	r.streams[StreamDeadLetters].producers.Add(1)
	var restoredWM int64 = minWM
	if start == nil {
		// The restored position is for the split's first start only: a
		// split assigned again later resumes where its last reader's
		// checkpoint committed it.
		if st, ok := r.takeResume(src.spec.Name, sp.ID); ok && (st.Next.Offset >= 0 || st.Next.Sequence != "") {
			start, restoredWM = r.laterGroupPosition(src, sp.ID, &st.Next), st.Watermark
		} else if pos, wm, ok := r.restore.TakeStartPosition(src.spec.Name, sp.ID); ok {
			start, restoredWM = r.newerGroupPosition(src, sp.ID, pos), wm
		}
	}
	r.markerMu.Lock()
	t, err := r.newSplitTask(ctx, src, sp, start, r.lastMarker)
	if err == nil && restoredWM != minWM {
		t.wm.emitted = restoredWM
	}
	if err == nil {
		r.running[t] = struct{}{}
	}
	r.markerMu.Unlock()
	if err != nil {
		src.out.producers.Done()
		r.streams[StreamDeadLetters].producers.Done()
		r.fail(fmt.Errorf("open split %q of source %q: %w", sp.ID, src.spec.Name, err))
		return nil
	}
	src.splits.Inc()
	tasks.Add(1)
	launch := func() {
		go func() {
			defer tasks.Done()
			defer src.splits.Dec()
			defer src.out.producers.Done()
			defer r.streams[StreamDeadLetters].producers.Done()
			t.run(ctx)
		}()
	}
	h := &splitHandle{task: t}
	if held != nil {
		*held = append(*held, launch)
		return h
	}
	launch()
	return h
}

func (r *Runtime) newSplitTask(ctx context.Context, src *sourceRT, sp source.Split, start *source.Position, after int64) (*splitTask, error) {
	dec, err := src.spec.NewDecoder()
	if err != nil {
		return nil, err
	}
	var steps []Step
	if src.spec.NewSteps != nil {
		if steps, err = src.spec.NewSteps(); err != nil {
			return nil, err
		}
	}
	reader, err := src.spec.Source.Open(ctx, sp, start)
	if err != nil {
		return nil, err
	}
	task := "split-" + src.spec.Name + "-" + sanitizeTask(sp.ID)
	bp := r.newBackpressure(task)
	out, err := r.newEmitter(src.out, task, after, bp)
	if err != nil {
		_ = reader.Close()
		return nil, err
	}
	dead, err := r.newEmitter(r.streams[StreamDeadLetters], task, after, bp)
	if err != nil {
		out.finish(ctx)
		_ = reader.Close()
		return nil, err
	}
	name, id := src.spec.Name, sp.ID
	t := &splitTask{
		r: r, src: src, split: sp, reader: reader, dec: dec, steps: steps,
		wm:        newWatermarker(src.spec.Watermark, r.job.Now()),
		out:       out,
		dead:      dead,
		status:    r.addSplitStatus(name, id, bp),
		records:   r.m.sourceRecords.WithLabelValues(name, id),
		bytes:     r.m.sourceBytes.WithLabelValues(name, id),
		wmGauge:   r.m.splitWM.WithLabelValues(name, id),
		wmDelay:   r.m.splitWMDelay.WithLabelValues(name, id),
		idleG:     r.m.splitIdle.WithLabelValues(name, id),
		failingG:  r.m.splitFailing.WithLabelValues(name, id),
		readFails: r.m.readFailures.WithLabelValues(name, id),
		deadBy:    make(map[string]prometheus.Counter),
		done:      make(chan struct{}),
	}
	if start != nil {
		t.last = *start
	}
	if t.wm.senders != nil {
		t.wm.senders.bind(r.m, r.log.With(zap.String("source", name), zap.String("split", id)), name, id)
	}
	return t, nil
}

func sanitizeTask(id string) string {
	b := []byte(id)
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			b[i] = '_'
		}
	}
	return string(b)
}

func (t *splitTask) run(ctx context.Context) {
	log := t.r.log.With(zap.String("source", t.src.spec.Name), zap.String("split", t.split.ID))
	defer t.finish(log)
	// Reads stop when ctx is done; what was read is still written, with
	// the runtime's drain context, never with the cancelled ctx.
	wctx := t.r.writeContext()
	if wm := t.wm.emitted; wm != minWM {
		// Restored from a checkpoint: announce the split's watermark before
		// the first read, as the uninterrupted run had, so that records of
		// other splits are judged late against the same watermark.
		t.out.emit(ctx, nil, wm, false)
	}
	msgs := &source.Batch{}
	// Splits of one broker fail together: jitter spreads their retries.
	backoff := retry.Exponential(minReadBackoff, maxReadBackoff, 0.2)
	width := t.dec.Schema().Len()
	defer t.failingG.Set(0)
	for {
		t.status.beat.Store(t.r.job.Now().UnixNano())
		if t.markers() {
			log.Info("split stopped behind a checkpoint barrier")
			t.end = endBarrier
			return
		}
		readCtx, cancel := context.WithTimeout(ctx, t.r.job.TickInterval)
		err := t.reader.Read(readCtx, msgs, t.r.job.BatchSize)
		cancel()
		now := t.r.job.Now()
		// A read that fails — also one that ends with its deadline because
		// the split is unavailable — makes the split failing: it holds the
		// watermark instead of going idle (see source.Reader).
		failing := err != nil && !errors.Is(err, source.ErrEndOfSplit) && ctx.Err() == nil &&
			(errors.Is(err, source.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded))
		if failing {
			t.setFailing(err, now)
		} else {
			t.setFailing(nil, now)
		}
		if len(msgs.Messages) > 0 {
			t.process(wctx, msgs, width, now)
			msgs.Reset()
		}
		wm, idle := t.wm.current(now)
		t.publishWatermark(wm, idle, now)
		t.status.bp.sample(now)
		t.out.emit(wctx, nil, wm, idle)
		t.out.tick(wctx, now, wm)
		t.dead.tick(wctx, now, wm)
		switch {
		case errors.Is(err, source.ErrEndOfSplit):
			log.Info("split ended")
			t.end = endFinished
			return
		case ctx.Err() != nil:
			t.end = endCancelled
			return
		case !failing:
			// Data, or none within a tick (idleness and sink ticks were
			// handled above): the split is reachable.
			backoff.Reset()
		default:
			pause := backoff.Next()
			log.Warn("read split; retrying", zap.Error(err), zap.Duration("backoff", pause))
			if !retry.Wait(ctx, pause) {
				t.end = endCancelled
				return
			}
		}
	}
}

// The pauses between the reads of a failing split. The longest one bounds
// how long reading lags behind a broker that is back: readers reconnect by
// themselves, and the pause only spaces out their attempts.
const (
	minReadBackoff = 100 * time.Millisecond
	maxReadBackoff = 5 * time.Second
)

// setFailing records whether the split's reads fail (err, nil once they
// succeed) for its watermark, its status and its metrics.
func (t *splitTask) setFailing(err error, now time.Time) {
	t.wm.setFailing(err != nil, now)
	prev := t.status.failure.Load()
	switch {
	case err != nil:
		t.readFails.Inc()
		since := now
		if prev != nil {
			since = prev.since
		} else {
			t.failingG.Set(1)
		}
		t.status.failure.Store(&splitFailure{since: since, err: err.Error()})
	case prev != nil:
		t.status.failure.Store(nil)
		t.failingG.Set(0)
		t.r.log.Info("split readable again", zap.String("source", t.src.spec.Name), zap.String("split", t.split.ID), zap.Duration("failedFor", now.Sub(prev.since)))
	}
}

func (t *splitTask) process(ctx context.Context, msgs *source.Batch, width int, now time.Time) {
	b := t.batch(0, width, len(msgs.Messages))
	var nbytes int
	ingest := now.UnixMilli()
	for i := range msgs.Messages {
		m := &msgs.Messages[i]
		nbytes += len(m.Value)
		ts := m.Timestamp
		if ts == 0 {
			// Sources without broker timestamps (files, stdin): ingestion
			// time stands in for a missing event-time field.
			ts = ingest
		}
		if err := t.dec.Decode(m.Value, ts, b); err != nil {
			t.deadLetter(now, m.Position.String(), err, m.Value)
		}
	}
	t.records.Add(float64(len(msgs.Messages)))
	t.bytes.Add(float64(nbytes))
	last := msgs.Messages[len(msgs.Messages)-1].Position
	t.last = source.Position{Offset: last.Offset + 1, Sequence: last.Sequence}
	t.status.position.Store(last.Offset)
	t.status.records.Add(int64(len(msgs.Messages)))
	for k, s := range t.steps {
		out := t.batch(k+1, s.Schema().Len(), b.Len())
		in := b
		s.Apply(in, out, func(row int, err error) {
			t.deadLetter(now, "", err, record.AppendJSON(nil, stepInputSchema(t, s), in.Row(row)))
		})
		b = out
	}
	if first := msgs.Messages[0].Position; first.Offset >= 0 || first.Sequence != "" {
		b.Origin = &record.Origin{Source: t.src.spec.Name, Split: t.split.ID, First: first.String(), Last: last.String()}
	}
	t.wm.observe(b, now)
	wm, idle := t.wm.current(now)
	t.out.emitFrom(ctx, b, wm, idle, t.written)
	t.flushDead(ctx, wm)
}

// batch returns the batch that stage k of process fills (0: the decoder,
// k: step k): the task's reused one, emptied, unless it is the last
// stage's and a sink writer takes it: then one the writers have given back
// (they keep a batch until they have written it; exchanges copy the rows
// out before emit returns). Emptying drops only the batch's own slices:
// the strings of its arena stay alive for the rows that the next stages
// and exchanges copied.
func (t *splitTask) batch(k, width, capacity int) *record.Batch {
	if k == len(t.steps) && len(t.out.writers) > 0 {
		if t.written == nil {
			t.written = newBatchPool(t.r.job.SinkQueue + 1)
		}
		return t.written.get(width, capacity)
	}
	for len(t.between) <= k {
		t.between = append(t.between, nil)
	}
	b := t.between[k]
	if b == nil || b.Width != width {
		b = record.NewBatch(width, capacity)
		t.between[k] = b
	}
	b.Reset()
	return b
}

// stepInputSchema returns the schema of the rows a step receives.
func stepInputSchema(t *splitTask, s Step) *record.Schema {
	schema := t.dec.Schema()
	for _, prev := range t.steps {
		if prev == s {
			break
		}
		schema = prev.Schema()
	}
	return schema
}

func (t *splitTask) deadLetter(now time.Time, pos string, err error, raw []byte) {
	reason, detail := "decode_error", err.Error()
	var rs Reasoner
	if errors.As(err, &rs) {
		reason = rs.DeadLetterReason()
	}
	c := t.deadBy[reason]
	if c == nil {
		c = t.r.m.deadLetters.WithLabelValues(t.src.spec.Name, reason)
		t.deadBy[reason] = c
	}
	c.Inc()
	if t.deadB == nil {
		t.deadB = record.NewBatch(DeadLetterSchema.Len(), 16)
	}
	if len(raw) > maxRawDeadLetter {
		raw = raw[:maxRawDeadLetter]
	}
	// Dead letters are written to sinks too (Parquet included), and one
	// invalid UTF-8 string makes a whole Parquet file unreadable.
	if !utf8.Valid(raw) {
		raw = bytes.ToValidUTF8(raw, []byte("\uFFFD"))
	}
	detail = strings.ToValidUTF8(detail, "\uFFFD")
	b := t.deadB
	row := b.AppendRow(now.UnixMilli())
	row[0] = record.TimestampMillis(now.UnixMilli())
	row[1] = record.String(t.src.spec.Name)
	row[2] = record.String(t.split.ID)
	row[3] = record.String(b.InternString(pos))
	row[4] = record.String(b.InternString(reason))
	row[5] = record.String(b.InternString(detail))
	row[6] = record.String(b.Intern(raw))
}

// markers passes pending markers downstream. It runs between reads, so
// everything read before a marker has already been emitted. It reports
// whether a marker asked the split to stop reading.
func (t *splitTask) markers() bool {
	for {
		m, ok := t.ctrl.take()
		switch {
		case ok:
			next := t.last
			if p, ok := t.reader.(source.Positioner); ok {
				next = p.Position()
			}
			cut := SplitCut{Source: t.src.spec.Name, Split: t.split.ID, Next: next, Watermark: t.wm.emitted}
			req, isCheckpoint := m.Payload.(*coordinator.Request)
			stop := isCheckpoint && req.Stops(t.src.spec.Name, t.split.ID)
			if isCheckpoint {
				wctx := t.r.writeContext()
				t.flushDead(wctx, t.wm.emitted)
				// A split that stops behind the barrier (revoked, or at
				// shutdown) publishes all it holds with this checkpoint:
				// whoever reads the split next may be another instance,
				// and this one may never come back.
				final := stop
				var err error
				cut.Sinks, err = t.out.prepare(wctx, req.ID(), t.out.task, nil, final)
				if err == nil {
					cut.Sinks, err = t.dead.prepare(wctx, req.ID(), t.dead.task, cut.Sinks, final)
				}
				if err != nil {
					// The coordinator completes no checkpoint once the
					// pipeline failed: one without this split's output
					// would lose it.
					t.r.fail(err)
				}
			}
			if h := t.r.handler; h != nil {
				h.AtSplit(m, cut)
			}
			t.out.marker(&m)
			if stop {
				return true
			}
		default:
			return false
		}
	}
}

func (t *splitTask) flushDead(ctx context.Context, wm int64) {
	if t.deadB == nil || t.deadB.Len() == 0 {
		return
	}
	t.dead.emit(ctx, t.deadB, wm, false)
	t.deadB = nil
}

func (t *splitTask) publishWatermark(wm int64, idle bool, now time.Time) {
	t.status.watermark.Store(wm)
	t.status.idle.Store(idle)
	if idle {
		t.idleG.Set(1)
	} else {
		t.idleG.Set(0)
	}
	if wm != minWM {
		t.wmGauge.Set(float64(wm) / 1000)
		t.wmDelay.Set(float64(now.UnixMilli()-wm) / 1000)
	}
}

// subtask runs one stage's window operator over its key groups.
type subtask struct {
	r      *Runtime
	st     *stageRT
	idx    int
	op     keyed.Operator
	valve  *valve
	out    *emitter
	late   *emitter
	alerts *emitter
	conds  []func(record.Row) (bool, error)
	status *subtaskStatus

	align   alignment
	records int64
	// asyncDone/asyncFinish is background work of a marker (an
	// asynchronous snapshot) to complete on this goroutine.
	asyncDone   <-chan struct{}
	asyncFinish func()
	res         window.Output
	wmDelay     prometheus.Gauge
	keys        prometheus.Gauge
	in          prometheus.Counter
	firings     prometheus.Counter
	updates     prometheus.Counter
	retracts    prometheus.Counter
	lateC       prometheus.Counter
	alertC      []prometheus.Counter
	alertErrC   []prometheus.Counter
	sentWM      int64
	sentIdle    bool
	state       subtaskState

	// resPool and latePool recycle the result and late batches once
	// written (see batchPool).
	resPool, latePool *batchPool
}

func (r *Runtime) newSubtask(st *stageRT, i int, op keyed.Operator) (_ *subtask, err error) {
	name := subtaskName(st.spec.Name, i)
	s := &subtask{r: r, st: st, idx: i, op: op, valve: newValve(), sentWM: minWM}
	s.valve.stageInputs = r.stageNamed(st.in.name) != nil
	defer func() {
		if err != nil {
			s.abandon()
		}
	}()
	bp := r.newBackpressure(name)
	if s.out, err = r.newEmitter(st.out, name, 0, bp); err != nil {
		return nil, err
	}
	if s.late, err = r.newEmitter(st.late, name, 0, bp); err != nil {
		return nil, err
	}
	if len(st.spec.Alerts) > 0 {
		if s.alerts, err = r.newEmitter(r.streams[StreamAlerts], name, 0, bp); err != nil {
			return nil, err
		}
		r.streams[StreamAlerts].producers.Add(1)
	}
	for _, a := range st.spec.Alerts {
		c, err := a.NewCondition(op.ResultSchema())
		if err != nil {
			return nil, fmt.Errorf("alert %q: %w", a.Name, err)
		}
		s.conds = append(s.conds, c)
		s.alertC = append(s.alertC, r.m.alerts.WithLabelValues(st.spec.Name, a.Name, a.Severity))
		s.alertErrC = append(s.alertErrC, r.m.alertErrors.WithLabelValues(st.spec.Name, a.Name))
	}
	sub := strconv.Itoa(i)
	s.wmDelay = r.m.stageWMDelay.WithLabelValues(st.spec.Name, sub)
	s.keys = r.m.stateKeys.WithLabelValues(st.spec.Name, sub)
	s.in = r.m.stageIn.WithLabelValues(st.spec.Name)
	s.firings = r.m.windowFirings.WithLabelValues(st.spec.Name)
	s.updates = r.m.windowUpdates.WithLabelValues(st.spec.Name)
	s.retracts = r.m.windowRetract.WithLabelValues(st.spec.Name)
	s.lateC = r.m.lateRecords.WithLabelValues(st.spec.Name)
	s.status = r.addSubtaskStatus(st.spec.Name, i, bp)
	if err := s.initState(); err != nil {
		return nil, err
	}
	if ro, ok := op.(*ruleOperator); ok {
		ro.dryRuns = r.m.ruleDryRuns.WithLabelValues(st.spec.Name)
		ro.fail = r.fail
		st.ruleOps = append(st.ruleOps, ro)
	}
	if rs := r.restore; rs != nil {
		wm, ok := rs.StageWatermarks[st.spec.Name]
		if !ok {
			wm = minWM
		}
		for kg, data := range rs.Groups[st.spec.Name] {
			if SubtaskFor(int(kg), r.job.KeyGroups, len(st.inputs)) != i {
				continue
			}
			if err := op.Restore(kg, data); err != nil {
				return nil, fmt.Errorf("restore stage %q: %w", st.spec.Name, err)
			}
			// Key groups moved from several old subtasks take the most
			// advanced watermark: no window is fired twice.
			wm = max(wm, rs.Watermarks[st.spec.Name][kg])
		}
		if err := op.FinishRestore(); err != nil {
			return nil, fmt.Errorf("restore stage %q: %w", st.spec.Name, err)
		}
		if wm != minWM {
			op.SetWatermark(wm)
		}
	}
	s.newOutput()
	return s, nil
}

func (s *subtask) newOutput() {
	if s.resPool == nil {
		s.resPool = newBatchPool(s.r.job.SinkQueue + 1)
		s.latePool = newBatchPool(s.r.job.SinkQueue + 1)
	}
	// An empty batch stays: only an emitted one is replaced.
	res, late := s.res.Results, s.res.Late
	if res == nil || res.Len() > 0 {
		res = s.resPool.get(s.op.ResultSchema().Len(), 64)
	}
	if late == nil || late.Len() > 0 {
		late = s.latePool.get(s.op.LateSchema().Len(), 16)
	}
	s.res = window.Output{Results: res, Late: late, Refused: s.refusedBatch()}
}

// abandon ends the emitters of a subtask that could not be made, so that
// the subtasks they joined downstream do not wait for it and their
// writers close; its state dead-letter emitter too.
func (s *subtask) abandon() {
	ctx := context.Background()
	for _, e := range []*emitter{s.out, s.late, s.alerts, s.state.dead} {
		if e != nil {
			e.finish(ctx)
		}
	}
	if s.alerts != nil {
		s.r.streams[StreamAlerts].producers.Done()
	}
}

func (s *subtask) run() {
	defer s.st.done.Done()
	defer s.st.out.producers.Done()
	defer s.st.late.producers.Done()
	if s.alerts != nil {
		defer s.r.streams[StreamAlerts].producers.Done()
	}
	// Writes use the runtime's drain context: bounded once a stop begins.
	ctx := s.r.writeContext()
	ticker := time.NewTicker(s.r.job.TickInterval)
	defer ticker.Stop()
	in := s.st.inputs[s.idx]
	defer s.status.ended.Store(true)
	for {
		s.status.beat.Store(s.r.job.Now().UnixNano())
		select {
		case ev, ok := <-in:
			if !ok {
				s.endOfInput(ctx)
				return
			}
			s.receive(ctx, ev)
		case <-s.asyncDone:
			s.completeAsync(false)
		case now := <-ticker.C:
			// Behind a savepoint barrier the state is saved: advancing
			// event time now would publish results the restart repeats.
			if s.r.job.IdleAdvance > 0 && !s.r.noDrain.Load() {
				if wm, ok := s.valve.idleAdvance(now, s.r.job.IdleAdvance); ok {
					s.op.Advance(wm, &s.res)
					s.flush(ctx, wm, true)
				}
			}
			outWM := window.HoldBack(s.op.Watermark(), s.st.hold)
			s.out.tick(ctx, now, outWM)
			s.late.tick(ctx, now, s.op.Watermark())
			if s.alerts != nil {
				s.alerts.tick(ctx, now, outWM)
			}
			if wm := s.op.Watermark(); wm != minWM && wm != maxWM {
				s.wmDelay.Set(float64(now.UnixMilli()-wm) / 1000)
			}
			s.status.bp.sample(now)
			if ro, ok := s.op.(*ruleOperator); ok {
				ro.publishStats()
			}
			// Counting keys can walk state (rule stages): once per tick,
			// not per event.
			keys := s.op.Keys()
			s.keys.Set(float64(keys))
			s.status.keys.Store(int64(keys))
			s.publishState()
		}
	}
}

// receive holds back events of inputs that are past a marker still being
// aligned, and handles markers once every open input has delivered them.
func (s *subtask) receive(ctx context.Context, ev event) {
	a := &s.align
	if ev.join {
		in := a.input(ev.from)
		in.joined, in.last = true, ev.after
	} else if a.blocked(ev.from) {
		a.queue = append(a.queue, ev)
		s.st.align[s.idx].queued.Store(int64(len(a.queue)))
		return
	}
	s.handle(ctx, ev)
	for {
		id, ok := a.complete()
		if !ok {
			return
		}
		m, seen := a.pending[id]
		delete(a.pending, id)
		a.aligned = id
		if !seen {
			// Injected while no input of this subtask existed: nothing
			// to handle or forward; later inputs joined as past it.
			s.releaseQueued(ctx)
			s.st.align[s.idx].publish(id)
			continue
		}
		if u, ok := m.Payload.(*ruleUpdate); ok {
			if ro, ok := s.op.(*ruleOperator); ok {
				for _, c := range u.changes {
					if c.stage != s.st.spec.Name {
						continue
					}
					if err := ro.eng.Apply(c.update); err != nil {
						s.r.log.Error("apply rule update", zap.String("stage", c.stage), zap.Error(err))
					}
				}
				ro.publishStats()
			}
		}
		sc := &SubtaskContext{Stage: s.st.spec.Name, Index: s.idx, Operator: s.op, Records: s.records, Async: s.async}
		if req, ok := m.Payload.(*coordinator.Request); ok {
			var err error
			for _, e := range s.stateEmitters() {
				if e != nil && err == nil {
					// At a stop, everything the subtask's writers hold is
					// published with the savepoint (see splitTask.markers).
					sc.Sinks, err = e.prepare(ctx, req.ID(), e.task, sc.Sinks, req.StopsAll())
				}
			}
			if err != nil {
				s.r.fail(err)
			}
		}
		if h := s.r.handler; h != nil {
			h.AtSubtask(m, sc)
		}
		s.out.marker(&m)
		s.releaseQueued(ctx)
		// Producers held at their gates for this marker may go on.
		s.st.align[s.idx].publish(id)
	}
}

// releaseQueued handles held-back events whose inputs are no longer past
// the marker being aligned, in arrival order.
func (s *subtask) releaseQueued(ctx context.Context) {
	a := &s.align
	queued := a.queue
	a.queue = nil
	for _, q := range queued {
		if a.blocked(q.from) {
			a.queue = append(a.queue, q)
			continue
		}
		s.handle(ctx, q)
	}
	s.st.align[s.idx].queued.Store(int64(len(a.queue)))
}

// async registers background work to complete on this goroutine.
func (s *subtask) async(start func() (<-chan struct{}, func())) {
	s.completeAsync(true)
	s.asyncDone, s.asyncFinish = start()
}

// completeAsync runs the pending finish if its work is done (or, with
// wait, once it is).
func (s *subtask) completeAsync(wait bool) {
	if s.asyncDone == nil {
		return
	}
	if !wait {
		select {
		case <-s.asyncDone:
		default:
			return
		}
	} else {
		<-s.asyncDone
	}
	finish := s.asyncFinish
	s.asyncDone, s.asyncFinish = nil, nil
	finish()
}

func (s *subtask) handle(ctx context.Context, ev event) {
	if ev.marker != nil {
		in := s.align.input(ev.from)
		in.last = ev.marker.ID
		if s.align.pending == nil {
			s.align.pending = make(map[int64]Marker)
		}
		s.align.pending[ev.marker.ID] = *ev.marker
		return // markers carry no records and leave watermarks alone
	}
	if ev.done {
		s.align.input(ev.from).done = true
		if s.r.noDrain.Load() {
			// Stopping behind a savepoint: a finished input must not end
			// event time, or every saved window would fire now.
			return
		}
	}
	if ev.batch != nil {
		s.in.Add(float64(ev.batch.Len()))
		s.records += int64(ev.batch.Len())
		if s.st.dropRetract >= 0 {
			dropRows(ev.batch, s.st.dropRetract)
		}
		s.op.Process(ev.batch, &s.res)
		s.st.putBatch(ev.batch)
	}
	var wm int64
	var idle bool
	switch {
	case ev.join:
		s.valve.input(ev.from)
		wm, idle = s.valve.combine(s.r.job.Now())
	case ev.left:
		wm, idle = s.valve.leave(ev.from, s.r.job.Now())
	default:
		wm, idle = s.valve.update(ev.from, ev.wm, ev.idle, ev.done, s.r.job.Now())
	}
	if wm > s.op.Watermark() {
		s.op.Advance(wm, &s.res)
	}
	s.flush(ctx, wm, idle)
}

// flush emits what the operator produced and forwards the watermark.
func (s *subtask) flush(ctx context.Context, wm int64, idle bool) {
	res := s.res
	s.firings.Add(float64(res.Firings))
	s.updates.Add(float64(res.Updates))
	s.retracts.Add(float64(res.Retractions))
	s.lateC.Add(float64(res.LateRecords))
	s.status.watermark.Store(wm)
	if res.RefusedRecords > 0 {
		s.flushRefused(ctx, res.Refused, res.RefusedRecords, wm)
		s.res.RefusedRecords = 0
		if res.Refused != nil {
			res.Refused.Reset()
		}
	}
	if res.Results.Len() == 0 && res.Late.Len() == 0 && res.Firings == 0 && wm == s.sentWM && idle == s.sentIdle {
		return
	}
	if res.Results.Len() > 0 || res.Late.Len() > 0 {
		s.newOutput()
	} else {
		s.res.Firings, s.res.Updates, s.res.Retractions, s.res.LateRecords = 0, 0, 0, 0
	}
	if len(s.conds) > 0 && res.Results.Len() > 0 {
		s.evalAlerts(ctx, res.Results, wm)
	}
	s.sentWM, s.sentIdle = wm, idle
	// Results trail the input's event time by the allowed lateness: until
	// then they may still be updated.
	s.out.emitFrom(ctx, res.Results, window.HoldBack(wm, s.st.hold), idle, s.resPool)
	s.late.emitFrom(ctx, res.Late, wm, idle, s.latePool)
}

// dropRows removes, in place, the rows of b whose bool field at idx is true.
func dropRows(b *record.Batch, idx int) {
	n := 0
	for i := 0; i < b.Len(); i++ {
		if b.Values[i*b.Width+idx].Bool() {
			continue
		}
		if n != i {
			copy(b.Values[n*b.Width:(n+1)*b.Width], b.Values[i*b.Width:(i+1)*b.Width])
			b.Times[n] = b.Times[i]
			if b.Keys != nil {
				b.Keys[n], b.KeyGroups[n] = b.Keys[i], b.KeyGroups[i]
			}
			if i < len(b.Hashes) {
				b.Hashes[n] = b.Hashes[i]
			}
		}
		n++
	}
	clear(b.Values[n*b.Width:])
	b.Values, b.Times = b.Values[:n*b.Width], b.Times[:n]
	if b.Keys != nil {
		b.Keys, b.KeyGroups = b.Keys[:n], b.KeyGroups[:n]
	}
	if len(b.Hashes) > n {
		b.Hashes = b.Hashes[:n]
	}
}

func (s *subtask) evalAlerts(ctx context.Context, results *record.Batch, wm int64) {
	schema := s.op.ResultSchema()
	nKey := len(s.st.spec.KeyBy)
	var out *record.Batch
	var keyBuf []byte
	for i := 0; i < results.Len(); i++ {
		row := results.Row(i)
		if row[nKey+3].Bool() {
			continue // a withdrawn result raises nothing
		}
		for j, cond := range s.conds {
			ok, err := cond(row)
			if err != nil {
				s.alertErrC[j].Inc()
				continue
			}
			if !ok {
				continue
			}
			if out == nil {
				out = record.NewBatch(AlertSchema.Len(), 8)
			}
			a := s.st.spec.Alerts[j]
			keyBuf = keyBuf[:0]
			for k := 0; k < nKey; k++ {
				if k > 0 {
					keyBuf = append(keyBuf, '/')
				}
				keyBuf = row[k].AppendText(keyBuf)
			}
			key := string(keyBuf)
			start, end, rev := row[nKey], row[nKey+1], row[nKey+2]
			ar := out.AppendRow(results.Times[i])
			ar[0] = record.String(alertID(s.st.spec.Name, a.Name, key, start.Int(), rev.Int()))
			ar[1] = record.String(a.Name)
			ar[2] = record.String(a.Severity)
			ar[3] = record.String(s.st.spec.Name)
			ar[4] = record.String(key)
			ar[5], ar[6], ar[7] = start, end, rev
			ar[8] = record.String(string(record.AppendJSON(nil, schema, row)))
			s.alertC[j].Inc()
		}
	}
	if out != nil {
		s.alerts.emit(ctx, out, wm, false)
	}
}

// splitStatus and subtaskStatus are updated by their tasks and read by the
// status API.
type splitStatus struct {
	source, split string
	position      atomic.Int64
	records       atomic.Int64
	watermark     atomic.Int64
	idle          atomic.Bool
	// failure is set while the split's reads fail (a broker went away)
	// and are retried with backoff: since when and the last failure.
	// /readyz reports not ready once it is older than Job.FailingGrace.
	failure atomic.Pointer[splitFailure]
	// beat is when the task last went round its loop (Unix ns), for the
	// watchdog (see liveness.go).
	beat atomic.Int64
	bp   *backpressure
}

// splitFailure is since when and why a split's reads fail.
type splitFailure struct {
	since time.Time
	err   string
}

type subtaskStatus struct {
	stage        string
	index        int
	watermark    atomic.Int64
	keys         atomic.Int64
	stateBytes   atomic.Int64
	stateLimited atomic.Bool
	bp           *backpressure
	// beat is as splitStatus.beat; ended is set once the subtask's input
	// has ended and it reports no more.
	beat  atomic.Int64
	ended atomic.Bool
}

func (r *Runtime) addSplitStatus(src, split string, bp *backpressure) *splitStatus {
	s := &splitStatus{source: src, split: split, bp: bp}
	s.watermark.Store(minWM)
	s.beat.Store(r.job.Now().UnixNano())
	r.statusMu.Lock()
	r.splits[src+"/"+split] = s
	r.statusMu.Unlock()
	return s
}

func (r *Runtime) removeSplitStatus(s *splitStatus) {
	r.statusMu.Lock()
	if r.splits[s.source+"/"+s.split] == s {
		delete(r.splits, s.source+"/"+s.split)
	}
	r.statusMu.Unlock()
}

func (r *Runtime) addSubtaskStatus(stage string, i int, bp *backpressure) *subtaskStatus {
	s := &subtaskStatus{stage: stage, index: i, bp: bp}
	s.watermark.Store(minWM)
	s.beat.Store(r.job.Now().UnixNano())
	r.statusMu.Lock()
	r.subtasks = append(r.subtasks, s)
	r.statusMu.Unlock()
	return s
}
