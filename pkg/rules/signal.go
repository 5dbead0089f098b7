package rules

import (
	"math"
	"sort"

	"github.com/streamd/streamd/pkg/record"
)

// noTimer is the "no event pending" time.
const noTimer = math.MaxInt64

// point is one input of a windowed signal.
type point struct {
	t int64
	v float64
}

// sigState is one signal of one (rule, key). Windowed aggregates keep their
// inputs in event-time order in pts[head:] with a running sum, so adding and
// expiring a point is O(1) for count/sum/avg; min/max cache the extreme and
// rescan only when the extreme itself expires.
type sigState struct {
	// has, t and v are the latest value and its event time.
	has bool
	t   int64
	v   record.Value

	pts   []point
	head  int
	sum   float64
	ext   float64
	extOK bool
}

// add folds an input observed at event time t into the signal, evaluated at
// time now (the key's clock). It reports whether the signal may have changed.
func (sp *signalProg) add(st *sigState, t int64, v record.Value, now int64, maxPts int) (bool, error) {
	if sp.agg == AggLatest {
		if sp.window > 0 && t+sp.window <= now {
			return false, nil // already outside its validity
		}
		if st.has && t < st.t {
			return false, nil // an older observation does not replace a newer one
		}
		if v.IsNull() {
			return false, nil
		}
		if sp.typ == record.TypeFloat {
			f, ok, err := asNumber(v)
			if err != nil || !ok {
				return false, err
			}
			v = record.Float(f)
		} else if v.T != sp.typ {
			return false, errSignalType(sp, v)
		}
		changed := !st.has || !record.Equal(st.v, v)
		if changed && v.T == record.TypeString {
			v = v.Clone()
		}
		if changed {
			st.v = v
		}
		st.has, st.t = true, t
		return changed, nil
	}
	if t+sp.window <= now {
		return false, nil
	}
	f := 1.0
	if sp.agg != AggCount || sp.value != nil {
		var ok bool
		var err error
		if sp.agg == AggCount {
			ok = !v.IsNull()
		} else {
			f, ok, err = asNumber(v)
		}
		if err != nil || !ok {
			return false, err
		}
	}
	if len(st.pts)-st.head >= maxPts {
		st.drop(sp)
	}
	p := point{t: t, v: f}
	if n := len(st.pts); n == st.head || st.pts[n-1].t <= t {
		st.pts = append(st.pts, p)
	} else {
		live := st.pts[st.head:]
		i := sort.Search(len(live), func(i int) bool { return live[i].t > t }) + st.head
		st.pts = append(st.pts, point{})
		copy(st.pts[i+1:], st.pts[i:])
		st.pts[i] = p
	}
	st.sum += f
	if st.extOK && ((sp.agg == AggMax && f > st.ext) || (sp.agg == AggMin && f < st.ext)) {
		st.ext = f
	}
	if len(st.pts)-st.head == 1 {
		st.ext, st.extOK = f, true
	}
	return true, nil
}

// drop removes the oldest point.
func (st *sigState) drop(sp *signalProg) {
	p := st.pts[st.head]
	st.head++
	st.sum -= p.v
	if p.v == st.ext {
		st.extOK = false
	}
	if st.head == len(st.pts) {
		st.pts, st.head, st.sum, st.extOK = st.pts[:0], 0, 0, false
		return
	}
	if st.head > 32 && st.head > len(st.pts)/2 {
		n := copy(st.pts, st.pts[st.head:])
		st.pts, st.head = st.pts[:n], 0
	}
	_ = sp
}

// expire removes what is no longer inside the window at now and reports
// whether anything was removed.
func (sp *signalProg) expire(st *sigState, now int64) bool {
	if sp.window <= 0 {
		return false
	}
	if sp.agg == AggLatest {
		if st.has && st.t+sp.window <= now {
			st.has, st.v = false, record.Null
			return true
		}
		return false
	}
	changed := false
	for st.head < len(st.pts) && st.pts[st.head].t+sp.window <= now {
		st.drop(sp)
		changed = true
	}
	return changed
}

// nextExpiry is the event time at which the signal next changes by itself.
func (sp *signalProg) nextExpiry(st *sigState) int64 {
	if sp.window <= 0 || sp.lazy {
		return noTimer
	}
	if sp.agg == AggLatest {
		if st.has {
			return st.t + sp.window
		}
		return noTimer
	}
	if st.head < len(st.pts) {
		return st.pts[st.head].t + sp.window
	}
	return noTimer
}

// current is the signal's current value; null when it has no input.
func (sp *signalProg) current(st *sigState) record.Value {
	n := len(st.pts) - st.head
	switch sp.agg {
	case AggLatest:
		if !st.has {
			return record.Null
		}
		return st.v
	case AggCount:
		return record.Float(float64(n))
	}
	if n == 0 {
		return record.Null
	}
	switch sp.agg {
	case AggSum:
		return record.Float(st.sum)
	case AggAvg:
		return record.Float(st.sum / float64(n))
	}
	if !st.extOK {
		ext := st.pts[st.head].v
		for _, p := range st.pts[st.head+1:] {
			if (sp.agg == AggMax && p.v > ext) || (sp.agg == AggMin && p.v < ext) {
				ext = p.v
			}
		}
		st.ext, st.extOK = ext, true
	}
	return record.Float(st.ext)
}

// recompute rebuilds the running sum after a restore.
func (st *sigState) recompute() {
	st.sum, st.extOK = 0, false
	for _, p := range st.pts[st.head:] {
		st.sum += p.v
	}
}

func (st *sigState) clone() sigState {
	c := *st
	c.pts = append([]point(nil), st.pts[st.head:]...)
	c.head = 0
	return c
}
