package operator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/operator/coordinator"
	"github.com/streamd/streamd/pkg/source"
)

// How tasks end. Every way out keeps one rule: nothing becomes visible that
// a later restore would produce again, and nothing that was read is dropped
// without a checkpoint that knows where to read it again.
//
//   - A split read to its end, and every task at the end of the input or
//     of a drain (a stop without savepoint), prepares its writers one last
//     time ("final states"). The runtime keeps those states with the
//     split's end position and puts both into the next checkpoint — a
//     periodic one while other splits still run, or the final checkpoint
//     the runtime takes once every task has ended. Its commit publishes
//     the output.
//   - A stop stops the splits behind a checkpoint barrier, while the
//     sources can still commit their positions, and their writers publish
//     what they hold with it. With a savepoint the windows stay open in it;
//     a drain then fires them and publishes them in the final checkpoint.
//   - A revoked split stops behind the barrier of a checkpoint of its own,
//     which publishes all the split's writers hold and commits its
//     position to the broker before the next owner is told to start.
//   - After a failure nothing more is published: the restart restores the
//     last completed checkpoint.

// splitEnd is how a split task ended.
type splitEnd int

const (
	// endCancelled: its context was cancelled (a stop, a revocation).
	endCancelled splitEnd = iota
	// endFinished: the split was read to its end.
	endFinished
	// endBarrier: it stopped behind a checkpoint barrier (a savepoint at
	// shutdown, or the checkpoint of a revocation).
	endBarrier
)

// splitHandle is a running split task as watchSplits tracks it.
type splitHandle struct {
	task   *splitTask
	cancel context.CancelFunc
}

// lifecycle is the runtime's bookkeeping for tasks that end.
type lifecycle struct {
	// writeCtx is the context of every sink write. It is not cancelled by
	// a stop, only once a drain has taken longer than Job.DrainTimeout.
	writeCtx     context.Context
	cancelWrites context.CancelFunc
	drainOnce    sync.Once
	drainTimer   *time.Timer

	mu sync.Mutex
	// stopped holds the end positions of splits a drain stopped.
	stopped map[string]checkpoint.SplitState
	// final holds, by task, the final states of writers that closed, until
	// a committed checkpoint covered them.
	final map[string]finalPart
	// rules holds, by stage, the rule engines' state at the end of the
	// input: rule definitions survive a final checkpoint.
	rules map[string][]coordinator.Part
	// resume holds where revoked splits whose position could not be
	// committed resume if this process reads them again.
	resume map[string]checkpoint.SplitState
}

// finalPart is one ended task's final writer states.
type finalPart struct {
	// split is "source/split" for a split task, "" for a subtask.
	split string
	sinks []checkpoint.SinkState
}

// endedSet is what a checkpoint carries for tasks that ended; its Tasks
// are the final parts included, dropped once committed.
type endedSet = coordinator.Ended

// initWrites makes the write context of one Run.
func (r *Runtime) initWrites(ctx context.Context) {
	r.lc.writeCtx, r.lc.cancelWrites = context.WithCancel(context.WithoutCancel(ctx))
}

// writeContext is the context sink writes use.
func (r *Runtime) writeContext() context.Context {
	if r.lc.writeCtx == nil {
		return context.Background()
	}
	return r.lc.writeCtx
}

// beginDrain bounds the drain that follows a stop or a failure: writes
// still pending after Job.DrainTimeout fail instead of blocking the exit.
func (r *Runtime) beginDrain() {
	r.lc.drainOnce.Do(func() {
		if r.lc.cancelWrites == nil {
			return
		}
		r.lc.mu.Lock()
		r.lc.drainTimer = time.AfterFunc(r.job.DrainTimeout, func() {
			r.log.Error("drain timed out; cancelling sink writes", zap.Duration("drainTimeout", r.job.DrainTimeout))
			r.lc.cancelWrites()
		})
		r.lc.mu.Unlock()
	})
}

