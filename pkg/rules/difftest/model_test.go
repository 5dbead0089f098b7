package difftest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"slices"
	"sort"
)

// The reference model: the documented semantics of a rule stage, by brute
// force. Nothing here is incremental: every signal value is recomputed from
// all inputs a key ever accepted, and the next event of a key is found by
// scanning them all. It replays the runtime's input exactly — the order in
// which records, watermarks and rule changes reach the stage — which the
// harness makes deterministic.

const (
	minWM = math.MinInt64
	maxWM = math.MaxInt64
)

type tri uint8

const (
	triF tri = iota
	triT
	triU
)

func truth(b bool) tri {
	if b {
		return triT
	}
	return triF
}

func not3(a tri) tri {
	switch a {
	case triT:
		return triF
	case triF:
		return triT
	}
	return triU
}

func and3(a, b tri) tri {
	switch {
	case a == triF || b == triF:
		return triF
	case a == triT && b == triT:
		return triT
	}
	return triU
}

func or3(a, b tri) tri {
	switch {
	case a == triT || b == triT:
		return triT
	case a == triF && b == triF:
		return triF
	}
	return triU
}

// alertOut is one alert row as the stage emits it.
type alertOut struct {
	ID       string
	Rule     string
	Version  int64
	Key      string
	Old, New string
	Group    string
	Severity string
	At       int64
	Signals  map[string]*float64
	Labels   map[string]string
}

// lateOut is one late record with the watermark that made it late.
type lateOut struct {
	Rec rec
	WM  int64
}

// input is one observation a signal of a key accepted.
type input struct {
	t   int64
	v   float64
	seq int // arrival order, for equal event times
}

const (
	inactive = iota
	pending
	firing
)

type mGroup struct {
	phase int
	since int64
}

type mKey struct {
	key     string
	clock   int64
	inputs  map[string][]input // by signal name
	groups  map[string]mGroup  // by group name
	state   string
	decider string // group that decided the current state, "" none
	dirty   bool
	dirtyAt int64
	lastAt  int64
	nAt     int
	// lastRec is the event time of the newest record that reached the key.
	lastRec int64
}

type mRule struct {
	def  *ruleDef
	keys map[string]*mKey
}

type mSplit struct {
	maxT    int64
	emitted int64
	done    bool
}

type model struct {
	w      *workload
	wm     int64
	splits []mSplit
	rules  map[string]*mRule
	tomb   map[string]int64
	seq    int
	alerts []alertOut
	late   []lateOut
}

func newModel(w *workload) *model {
	m := &model{w: w, wm: minWM, rules: map[string]*mRule{}, tomb: map[string]int64{}}
	for range w.splits {
		m.splits = append(m.splits, mSplit{maxT: minWM, emitted: minWM})
	}
	for _, r := range w.initial {
		m.rules[r.id] = &mRule{def: r, keys: map[string]*mKey{}}
	}
	return m
}

// run replays a script; accepted reports, per put/delete step, whether the
// rule manager must accept it.
func (m *model) run() (accepted []bool) {
	for _, s := range m.w.steps {
		switch s.kind {
		case "batch":
			for i := 0; i < len(s.recs); i += m.w.batchSize {
				m.batch(s.split, s.recs[i:min(i+m.w.batchSize, len(s.recs))])
			}
		case "put":
			accepted = append(accepted, m.put(s.rule))
		case "delete":
			accepted = append(accepted, m.del(s.id))
		case "end":
			m.splits[s.split].done = true
			m.combine()
		case "restart":
			// A stop with a savepoint and a restore change nothing.
		}
	}
	return accepted
}

// batch is one read of a split: its records reach the stage with the
// stage's watermark before it, then the split's watermark moves.
func (m *model) batch(split int, recs []rec) {
	before := m.wm
	for _, r := range recs {
		if before != minWM && r.t <= before-m.w.lateness {
			m.late = append(m.late, lateOut{Rec: r, WM: before})
			continue
		}
		m.record(r, before)
	}
	sp := &m.splits[split]
	for _, r := range recs {
		sp.maxT = max(sp.maxT, r.t)
	}
	if sp.maxT != minWM {
		sp.emitted = max(sp.emitted, sp.maxT-m.w.bound-1)
	}
	m.combine()
}

