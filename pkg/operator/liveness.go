package operator

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The defaults of Job.FailingGrace and Job.StallTimeout.
const (
	DefaultFailingGrace = 30 * time.Second
	DefaultStallTimeout = 15 * time.Minute
)

// Stalled returns why the pipeline is stuck, nil while it makes progress;
// /healthz (liveness) fails on it, so that an orchestrator restarts the
// process. The rule: a split reader or a subtask that has not turned its
// loop for Job.StallTimeout is stuck. Waiting is not: a split whose broker
// is unreachable turns its loop at every read deadline and retry (at least
// every few seconds) and is failing, which only makes the pipeline not
// ready; a subtask with no input turns its loop at every tick. What stops
// a loop is a call that never returns — a deadlock, a write to a sink that
// outlasts every retry limit — and a restart is the remedy for that. Sink
// writers run on their own goroutines: one whose command (a write, a
// prepare) has not returned for Job.StallTimeout is stuck too.
func (r *Runtime) Stalled() error {
	if !r.started() {
		return nil
	}
	now := r.job.Now()
	limit := r.job.StallTimeout
	var errs []error
	r.statusMu.Lock()
	for _, s := range r.splits {
		if d := now.Sub(time.Unix(0, s.beat.Load())); d >= limit {
			errs = append(errs, fmt.Errorf("split %s/%s has not read for %s", s.source, s.split, d.Round(time.Second)))
		}
	}
	for _, s := range r.subtasks {
		if s.ended.Load() {
			continue
		}
		if d := now.Sub(time.Unix(0, s.beat.Load())); d >= limit {
			errs = append(errs, fmt.Errorf("subtask %s/%d has not processed for %s", s.stage, s.index, d.Round(time.Second)))
		}
	}
	for w, name := range r.writers {
		if busy := w.busy.Load(); busy != 0 {
			if d := now.Sub(time.Unix(0, busy)); d >= limit {
				errs = append(errs, fmt.Errorf("%s has been writing for %s", name, d.Round(time.Second)))
			}
		}
	}
	r.statusMu.Unlock()
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}