// stopDrainClock releases the drain timer when Run returns.
func (r *Runtime) stopDrainClock() {
	r.lc.mu.Lock()
	defer r.lc.mu.Unlock()
	if r.lc.drainTimer != nil {
		r.lc.drainTimer.Stop()
	}
}

// takesFinal reports whether a task that ends now prepares its writers
// for a final checkpoint.
func (r *Runtime) takesFinal(end splitEnd) bool {
	if r.coordinator == nil || r.failed.Load() {
		return false
	}
	// A split read to its end always does: its end position goes into
	// the next checkpoint, so its output must too. Other tasks do unless
	// a savepoint holds their state.
	return end == endFinished || !r.noDrain.Load()
}

// next is the position of the split's next message.
func (t *splitTask) next() source.Position {
	if p, ok := t.reader.(source.Positioner); ok {
		return p.Position()
	}
	return t.last
}

// finish ends a split task: it reports the barriers it still owes, records
// where it ended with the final states of its writers (see takesFinal),
// closes the reader and leaves its consumers.
func (t *splitTask) finish(log *zap.Logger) {
	defer close(t.done)
	r := t.r
	wctx := r.writeContext()
	key := t.src.spec.Name + "/" + t.split.ID
	st := checkpoint.SplitState{Source: t.src.spec.Name, Split: t.split.ID}
	if !t.revoked.Load() && t.end != endBarrier && r.takesFinal(t.end) {
		// Barriers injected so far see the writers as they are.
		t.markers()
		t.flushDead(wctx, t.wm.emitted)
		sinks := t.out.finalStates(wctx)
		sinks = append(sinks, t.dead.finalStates(wctx)...)
		st.Next, st.Watermark = t.next(), t.wm.emitted
		// Leaving the running set and recording the end happen together:
		// every checkpoint sees the split either running or ended.
		r.markerMu.Lock()
		delete(r.running, t)
		r.lc.mu.Lock()
		if t.end == endFinished {
			r.splitFinished(st)
		} else {
			if r.lc.stopped == nil {
				r.lc.stopped = make(map[string]checkpoint.SplitState)
			}
			r.lc.stopped[key] = st
		}
		if r.lc.final == nil {
			r.lc.final = make(map[string]finalPart)
		}
		r.lc.final[t.out.task] = finalPart{split: key, sinks: sinks}
		r.lc.mu.Unlock()
		r.markerMu.Unlock()
	} else {
		st.Next, st.Watermark = t.next(), t.wm.emitted
		if t.end == endFinished {
			r.splitFinished(st)
		}
		r.markerMu.Lock()
		delete(r.running, t)
		if t.end == endBarrier && !t.revoked.Load() && r.takesFinal(endCancelled) {
			// Stopped behind the checkpoint of a drain: its writers' output
			// is in that checkpoint; the final one records where it stopped.
			r.lc.mu.Lock()
			if r.lc.stopped == nil {
				r.lc.stopped = make(map[string]checkpoint.SplitState)
			}
			r.lc.stopped[key] = st
			r.lc.mu.Unlock()
		}
		r.markerMu.Unlock()
	}
	// Barriers injected before the split left still expect its position:
	// report them (no more can arrive now).
	t.markers()
	if err := t.reader.Close(); err != nil {
		log.Warn("close split", zap.Error(err))
	}
	if t.revoked.Load() {
		t.out.leave(wctx)
		t.dead.leave(wctx)
	} else {
		t.out.finish(wctx)
		t.dead.finish(wctx)
	}
	r.removeSplitStatus(t.status)
}

