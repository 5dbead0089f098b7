package operator

import (
	"time"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/window"
)

// WatermarkConfig is a split's watermark strategy. Durations are wall-clock
// except MaxOutOfOrderness, which is event time.
type WatermarkConfig struct {
	// MaxOutOfOrderness is how far (ms) the watermark trails the newest event time.
	MaxOutOfOrderness int64
	// IdleTimeout marks the split idle after this long without records; 0 never.
	IdleTimeout time.Duration
	// SenderField, when >= 0, selects the per-sender strategy: the watermark
	// is the minimum over each sender's newest event time, ignoring senders
	// silent for longer than SenderIdleTimeout.
	SenderField       int
	SenderIdleTimeout time.Duration
	// SenderTTL (ms of event time) forgets a sender that far behind the
	// newest sender of the split; MaxSenders bounds the senders tracked,
	// forgetting those furthest behind first. 0 takes DefaultSenderTTL and
	// DefaultMaxSenders (see senderSet).
	SenderTTL  int64
	MaxSenders int
}

// watermarker tracks one split's watermark. Watermarks follow Flink's
// convention: watermark w promises no more records with event time <= w,
// so w = newest - maxOutOfOrderness - 1.
type watermarker struct {
	cfg      WatermarkConfig
	maxTime  int64
	lastData time.Time
	senders  *senderSet
	emitted  int64
	// failingSince is when the split's reads began to fail, zero while
	// they succeed (see setFailing).
	failingSince time.Time
}

func newWatermarker(cfg WatermarkConfig, now time.Time) *watermarker {
	w := &watermarker{cfg: cfg, maxTime: window.MinWatermark, lastData: now, emitted: window.MinWatermark}
	if cfg.SenderField >= 0 {
		w.senders = newSenderSet(cfg)
	}
	return w
}

// observe folds a decoded batch into the split's event-time state.
func (w *watermarker) observe(b *record.Batch, now time.Time) {
	if b.Len() == 0 {
		return
	}
	w.lastData = now
	if w.senders == nil {
		for _, t := range b.Times {
			w.maxTime = max(w.maxTime, t)
		}
		return
	}
	for i, t := range b.Times {
		w.senders.observe(b.Values[i*b.Width+w.cfg.SenderField].S, t, now)
	}
	w.senders.trim()
}

// setFailing records whether the split's reads fail. A split that cannot
// be read is failing, never idle: it holds the watermark where it is, and
// neither it nor its senders fall silent meanwhile — silence counts only
// while the split can be read, so the clocks of idleness resume where they
// stopped once it can. Otherwise an outage would let event time jump past
// the records the split has yet to deliver, and make them late.
func (w *watermarker) setFailing(failing bool, now time.Time) {
	switch {
	case failing && w.failingSince.IsZero():
		w.failingSince = now
	case !failing && !w.failingSince.IsZero():
		d := now.Sub(w.failingSince)
		w.failingSince = time.Time{}
		w.lastData = w.lastData.Add(d)
		if w.senders != nil {
			for _, s := range w.senders.byID {
				s.seen = s.seen.Add(d)
			}
		}
	}
}

// current returns the split's watermark and whether the split is idle. The
// watermark never goes backwards.
func (w *watermarker) current(now time.Time) (int64, bool) {
	if !w.failingSince.IsZero() {
		return w.emitted, false
	}
	if w.cfg.IdleTimeout > 0 && now.Sub(w.lastData) >= w.cfg.IdleTimeout {
		return w.emitted, true
	}
	newest := w.maxTime
	if w.senders != nil {
		var active int
		if newest, active = w.senders.low(now, w.cfg.SenderIdleTimeout); active == 0 {
			return w.emitted, true
		}
	}
	if newest == window.MinWatermark {
		return w.emitted, false
	}
	w.emitted = max(w.emitted, newest-w.cfg.MaxOutOfOrderness-1)
	return w.emitted, false
}

// valve combines the watermarks of a subtask's inputs: the minimum over
// inputs that are neither idle nor finished. When every input is finished
// event time ends; when every input is idle the watermark holds (or, with
// idle advance, follows the wall clock).
//
// The inputs of a stage that reads another stage are that stage's subtasks,
// which all see the same splits and so are idle together — except for the
// moments in which some have heard of a change and others not yet. Their
// idleness therefore never excludes them from the minimum (stageInputs):
// otherwise a subtask still idle would let the others move event time past
// the results it is about to send.
type valve struct {
	inputs      []valveInput
	stageInputs bool
	current     int64
	// allIdleSince is when the last active input went idle.
	allIdleSince time.Time
	idleBase     int64
}

type valveInput struct {
	wm     int64
	idle   bool
	done   bool
	joined bool
	// left is an input that stopped without ending (a revoked split).
	left bool
}

func newValve() *valve { return &valve{current: window.MinWatermark} }

func (v *valve) input(id int) *valveInput {
	for id >= len(v.inputs) {
		v.inputs = append(v.inputs, valveInput{wm: window.MinWatermark})
	}
	in := &v.inputs[id]
	in.joined = true
	return in
}

// update records an input's state and returns the combined watermark and
// whether every input is idle or finished.
func (v *valve) update(id int, wm int64, idle, done bool, now time.Time) (int64, bool) {
	in := v.input(id)
	in.wm = max(in.wm, wm)
	in.idle = idle
	in.done = done
	return v.combine(now)
}

// leave records an input that stopped without ending its input.
func (v *valve) leave(id int, now time.Time) (int64, bool) {
	in := v.input(id)
	in.done, in.left = true, true
	return v.combine(now)
}

func (v *valve) combine(now time.Time) (int64, bool) {
	low := int64(window.MaxWatermark)
	active, open, left := 0, 0, 0
	for i := range v.inputs {
		in := &v.inputs[i]
		if in.left {
			left++
		}
		if !in.joined || in.done {
			continue
		}
		open++
		if !in.idle {
			active++
		} else if !v.stageInputs {
			continue
		}
		low = min(low, in.wm)
	}
	switch {
	case open == 0 && len(v.inputs) > 0 && left == 0:
		v.current = window.MaxWatermark
		return v.current, false
	case open == 0 && left > 0:
		// Every input left (a rebalance revoked all splits): event time
		// holds until splits join again, without counting as idle, so
		// idle advance cannot fire windows meanwhile.
		v.allIdleSince = time.Time{}
		return v.current, false
	case active > 0:
		v.current = max(v.current, low)
		v.allIdleSince = time.Time{}
		return v.current, false
	case v.stageInputs && open > 0:
		// Every upstream subtask is idle: follow them (they may advance
		// with the wall clock) and pass the idleness on.
		v.current = max(v.current, low)
	}
	if v.allIdleSince.IsZero() {
		v.allIdleSince, v.idleBase = now, v.current
	}
	return v.current, true
}

// idleAdvance lets event time follow the wall clock once every input has
// been idle for at least after: it moves on by the wall time elapsed since
// they all went idle.
func (v *valve) idleAdvance(now time.Time, after time.Duration) (int64, bool) {
	if v.stageInputs {
		// A later stage follows its upstream, which advances (and holds
		// its results back by its lateness) itself.
		return v.current, false
	}
	if v.allIdleSince.IsZero() || v.current == window.MinWatermark || v.current == window.MaxWatermark {
		return v.current, false
	}
	idleFor := now.Sub(v.allIdleSince)
	if idleFor < after {
		return v.current, false
	}
	next := v.idleBase + idleFor.Milliseconds()
	if next <= v.current {
		return v.current, false
	}
	v.current = next
	return next, true
}