// combine sets the stage watermark: the minimum over open splits, the end
// of time when none is open; it never goes back.
func (m *model) combine() {
	low, open := int64(maxWM), 0
	for _, s := range m.splits {
		if !s.done {
			open++
			low = min(low, s.emitted)
		}
	}
	if open == 0 {
		low = maxWM
	}
	if low > m.wm {
		m.wm = low
		m.advance(low)
	}
}

func (m *model) sortedRules() []*mRule {
	out := make([]*mRule, 0, len(m.rules))
	for _, r := range m.rules {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].def.id < out[j].def.id })
	return out
}

func (r *mRule) sortedKeys() []*mKey {
	out := make([]*mKey, 0, len(r.keys))
	for _, k := range r.keys {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// signalInput is what a record offers a signal, if the signal takes it.
func signalInput(s signalDef, r rec) (float64, bool) {
	if s.when.eval(r) != triT {
		return 0, false
	}
	switch s.value {
	case "":
		return 1, true // count of records
	case "value * 2":
		if r.value == nil {
			return 0, false
		}
		return 2 * *r.value, true
	}
	if r.value == nil {
		return 0, false
	}
	return *r.value, true
}

func (m *model) record(x rec, wm int64) {
	for _, r := range m.sortedRules() {
		d := r.def
		if !d.enabled || d.sel.eval(x) != triT {
			continue
		}
		// A record matched by no signal leaves the rule alone.
		matched := false
		for _, s := range d.signals {
			if s.when.eval(x) == triT {
				matched = true
			}
		}
		if !matched {
			continue
		}
		key := x.key
		if len(d.key) == 2 {
			key += "|" + x.site
		}
		k := r.keys[key]
		if k == nil {
			k = &mKey{key: key, clock: minWM, lastRec: minWM, inputs: map[string][]input{}, groups: map[string]mGroup{}, state: d.states[0]}
			r.keys[key] = k
		}
		k.lastRec = max(k.lastRec, x.t)
		now := max(k.clock, x.t, wm)
		m.settle(r, k)
		m.play(r, k, now, false)
		k.clock = max(k.clock, now)
		for _, s := range d.signals {
			v, ok := signalInput(s, x)
			if !ok {
				continue
			}
			// An input already outside its window at the key's clock
			// changes nothing; a latest value without a window has the
			// state TTL for one.
			if w := validity(s, m.w); w > 0 && x.t+w <= now {
				continue
			}
			if s.agg != "latest" {
				m.bound(k, s, now)
			}
			m.seq++
			k.inputs[s.name] = append(k.inputs[s.name], input{t: x.t, v: v, seq: m.seq})
		}
		m.evaluate(r, k, now)
	}
}

// bound keeps a windowed signal at most maxSignalPoints inputs per key:
// before one more is added, the oldest one still in the window is dropped.
func (m *model) bound(k *mKey, s signalDef, now int64) {
	ins := k.inputs[s.name]
	live, oldest := 0, -1
	for i, in := range ins {
		if in.t+s.window <= now {
			continue
		}
		live++
		if oldest < 0 || in.t < ins[oldest].t || (in.t == ins[oldest].t && in.seq < ins[oldest].seq) {
			oldest = i
		}
	}
	if live >= m.w.maxPoints {
		k.inputs[s.name] = slices.Delete(ins, oldest, oldest+1)
	}
}

// advance plays every key's events up to the watermark.
func (m *model) advance(wm int64) {
	for _, r := range m.sortedRules() {
		if !r.def.enabled {
			continue
		}
		for _, k := range r.sortedKeys() {
			if k.dirty && k.dirtyAt > wm {
				continue
			}
			m.settle(r, k)
			m.play(r, k, wm, true)
			k.clock = max(k.clock, wm)
		}
	}
}

// settle evaluates a key carried over to a new version at the update's time.
func (m *model) settle(r *mRule, k *mKey) {
	if !k.dirty {
		return
	}
	m.play(r, k, k.dirtyAt, true)
	k.clock = max(k.clock, k.dirtyAt)
	m.evaluate(r, k, k.clock)
	k.dirty = false
}

// nextEvent is the earliest time after the key's clock at which something
// changes by itself: an input leaving its window, a latest value leaving
// its window, a duration ending. Only the current latest value's expiry
// counts (older inputs of a latest signal are superseded): evaluating at
// an instant where no value changed is not harmless once latest values
// without a window can be aged past the state TTL at that instant.
func (m *model) nextEvent(r *mRule, k *mKey) (int64, bool) {
	next, found := int64(maxWM), false
	for _, s := range r.def.signals {
		if s.window == 0 {
			continue
		}
		ins := k.inputs[s.name]
		if s.agg == "latest" {
			var best *input
			for i := range ins {
				if in := &ins[i]; best == nil || in.t > best.t || (in.t == best.t && in.seq > best.seq) {
					best = in
				}
			}
			if best == nil {
				continue
			}
			ins = []input{*best}
		}
		for _, in := range ins {
			if e := in.t + s.window; e > k.clock && e < next {
				next, found = e, true
			}
		}
	}
	for _, g := range r.def.groups {
		if gs := k.groups[g.name]; gs.phase == pending {
			if e := gs.since + g.forMs; e < next {
				next, found = e, true
			}
		}
	}
	return next, found
}

func (m *model) play(r *mRule, k *mKey, to int64, inclusive bool) {
	for {
		e, ok := m.nextEvent(r, k)
		if !ok || e > to || (e == to && !inclusive) {
			return
		}
		k.clock = e
		m.evaluate(r, k, e)
	}
}

// validity is how long an input of s counts: its window, or for a
// latest signal without one the state TTL. A value aged past the TTL is
// absent from every later evaluation, but its ageing is no event of its
// own (nextEvent skips it): nothing is evaluated just because of it.
func validity(s signalDef, w *workload) int64 {
	if s.agg == "latest" && s.window == 0 {
		return w.ttl()
	}
	return s.window
}

// values are the signals at event time at: a latest value is valid on
// [t, t+window); a windowed aggregate covers inputs in (at-window, at].
func values(d *ruleDef, w *workload, k *mKey, at int64) map[string]*float64 {
	out := map[string]*float64{}
	for _, s := range d.signals {
		ins := k.inputs[s.name]
		if s.agg == "latest" {
			var best *input
			for i := range ins {
				in := &ins[i]
				if best == nil || in.t > best.t || (in.t == best.t && in.seq > best.seq) {
					best = in
				}
			}
			if best != nil && best.t+validity(s, w) > at {
				v := best.v
				out[s.name] = &v
			} else {
				out[s.name] = nil
			}
			continue
		}
		var live []float64
		for _, in := range ins {
			if in.t+s.window > at && in.t <= at {
				live = append(live, in.v)
			}
		}
		var v float64
		switch s.agg {
		case "count":
			v = float64(len(live))
		case "sum":
			for _, x := range live {
				v += x
			}
		case "avg":
			for _, x := range live {
				v += x
			}
			v /= float64(len(live))
		case "max":
			if len(live) > 0 {
				v = slices.Max(live)
			}
		case "min":
			if len(live) > 0 {
				v = slices.Min(live)
			}
		}
		if len(live) == 0 && s.agg != "count" {
			out[s.name] = nil
			continue
		}
		out[s.name] = &v
	}
	return out
}

func stateRank(d *ruleDef, s string) int { return slices.Index(d.states, s) }

// evaluate decides every group at event time at and emits an alert when
// the rule's state for the key changes.
func (m *model) evaluate(r *mRule, k *mKey, at int64) {
	d := r.def
	sig := values(d, m.w, k, at)
	best := -1
	for gi, g := range d.groups {
		// all: every condition holds; any: at least one does. Unknown
		// does not hold.
		holds := g.match != "any"
		for _, c := range g.conds {
			if t := c.eval(sig); g.match == "any" && t == triT {
				holds = true
			} else if g.match != "any" && t != triT {
				holds = false
			}
		}
		gs := k.groups[g.name]
		switch gs.phase {
		case inactive:
			if holds {
				gs = mGroup{phase: pending, since: at}
				if g.forMs == 0 {
					gs.phase = firing
				}
			}
		case pending:
			switch {
			case !holds:
				gs.phase = inactive
			case gs.since+g.forMs <= at:
				gs.phase = firing
			}
		case firing:
			// An unknown clear counts as holding.
			if !holds && (g.clear == nil || g.clear.eval(sig) != triF) {
				gs.phase = inactive
			}
		}
		k.groups[g.name] = gs
		if gs.phase == firing {
			if best < 0 {
				best = gi
				continue
			}
			b := d.groups[best]
			if rg, rb := stateRank(d, g.state), stateRank(d, b.state); rg > rb || (rg == rb && g.weight > b.weight) {
				best = gi
			}
		}
	}
	newState, decider := d.states[0], ""
	if best >= 0 {
		newState, decider = d.groups[best].state, d.groups[best].name
	}
	if newState != k.state {
		group := decider
		if best < 0 {
			group = k.decider
		}
		if k.nAt > 0 && k.lastAt == at {
			k.nAt++
		} else {
			k.lastAt, k.nAt = at, 1
		}
		if !d.dryRun {
			m.alerts = append(m.alerts, alertOut{
				ID: alertID(d.id, d.version, k.key, at, newState, k.nAt-1), Rule: d.id, Version: d.version, Key: k.key,
				Old: k.state, New: newState, Group: group, Severity: d.severity, At: at, Signals: sig, Labels: d.labels,
			})
		}
		k.state = newState
	}
	k.decider = decider
}

// alertID is the documented alert ID: the first 16 bytes of the SHA-256
// of the length-prefixed rule id, key and new state, the version and the
// event time, and for the n-th (n > 0) transition of a key at one event
// time, n.
func alertID(rule string, version int64, key string, at int64, state string, n int) string {
	h := sha256.New()
	var b [8]byte
	for _, s := range []string{rule, key, state} {
		binary.BigEndian.PutUint64(b[:], uint64(len(s)))
		h.Write(b[:])
		h.Write([]byte(s))
	}
	for _, x := range []int64{version, at} {
		binary.BigEndian.PutUint64(b[:], uint64(x))
		h.Write(b[:])
	}
	if n > 0 {
		binary.BigEndian.PutUint64(b[:], uint64(n))
		h.Write(b[:])
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}

// idle reports whether the state TTL has let a key go, as documented: no
// record reached it for the TTL, no input of it is still valid, it is at
// rest, nothing of its own is pending and it raised no alert at the
// watermark's instant. Such a key is indistinguishable from a new one,
// except that a rule update does not carry it over.
func (m *model) idle(r *mRule, k *mKey) bool {
	ttl := m.w.ttl()
	if k.dirty || k.state != r.def.states[0] || k.lastRec+ttl > m.wm || k.nAt > 0 && k.lastAt >= m.wm {
		return false
	}
	for _, g := range k.groups {
		if g.phase != inactive {
			return false
		}
	}
	for _, s := range r.def.signals {
		for _, in := range k.inputs[s.name] {
			if in.t+validity(s, m.w) > m.wm {
				return false
			}
		}
	}
	return true
}

// put applies a rule change with the documented version rules; it
// reports whether the change is accepted.
func (m *model) put(d *ruleDef) bool {
	cur := m.rules[d.id]
	if cur != nil && d.version <= cur.def.version {
		return d.version == cur.def.version && string(d.doc()) == string(cur.def.doc())
	}
	if v, ok := m.tomb[d.id]; ok && d.version <= v {
		return false
	}
	delete(m.tomb, d.id)
	nr := &mRule{def: d, keys: map[string]*mKey{}}
	m.rules[d.id] = nr
	if cur == nil || !d.enabled {
		return true
	}
	// Carried over: signals and groups whose definition did not change,
	// each key's state; every key is re-evaluated at the update's time.
	for _, ok := range cur.sortedKeys() {
		if m.idle(cur, ok) {
			continue // forgotten: the state TTL let it go
		}
		k := &mKey{lastRec: ok.lastRec, key: ok.key, clock: ok.clock, inputs: map[string][]input{}, groups: map[string]mGroup{}, state: d.states[0], dirty: true, dirtyAt: max(ok.clock, m.wm)}
		for _, s := range d.signals {
			for _, os := range cur.def.signals {
				if s.same(os) {
					k.inputs[s.name] = slices.Clone(ok.inputs[s.name])
				}
			}
		}
		for _, g := range d.groups {
			for _, og := range cur.def.groups {
				if g.key() == og.key() {
					k.groups[g.name] = ok.groups[g.name]
				}
			}
		}
		if slices.Contains(d.states, ok.state) {
			k.state = ok.state
		}
		for _, g := range d.groups {
			if g.name == ok.decider {
				k.decider = g.name
			}
		}
		nr.keys[k.key] = k
	}
	return true
}

func (m *model) del(id string) bool {
	cur := m.rules[id]
	if cur == nil {
		return false
	}
	m.tomb[id] = cur.def.version
	delete(m.rules, id)
	return true
}