// endOfInput ends a subtask once all its inputs have ended: event time ends
// and every window fires — unless the state was saved in a savepoint to
// resume from. The writers' final states wait for the final checkpoint.
func (s *subtask) endOfInput(ctx context.Context) {
	s.completeAsync(true)
	r := s.r
	final := r.takesFinal(endCancelled)
	if s.st.spec.Rules != nil && final {
		// Rule definitions and states go into the final checkpoint as they
		// are before event time ends. (A snapshot that fails fails the
		// pipeline, and with it the final checkpoint.)
		part := coordinator.Part{Index: s.idx, Watermark: s.op.Watermark(), Groups: s.op.Snapshot()}
		r.lc.mu.Lock()
		if r.lc.rules == nil {
			r.lc.rules = make(map[string][]coordinator.Part)
		}
		r.lc.rules[s.st.spec.Name] = append(r.lc.rules[s.st.spec.Name], part)
		r.lc.mu.Unlock()
	}
	if !r.noDrain.Load() {
		s.op.Advance(maxWM, &s.res)
		s.flush(ctx, maxWM, false)
	}
	if final {
		var sinks []checkpoint.SinkState
		for _, e := range s.stateEmitters() {
			if e != nil {
				sinks = append(sinks, e.finalStates(ctx)...)
			}
		}
		r.lc.mu.Lock()
		if r.lc.final == nil {
			r.lc.final = make(map[string]finalPart)
		}
		r.lc.final[s.out.task] = finalPart{sinks: sinks}
		r.lc.mu.Unlock()
	}
	s.out.finish(ctx)
	s.late.finish(ctx)
	if s.alerts != nil {
		s.alerts.finish(ctx)
	}
	if s.state.dead != nil {
		s.state.dead.finish(ctx)
	}
	s.keys.Set(0)
}

// endedParts returns what a checkpoint carries for ended tasks. With
// seenSplits set (a checkpoint with a barrier) a split cut by the barrier
// is reported by its cut, not as ended, and subtasks' final states wait
// for the final checkpoint; without (the final checkpoint) everything is
// returned.
func (r *Runtime) endedParts(seenSplits []checkpoint.SplitState, seenSinks []checkpoint.SinkState, barrier bool) endedSet {
	seen := make(map[string]bool, len(seenSplits))
	for _, s := range seenSplits {
		seen[s.Source+"/"+s.Split] = true
	}
	seenTask := make(map[string]bool, len(seenSinks))
	for _, s := range seenSinks {
		seenTask[s.Sink+"\x00"+s.Task] = true
	}
	r.lc.mu.Lock()
	defer r.lc.mu.Unlock()
	var out endedSet
	for _, st := range r.finishedSplits() {
		if !seen[st.Source+"/"+st.Split] {
			out.Splits = append(out.Splits, st)
		}
	}
	for key, st := range r.lc.stopped {
		if !seen[key] {
			out.Splits = append(out.Splits, st)
		}
	}
	for task, part := range r.lc.final {
		if (part.split != "" && seen[part.split]) || (part.split == "" && barrier) {
			continue
		}
		for _, s := range part.sinks {
			if !seenTask[s.Sink+"\x00"+s.Task] {
				out.Sinks = append(out.Sinks, s)
			}
		}
		out.Tasks = append(out.Tasks, task)
	}
	return out
}

// newerGroupPosition returns where a split restored from the newest
// checkpoint resumes: at the group's committed position if that is newer.
// Then another member of the group read the split after this instance's
// checkpoint (and published its output), so starting at the checkpoint
// would repeat it. A restore of an older checkpoint on request (--from)
// replays from it as asked.
func (r *Runtime) newerGroupPosition(src *sourceRT, split string, pos *source.Position) *source.Position {
	if r.coordinator == nil || r.coordinator.Config().RestoreFrom != 0 {
		return pos
	}
	return r.laterGroupPosition(src, split, pos)
}

// laterGroupPosition returns the later of pos and the group's committed
// position of the split.
func (r *Runtime) laterGroupPosition(src *sourceRT, split string, pos *source.Position) *source.Position {
	gp, ok := src.spec.Source.(source.GroupPositioner)
	if !ok || pos == nil {
		return pos
	}
	committed, ok := gp.GroupPosition(split)
	if !ok || committed.Offset <= pos.Offset {
		return pos
	}
	r.log.Info("another member read the split after the restored checkpoint; resuming at the group's offset",
		zap.String("source", src.spec.Name), zap.String("split", split), zap.Int64("checkpoint", pos.Offset), zap.Int64("group", committed.Offset))
	return &committed
}

// takeResume returns, once, where a revoked split resumes in this process
// when its position could not be committed.
func (r *Runtime) takeResume(src, split string) (checkpoint.SplitState, bool) {
	r.lc.mu.Lock()
	defer r.lc.mu.Unlock()
	st, ok := r.lc.resume[src+"/"+split]
	delete(r.lc.resume, src+"/"+split)
	return st, ok
}

// endedCommitted drops final states a committed checkpoint published; the
// end positions stay, every later checkpoint records them.
func (r *Runtime) endedCommitted(set endedSet) {
	r.lc.mu.Lock()
	defer r.lc.mu.Unlock()
	for _, task := range set.Tasks {
		delete(r.lc.final, task)
	}
}

// finalCheckpoint takes the checkpoint that ends a run whose tasks all
// ended by themselves or by a drain. It is skipped after a savepoint (which
// covers the stop) and after a failure (the restart restores the last
// completed checkpoint).
func (r *Runtime) finalCheckpoint() error {
	c := r.coordinator
	if c == nil || r.noDrain.Load() || r.failed.Load() {
		return nil
	}
	ended := r.endedParts(nil, nil, false)
	r.lc.mu.Lock()
	rules := r.lc.rules
	r.lc.mu.Unlock()
	id, err := c.Final(ended, rules)
	if err != nil {
		return fmt.Errorf("take final checkpoint: %w", err)
	}
	r.log.Info("final checkpoint complete: the output of this run is published", zap.Int64("id", id))
	return nil
}

// drainStop stops the splits of a pipeline that drains at a stop
// (savepointOnStop: false) behind the barrier of a checkpoint, while the
// sources can still commit (a Kafka group is still joined): its positions
// are where the next reader starts. The windows then fire and the final
// checkpoint publishes them.
func (r *Runtime) drainStop(c *Coordinator) {
	ctx, cancel := context.WithTimeout(context.Background(), c.Config().Timeout)
	defer cancel()
	id, err := c.Drain(ctx)
	if err != nil {
		r.log.Error("checkpoint at the stop failed; the splits stop where they are", zap.Error(err))
		return
	}
	r.log.Info("splits stopped behind a checkpoint; draining", zap.Int64("id", id))
}

// revokeSplit drains a revoked split and waits until its task has ended.
// With checkpoints the split stops behind a checkpoint of its own, which
// publishes what its writers hold and commits its position, so the next
// owner continues exactly after it; without, it stops and its writers
// close (and publish).
func (r *Runtime) revokeSplit(ctx context.Context, src *sourceRT, id string, h *splitHandle) {
	t := h.task
	t.revoked.Store(true)
	if c := r.coordinator; c != nil && !r.failed.Load() && ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, c.Config().Timeout)
		at, err := c.StopSplit(cctx, src.spec.Name, id)
		cancel()
		if at != nil {
			r.lc.mu.Lock()
			if r.lc.resume == nil {
				r.lc.resume = make(map[string]checkpoint.SplitState)
			}
			r.lc.resume[src.spec.Name+"/"+id] = *at
			r.lc.mu.Unlock()
		}
		switch {
		case err == nil:
			r.log.Info("revoked split drained", zap.String("source", src.spec.Name), zap.String("split", id))
		case errors.Is(err, coordinator.ErrNoSplits) || errors.Is(err, ErrNotRunning) || ctx.Err() != nil:
		default:
			// The next owner starts at an older position than the one
			// whose output this task staged: restart from the last
			// completed checkpoint rather than guess.
			r.fail(fmt.Errorf("drain revoked split %q of source %q: %w", id, src.spec.Name, err))
		}
	}
	h.cancel()
	<-t.done
}
