package rules

import (
	"bytes"
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/streamd/streamd/pkg/record"
)

// Options configures an Engine.
type Options struct {
	// QuarantineAfter is the number of consecutive evaluation errors after
	// which a rule is quarantined (disabled with the reason kept).
	QuarantineAfter int `yaml:"quarantineAfter"`
	// MaxSignalPoints bounds the inputs a windowed signal keeps per key;
	// beyond it the oldest input is dropped, which bounds state when a
	// sender floods a key.
	MaxSignalPoints int `yaml:"maxSignalPoints"`
	// StateTTL is how long, in event time, a (rule, key) keeps what it
	// last saw: a `latest` signal without a window expires StateTTL after
	// it was observed, and a key that holds no signal data, is at rest
	// and waits for nothing is dropped once the watermark is StateTTL past
	// its last activity (dropping it changes no result: it starts again
	// exactly as it is). 0 means DefaultStateTTL.
	StateTTL time.Duration `yaml:"stateTTL"`
	// MaxStateBytes is the engine's state budget (see StateBytes); 0 is
	// unlimited. Once the state holds it, a record is not applied to a
	// rule that has no state for its key yet: it counts in
	// RefusedRecords, and the runtime dead-letters it. Keys with state go
	// on.
	MaxStateBytes int64 `yaml:"-"`
	// KeyGroup maps a record to its key group, the unit of snapshots: a
	// (rule, key) belongs to the key group of the record that created it.
	// The runtime passes the function its keyBy exchange routes records
	// by, so an engine holds exactly the keys of the groups its subtask
	// owns. Restoring a snapshot that does not name its key group (a
	// whole engine's, or one written before key groups) calls it with a
	// row holding only the rule key's fields, the others null: a rule's
	// key must include the fields it reads. Nil puts every key in key
	// group 0.
	KeyGroup func(row record.Row) int `yaml:"-"`
}

// DefaultStateTTL is the state TTL of rule keys when none is set: a day
// of event time, the horizon within which a sensor's last reading is
// still evidence.
const DefaultStateTTL = 24 * time.Hour

// DefaultOptions returns the defaults: quarantine after 100 consecutive
// errors, 10000 inputs per windowed signal and key, state TTL of a day.
func DefaultOptions() Options {
	return Options{QuarantineAfter: 100, MaxSignalPoints: 10000, StateTTL: DefaultStateTTL}
}

// Validate reports options out of range, naming the yaml field.
func (o Options) Validate() error {
	var errs []error
	if o.QuarantineAfter < 1 {
		errs = append(errs, fmt.Errorf("quarantineAfter: must be at least 1 (got %d)", o.QuarantineAfter))
	}
	if o.MaxSignalPoints < 1 {
		errs = append(errs, fmt.Errorf("maxSignalPoints: must be at least 1 (got %d)", o.MaxSignalPoints))
	}
	if o.StateTTL < 0 || o.StateTTL > 0 && o.StateTTL < time.Millisecond {
		errs = append(errs, fmt.Errorf("stateTTL: must be at least 1ms (got %s)", o.StateTTL))
	}
	if o.MaxStateBytes < 0 {
		errs = append(errs, fmt.Errorf("stateBudget: must be >= 0 (got %d)", o.MaxStateBytes))
	}
	return errors.Join(errs...)
}

// ttl is the state TTL in milliseconds.
func (o Options) ttl() int64 {
	if o.StateTTL == 0 {
		return DefaultStateTTL.Milliseconds()
	}
	return o.StateTTL.Milliseconds()
}

// Update is one change from the control stream: a new or changed rule, or
// the deletion of a rule by ID.
type Update struct {
	// Rule is the new definition; the engine keeps it and it must not be
	// modified afterwards.
	Rule *Rule
	// Delete is the ID of the rule to remove when Rule is nil.
	Delete string
}

// SignalValue is one signal's value at an alert.
type SignalValue struct {
	Name  string
	Value record.Value
}

// Alert is a change of a rule's state for one key.
type Alert struct {
	// ID is deterministic: the hex SHA-256 prefix of rule ID, version, key,
	// event time and new state, so a replay produces the same ID and
	// consumers can drop duplicates.
	ID          string
	RuleID      string
	RuleVersion int64
	// Key is the rule key as text (values joined by "|"); KeyFields and
	// KeyValues give it field by field.
	Key       string
	KeyFields []string
	KeyValues []record.Value
	OldState  string
	NewState  string
	// Group is the group that decided the new state, or, on a return to
	// the resting state, the group that decided the old one.
	Group string
	// Signals are every signal's value at the transition, by name.
	Signals []SignalValue
	// EventTime is the event time (ms) of the transition.
	EventTime   int64
	Severity    string
	Description string
	Labels      map[string]string
	Annotations map[string]string
	// DryRun marks alerts of dry-run rules: they are to be logged or
	// counted, never published.
	DryRun bool
}

// RuleStats are the counters of one rule, cumulative over its versions.
type RuleStats struct {
	ID               string
	Version          int64
	Enabled          bool
	DryRun           bool
	Quarantined      bool
	QuarantineReason string
	// Evaluations counts condition evaluations of a (rule, key).
	Evaluations uint64
	// Errors counts evaluation errors (select, signal or condition).
	Errors uint64
	// Alerts counts state changes emitted; DryRunAlerts those of dry-run
	// versions.
	Alerts       uint64
	DryRunAlerts uint64
	// Keys counts keys by their current state.
	Keys map[string]int
}

// Engine evaluates the active rules over a stream of records of one
// schema. It is single-threaded: one subtask owns one engine, and Apply,
// Process, Advance and the snapshot methods are called from that subtask
// between records, which is what makes rule updates take effect at the
// same logical point on every subtask.
type Engine struct {
	schema     *record.Schema
	opts       Options
	rules      map[string]*ruleRT
	tombstones map[string]int64
	index      []fieldIndex
	scan       []*ruleRT
	timers     timerHeap
	seq        uint64
	watermark  int64
	badRows    uint64
	spaces     map[string]*keySpace
	rowGen     uint64
	// nextSweep is the watermark at which keys are next checked against
	// the state TTL; expired counts the keys dropped by it.
	nextSweep int64
	expired   uint64
	// stateBytes is the fixed part of the state estimate (keys and
	// interned keys), points the windowed inputs held; refused counts the
	// records the state budget refused.
	stateBytes int64
	points     int64
	refused    uint64

	run vmRunner
	// rowScope and sigScope live in the engine so that passing them to
	// the expression closures does not allocate per record.
	rowScope scope
	sigScope scope
	vals     []record.Value
	inputs   []sigInput
	holds    []bool
	clears   []bool
	keyBuf   []byte
}

type sigInput struct {
	matched bool
	v       record.Value
}

type fieldIndex struct {
	pos int
	m   map[string][]*ruleRT
}

// ruleRT is a rule version in an engine with its per-key state.
type ruleRT struct {
	prog        *program
	quarantined bool
	reason      string
	consecutive int
	stats       RuleStats
	// byID holds the rule's keys by their ID in the key space, which
	// costs a small integer lookup per rule instead of hashing the key
	// string again for each of the rules a record feeds.
	byID map[int32]*keyState
	// peak is the most keys byID held since it was last rebuilt: Go maps
	// do not shrink, so a map far below its peak is copied to a new one.
	peak       int
	space      *keySpace
	stateCount []int
}

// keySpace interns the keys of every rule keyed by the same fields, and
// remembers the current record's key ID so it is computed once per record.
// An ID is held by the rules that have state for its key; when the last
// lets go, the key and its ID are freed (the ID is reused).
type keySpace struct {
	sig  string
	idx  []int
	ids  map[string]int32
	keys []string // by ID: the interned text
	refs []int32  // by ID: rules holding state for the key
	free []int32
	peak int
	gen  uint64
	cur  int32
	// rules counts the rule versions using the space.
	rules int
}

// intern returns the ID of key, assigning one (not yet held) if it has none.
func (s *keySpace) intern(key string) int32 {
	id, ok := s.ids[key]
	if ok {
		return id
	}
	key = strings.Clone(key)
	if n := len(s.free); n > 0 {
		id = s.free[n-1]
		s.free = s.free[:n-1]
		s.keys[id] = key
	} else {
		id = int32(len(s.keys))
		s.keys = append(s.keys, key)
		s.refs = append(s.refs, 0)
	}
	s.ids[key] = id
	s.peak = max(s.peak, len(s.ids))
	return id
}

// hold records that one more rule keeps state for the key with ID id and
// returns the estimated bytes that adds (the interned key's, if first).
func (s *keySpace) hold(id int32) int64 {
	s.refs[id]++
	if s.refs[id] == 1 {
		return internBytes + roundUp(int64(len(s.keys[id])))
	}
	return 0
}

// release lets go of one rule's hold on id and frees the key when no rule
// holds it any more; it returns the estimated bytes freed.
func (s *keySpace) release(id int32) int64 {
	s.refs[id]--
	if s.refs[id] > 0 {
		return 0
	}
	freed := internBytes + roundUp(int64(len(s.keys[id])))
	s.forget(id)
	return freed
}

// forget frees an ID no rule holds.
func (s *keySpace) forget(id int32) {
	delete(s.ids, s.keys[id])
	s.keys[id] = ""
	s.free = append(s.free, id)
	s.gen = 0 // the cached ID of the current record may be the freed one
	if s.peak > 1024 && len(s.ids) < s.peak/4 {
		m := make(map[string]int32, len(s.ids))
		for k, v := range s.ids {
			m[k] = v
		}
		s.ids, s.peak = m, len(m)
	}
	if len(s.ids) == 0 {
		// Nothing is held: give the ID tables back too.
		s.keys, s.refs, s.free = nil, nil, nil
	}
}

func (e *Engine) newRuleRT(p *program) *ruleRT {
	sig := fmt.Sprint(p.keyIdx)
	space := e.spaces[sig]
	if space == nil {
		space = &keySpace{sig: sig, idx: p.keyIdx, ids: map[string]int32{}}
		e.spaces[sig] = space
	}
	space.rules++
	// A latest value without a window of its own lives for the state TTL,
	// and its expiry is noticed at the key's next evaluation rather than
	// scheduled (see signalProg.lazy).
	ttl := e.opts.ttl()
	for i := range p.signals {
		if sp := &p.signals[i]; sp.agg == AggLatest && sp.window == 0 {
			sp.window, sp.lazy = ttl, true
		}
	}
	return &ruleRT{prog: p, byID: map[int32]*keyState{}, space: space, stateCount: make([]int, len(p.states))}
}

// retire frees what a rule version holds: its keys, their interned IDs
// and, when no other rule shares it, its key space.
func (e *Engine) retire(r *ruleRT) {
	e.dropKeys(r)
	e.unuse(r.space)
	// Timer entries of the dropped keys are dead weight until they pop.
	if len(e.timers) > 4096 && len(e.timers) > 4*e.liveTimers() {
		e.compactTimers()
	}
}

// unuse drops one rule version's use of a key space, and the space when
// no rule uses it.
func (e *Engine) unuse(s *keySpace) {
	s.rules--
	if s.rules == 0 && e.spaces[s.sig] == s {
		delete(e.spaces, s.sig)
	}
}

// putKey adds a key state (restored, or carried over to a new version) to r.
func (e *Engine) putKey(r *ruleRT, ks *keyState) {
	ks.rule = r
	id := r.space.intern(ks.key)
	ks.id, ks.key = id, r.space.keys[id]
	e.stateBytes += r.space.hold(id) + keyCost(r.prog)
	e.points += ks.points()
	r.byID[id] = ks
	r.peak = max(r.peak, len(r.byID))
}

// lookup returns r's state for key, or nil.
func (r *ruleRT) lookup(key string) *keyState {
	id, ok := r.space.ids[key]
	if !ok {
		return nil
	}
	return r.byID[id]
}

// removeKey drops one key of r and frees its interned ID if no other rule
// holds it.
func (e *Engine) removeKey(r *ruleRT, ks *keyState) {
	ks.dead = true
	delete(r.byID, ks.id)
	e.stateBytes -= r.space.release(ks.id) + keyCost(r.prog)
	e.points -= ks.points()
	r.stateCount[ks.state]--
	if r.peak > 1024 && len(r.byID) < r.peak/4 {
		m := make(map[int32]*keyState, len(r.byID))
		for id, k := range r.byID {
			m[id] = k
		}
		r.byID, r.peak = m, len(m)
	}
}

// Group phases of one (rule, key).
const (
	phaseInactive uint8 = iota
	phasePending
	phaseFiring
)

type groupState struct {
	phase uint8
	since int64
}

// keyState is one (rule, key).
type keyState struct {
	rule *ruleRT
	// key is the key text, shared with the key space; id its ID there.
	key     string
	id      int32
	vals    []record.Value
	kg      int
	clock   int64
	sigs    []sigState
	groups  []groupState
	state   int
	decider int
	timer   int64
	// dirty marks a key carried over to a new rule version: it is
	// re-evaluated under that version at event time dirtyAt, the key's
	// clock or the watermark when the version was applied, whichever is
	// later — so the alert a changed threshold causes is stamped at the
	// point of the update, whatever the spacing of later watermarks.
	dirty   bool
	dirtyAt int64
	// lastAlertAt and alertsAt count the transitions emitted at the same
	// event time, so that a key flapping within one instant still gets a
	// distinct alert ID for every transition.
	lastAlertAt int64
	alertsAt    int
	// lastRecord is the event time of the newest record that reached
	// the key (see idle).
	lastRecord int64
	dead       bool
}

// New returns an engine for records of schema.
func New(schema *record.Schema, opts Options) (*Engine, error) {
	if schema == nil {
		return nil, errors.New("new rule engine: schema is required")
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("new rule engine: %w", err)
	}
	e := &Engine{
		schema:     schema,
		opts:       opts,
		rules:      map[string]*ruleRT{},
		tombstones: map[string]int64{},
		spaces:     map[string]*keySpace{},
		watermark:  -1 << 63,
	}
	e.rowScope.run, e.sigScope.run = &e.run, &e.run
	return e, nil
}

// Watermark is the last watermark passed to Advance.
func (e *Engine) Watermark() int64 { return e.watermark }

// Rules returns the current definitions, sorted by ID.
func (e *Engine) Rules() []*Rule {
	out := make([]*Rule, 0, len(e.rules))
	for _, r := range e.sorted() {
		out = append(out, r.prog.rule)
	}
	return out
}

// Stats returns every rule's counters, sorted by ID.
func (e *Engine) Stats() []RuleStats {
	out := make([]RuleStats, 0, len(e.rules))
	for _, r := range e.sorted() {
		out = append(out, r.snapshotStats())
	}
	return out
}

// BadRows counts rows whose width did not match the schema; they are skipped.
func (e *Engine) BadRows() uint64 { return e.badRows }

func (r *ruleRT) snapshotStats() RuleStats {
	s := r.stats
	s.Version = r.prog.rule.Version
	s.Enabled = r.prog.rule.Enabled
	s.DryRun = r.prog.rule.DryRun
	s.Quarantined, s.QuarantineReason = r.quarantined, r.reason
	s.Keys = make(map[string]int, len(r.stateCount))
	for i, n := range r.stateCount {
		if n > 0 {
			s.Keys[r.prog.states[i]] = n
		}
	}
	return s
}

func (e *Engine) sorted() []*ruleRT {
	out := make([]*ruleRT, 0, len(e.rules))
	for _, r := range e.rules {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].prog.rule.ID < out[j].prog.rule.ID })
	return out
}

// Apply installs, replaces or deletes a rule. A replacement must carry a
// greater version than the current one (or than the deleted one). It keeps
// the per-key state that the new version can reuse — signals and groups
// whose definitions did not change, and each key's current state — and
// re-evaluates every key at the next watermark or record, so the new
// version takes effect for all keys from this point. Delete drops the
// rule's state and emits nothing.
func (e *Engine) Apply(u Update) error {
	if u.Rule == nil {
		if u.Delete == "" {
			return errors.New("apply rule update: neither rule nor delete is set")
		}
		cur := e.rules[u.Delete]
		if cur == nil {
			return nil
		}
		e.tombstones[u.Delete] = cur.prog.rule.Version
		delete(e.rules, u.Delete)
		e.retire(cur)
		e.rebuild()
		return nil
	}
	rule := u.Rule
	cur := e.rules[rule.ID]
	curVersion, known := e.tombstones[rule.ID]
	if cur != nil {
		curVersion, known = cur.prog.rule.Version, true
	}
	if known && rule.Version <= curVersion {
		return fmt.Errorf("apply rule %q: version %d is not greater than the current version %d", rule.ID, rule.Version, curVersion)
	}
	prog, err := compileRule(rule, e.schema)
	if err != nil {
		return fmt.Errorf("apply rule: %w", err)
	}
	nr := e.newRuleRT(prog)
	if cur != nil {
		nr.stats = cur.stats
		if rule.Enabled {
			e.migrate(cur, nr)
		}
		e.retire(cur)
	}
	nr.stats.ID = rule.ID
	delete(e.tombstones, rule.ID)
	e.rules[rule.ID] = nr
	e.rebuild()
	return nil
}

// migrate carries reusable state from the old version to the new one.
func (e *Engine) migrate(old, nr *ruleRT) {
	op, np := old.prog, nr.prog
	ttl := e.opts.ttl()
	for _, oks := range old.sortedKeys() {
		if e.idle(oks, ttl) {
			continue // let go by the state TTL, swept or not
		}
		ks := e.newKeyState(nr, oks.key, oks.vals)
		e.putKey(nr, ks)
		ks.kg, ks.clock, ks.lastRecord = oks.kg, oks.clock, oks.lastRecord
		for i := range np.signals {
			if j, ok := op.sigIndex[np.signals[i].name]; ok && op.signals[j].spec == np.signals[i].spec && op.signals[j].typ == np.signals[i].typ {
				ks.sigs[i] = oks.sigs[j].clone()
			}
		}
		for i := range np.groups {
			for j := range op.groups {
				if op.groups[j].name == np.groups[i].name && reflect.DeepEqual(op.groups[j].spec, np.groups[i].spec) {
					ks.groups[i] = oks.groups[j]
				}
			}
		}
		if s, ok := np.stateIdx[op.states[oks.state]]; ok {
			ks.state = s
		}
		if oks.decider >= 0 {
			for i := range np.groups {
				if np.groups[i].name == op.groups[oks.decider].name {
					ks.decider = i
				}
			}
		}
		nr.stateCount[ks.state]++
		e.points += ks.points() // carried over after putKey counted none
		ks.dirty, ks.dirtyAt = true, max(oks.clock, e.watermark)
		e.schedule(ks)
	}
}

// sortedKeys returns r's keys in key order.
func (r *ruleRT) sortedKeys() []*keyState {
	out := make([]*keyState, 0, len(r.byID))
	for _, ks := range r.byID {
		out = append(out, ks)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

func (e *Engine) dropKeys(r *ruleRT) {
	for id, ks := range r.byID {
		ks.dead = true
		e.stateBytes -= r.space.release(id) + keyCost(r.prog)
		e.points -= ks.points()
	}
	r.byID, r.peak = map[int32]*keyState{}, 0
	clear(r.stateCount)
}

// rebuild recomputes the select index: a rule whose select constrains a
// field to constants is listed under each constant of its most selective
// such field; the others are scanned for every record.
func (e *Engine) rebuild() {
	e.index, e.scan = nil, nil
	byPos := map[int]map[string][]*ruleRT{}
	maxSig, maxGroups := 0, 0
	for _, r := range e.sorted() {
		p := r.prog
		maxSig = max(maxSig, len(p.signals))
		maxGroups = max(maxGroups, len(p.groups))
		if !p.rule.Enabled || r.quarantined {
			continue
		}
		best := -1
		for pos, vals := range p.index {
			if best < 0 || len(vals) < len(p.index[best]) || (len(vals) == len(p.index[best]) && pos < best) {
				best = pos
			}
		}
		if best < 0 {
			e.scan = append(e.scan, r)
			continue
		}
		m := byPos[best]
		if m == nil {
			m = map[string][]*ruleRT{}
			byPos[best] = m
		}
		seen := map[string]bool{}
		for _, v := range p.index[best] {
			if !seen[v] {
				seen[v] = true
				m[v] = append(m[v], r)
			}
		}
	}
	for pos, m := range byPos {
		e.index = append(e.index, fieldIndex{pos: pos, m: m})
	}
	sort.Slice(e.index, func(i, j int) bool { return e.index[i].pos < e.index[j].pos })
	e.vals = make([]record.Value, maxSig)
	e.inputs = make([]sigInput, maxSig)
	e.holds = make([]bool, maxGroups)
	e.clears = make([]bool, maxGroups)
}

// Process feeds one record with event time t (ms) to every enabled rule
// whose select matches it. Lateness is the runtime's concern: the engine
// uses the event times it is given.
func (e *Engine) Process(row record.Row, t int64, emit func(Alert)) {
	if len(row) != e.schema.Len() {
		e.badRows++
		return
	}
	e.rowGen++
	index, scan := e.index, e.scan
	for i := range index {
		v := row[index[i].pos]
		if v.T != record.TypeString {
			continue
		}
		for _, r := range index[i].m[v.S] {
			e.processRule(r, row, t, emit)
		}
	}
	for _, r := range scan {
		e.processRule(r, row, t, emit)
	}
}

func (e *Engine) processRule(r *ruleRT, row record.Row, t int64, emit func(Alert)) {
	if r.quarantined {
		return
	}
	p := r.prog
	sc := &e.rowScope
	sc.row = row
	if p.selectC != nil && !p.selectIsIndex {
		m, err := e.run.evalBool(p.selectC, sc)
		if err != nil {
			e.fail(r, fmt.Errorf("select: %w", err))
			return
		}
		if m != triTrue {
			return
		}
	}
	any := false
	inputs := e.inputs[:len(p.signals)]
	for i := range p.signals {
		sp := &p.signals[i]
		inputs[i] = sigInput{}
		if sp.when != nil {
			m, err := e.run.evalBool(sp.when, sc)
			if err != nil {
				e.fail(r, fmt.Errorf("signal %s: when: %w", sp.name, err))
				return
			}
			if m != triTrue {
				continue
			}
		}
		var v record.Value
		if sp.value != nil {
			var err error
			if v, err = e.run.evalValue(sp.value, sc); err != nil {
				e.fail(r, fmt.Errorf("signal %s: value: %w", sp.name, err))
				return
			}
		}
		inputs[i] = sigInput{matched: true, v: v}
		any = true
	}
	if !any {
		return
	}
	ks, created := e.lookupKey(r, row)
	if ks == nil {
		return // refused: the state holds its budget
	}
	ks.lastRecord = max(ks.lastRecord, t)
	now := max(ks.clock, t, e.watermark)
	if !e.settle(ks, emit) {
		return
	}
	// The key's own events before the record are played first; those at
	// the record's instant are decided together with the record, so a
	// condition broken by an observation at exactly start+for never fires.
	if !e.step(ks, now, false, emit) {
		return
	}
	due := e.nextEvent(ks) <= now
	changed := false
	before := ks.points()
	for i := range p.signals {
		changed = p.signals[i].expire(&ks.sigs[i], now) || changed
	}
	for i := range p.signals {
		if !inputs[i].matched {
			continue
		}
		c, err := p.signals[i].add(&ks.sigs[i], t, inputs[i].v, now, e.opts.MaxSignalPoints)
		e.points += ks.points() - before
		before = ks.points()
		if err != nil {
			e.fail(r, fmt.Errorf("signal %s: %w", p.signals[i].name, err))
			return
		}
		changed = changed || c
	}
	// A new key is evaluated even if the record changed no signal: its
	// conditions may hold on empty signals (count == 0).
	if changed || due || created {
		if !e.evaluate(ks, now, emit) {
			return
		}
	}
	r.consecutive = 0
	e.schedule(ks)
}

// settle re-evaluates a key carried over to a new rule version at the
// event time of the update, before anything later reaches it.
func (e *Engine) settle(ks *keyState, emit func(Alert)) bool {
	if !ks.dirty {
		return true
	}
	if !e.step(ks, ks.dirtyAt, true, emit) {
		return false
	}
	if !e.evaluate(ks, ks.clock, emit) {
		return false
	}
	ks.dirty = false
	return true
}

// lookupKey finds or creates (created) the state of the record's key. The
// key ID is computed once per record and key space; the common
// single-string key is looked up without building a string.
func (e *Engine) lookupKey(r *ruleRT, row record.Row) (ks *keyState, created bool) {
	sp := r.space
	if sp.gen != e.rowGen {
		idx := sp.idx
		var key string
		if len(idx) == 1 && row[idx[0]].T == record.TypeString {
			key = row[idx[0]].S
		} else {
			e.keyBuf = e.keyBuf[:0]
			for i, f := range idx {
				if i > 0 {
					e.keyBuf = append(e.keyBuf, '|')
				}
				e.keyBuf = row[f].AppendText(e.keyBuf)
			}
			key = unsafeString(e.keyBuf)
		}
		sp.cur = sp.intern(key)
		sp.gen = e.rowGen
	}
	if ks := r.byID[sp.cur]; ks != nil {
		return ks, false
	}
	if e.overBudget() {
		e.refused++
		if sp.refs[sp.cur] == 0 {
			sp.forget(sp.cur) // interned for this record only
		}
		return nil, false
	}
	idx := r.prog.keyIdx
	vals := make([]record.Value, len(idx))
	for i, f := range idx {
		vals[i] = row[f].Clone()
	}
	// The key text is the interned one: the same fields joined the same way.
	ks = e.newKeyState(r, sp.keys[sp.cur], vals)
	ks.id = sp.cur
	if e.opts.KeyGroup != nil {
		ks.kg = e.opts.KeyGroup(row)
	}
	e.stateBytes += sp.hold(sp.cur) + keyCost(r.prog)
	r.byID[sp.cur] = ks
	r.peak = max(r.peak, len(r.byID))
	r.stateCount[0]++
	return ks, true
}

func (e *Engine) newKeyState(r *ruleRT, key string, vals []record.Value) *keyState {
	ks := &keyState{
		rule:       r,
		key:        key,
		vals:       vals,
		clock:      -1 << 63,
		lastRecord: -1 << 63,
		sigs:       make([]sigState, len(r.prog.signals)),
		groups:     make([]groupState, len(r.prog.groups)),
		decider:    -1,
		timer:      noTimer,
	}
	return ks
}

// nextEvent is the earliest event time at which the key changes without a
// new record: a pending group's duration elapsing or an input leaving a
// signal's window.
func (e *Engine) nextEvent(ks *keyState) int64 {
	p := ks.rule.prog
	next := int64(noTimer)
	for i := range p.groups {
		if g := ks.groups[i]; g.phase == phasePending {
			next = min(next, g.since+p.groups[i].forMs)
		}
	}
	for i := range p.signals {
		next = min(next, p.signals[i].nextExpiry(&ks.sigs[i]))
	}
	return next
}

// step moves the key's clock to `to`, evaluating at each event on the way,
// so "for 5m" fires exactly 5 minutes after the condition began to hold
// whatever the record and watermark spacing. Events at `to` itself are
// played only when inclusive: a watermark at `to` settles them, a record at
// `to` is applied first. It reports false when an evaluation failed.
func (e *Engine) step(ks *keyState, to int64, inclusive bool, emit func(Alert)) bool {
	p := ks.rule.prog
	for {
		next := e.nextEvent(ks)
		// noTimer is also the end-of-input watermark: "no event" must end
		// the walk there rather than count as one more event.
		if next == noTimer || next > to || (next == to && !inclusive) {
			break
		}
		ks.clock = max(ks.clock, next)
		for i := range p.signals {
			st := &ks.sigs[i]
			n := st.live()
			p.signals[i].expire(st, ks.clock)
			e.points += int64(st.live() - n)
		}
		if !e.evaluate(ks, ks.clock, emit) {
			return false
		}
	}
	ks.clock = max(ks.clock, to)
	return true
}

// evaluate re-evaluates every group of the key at event time at and emits
// an alert if the rule's state for the key changed. On an error nothing
// changes and false is returned.
func (e *Engine) evaluate(ks *keyState, at int64, emit func(Alert)) bool {
	r := ks.rule
	p := r.prog
	vals := e.vals[:len(p.signals)]
	for i := range p.signals {
		if p.signals[i].lazy {
			// Aged past the state TTL: absent, though nothing woke the key.
			p.signals[i].expire(&ks.sigs[i], at)
		}
		vals[i] = p.signals[i].current(&ks.sigs[i])
	}
	sc := &e.sigScope
	sc.sigs = vals
	r.stats.Evaluations++
	for gi := range p.groups {
		g := &p.groups[gi]
		holds := !g.any
		for _, c := range g.conds {
			t, err := e.run.evalBool(c, sc)
			if err != nil {
				e.fail(r, fmt.Errorf("group %s: %w", g.name, err))
				return false
			}
			if g.any && t == triTrue {
				holds = true
				break
			}
			if !g.any && t != triTrue {
				holds = false
				break
			}
		}
		e.holds[gi] = holds
		e.clears[gi] = false
		if g.clear != nil && ks.groups[gi].phase == phaseFiring {
			t, err := e.run.evalBool(g.clear, sc)
			if err != nil {
				e.fail(r, fmt.Errorf("group %s: clear: %w", g.name, err))
				return false
			}
			// A clear expression over signals that have no value any more
			// counts as holding: expired evidence must not keep an alert
			// firing forever.
			e.clears[gi] = t != triFalse
		}
	}
	best := -1
	for gi := range p.groups {
		g, gs := &p.groups[gi], &ks.groups[gi]
		holds := e.holds[gi]
		switch gs.phase {
		case phaseInactive:
			if holds {
				gs.since = at
				gs.phase = phasePending
				if g.forMs == 0 {
					gs.phase = phaseFiring
				}
			}
		case phasePending:
			switch {
			case !holds:
				gs.phase = phaseInactive
			case gs.since+g.forMs <= at:
				gs.phase = phaseFiring
			}
		case phaseFiring:
			// With clear, the group keeps firing while its conditions
			// hold and, once they stop, until clear holds (hysteresis).
			if !holds && (g.clear == nil || e.clears[gi]) {
				gs.phase = phaseInactive
			}
		}
		if gs.phase == phaseFiring && (best < 0 || outranks(g, &p.groups[best])) {
			best = gi
		}
	}
	newState := 0
	if best >= 0 {
		newState = p.groups[best].state
	}
	if newState != ks.state {
		decider := best
		if best < 0 {
			decider = ks.decider
		}
		old := ks.state
		r.stateCount[old]--
		r.stateCount[newState]++
		ks.state = newState
		ks.decider = best
		if p.rule.DryRun {
			r.stats.DryRunAlerts++
		} else {
			r.stats.Alerts++
		}
		if ks.alertsAt > 0 && ks.lastAlertAt == at {
			ks.alertsAt++
		} else {
			ks.lastAlertAt, ks.alertsAt = at, 1
		}
		if emit != nil {
			emit(e.alert(ks, old, decider, vals, at))
		}
	}
	ks.decider = best
	return true
}

// outranks orders firing groups: higher state, then higher weight; on a
// full tie the earlier group (already chosen) stays.
func outranks(g, cur *groupProg) bool {
	if g.state != cur.state {
		return g.state > cur.state
	}
	return g.weight > cur.weight
}

func (e *Engine) alert(ks *keyState, old, decider int, vals []record.Value, at int64) Alert {
	p := ks.rule.prog
	rule := p.rule
	a := Alert{
		RuleID:      rule.ID,
		RuleVersion: rule.Version,
		Key:         ks.key,
		KeyFields:   rule.Key,
		KeyValues:   ks.vals,
		OldState:    p.states[old],
		NewState:    p.states[ks.state],
		EventTime:   at,
		Severity:    rule.Severity,
		Description: rule.Description,
		Labels:      rule.Labels,
		DryRun:      rule.DryRun,
	}
	if decider >= 0 {
		a.Group = p.groups[decider].name
	}
	a.Signals = make([]SignalValue, len(vals))
	for i, v := range vals {
		a.Signals[i] = SignalValue{Name: p.signals[i].name, Value: v}
	}
	a.ID = alertID(rule.ID, rule.Version, ks.key, at, a.NewState, ks.alertsAt-1)
	if len(p.annot) > 0 {
		data := map[string]any{"key": ks.key, "state": a.NewState, "oldState": a.OldState, "group": a.Group, "ruleId": rule.ID}
		for _, s := range a.Signals {
			data[s.Name] = s.Value.Any()
		}
		a.Annotations = make(map[string]string, len(p.annot))
		var buf bytes.Buffer
		for _, an := range p.annot {
			buf.Reset()
			if err := an.tmpl.Execute(&buf, data); err != nil {
				a.Annotations[an.name] = "render annotation: " + err.Error()
				continue
			}
			a.Annotations[an.name] = buf.String()
		}
	}
	return a
}

// AlertID is the deterministic alert ID of a key's first transition at an
// event time: the first 16 bytes of the SHA-256 of rule ID, version, key,
// transition event time and new state, in hex. Further transitions of the
// same key at the same event time (records with equal times that flip the
// state back and forth) are numbered, see AlertIDN.
func AlertID(ruleID string, version int64, key string, eventTime int64, newState string) string {
	return alertID(ruleID, version, key, eventTime, newState, 0)
}

// AlertIDN is the ID of the n-th (from 0) transition of a key at one event
// time; AlertIDN(…, 0) equals AlertID. The number is hashed after the
// other fields, so IDs of first transitions are unchanged.
func AlertIDN(ruleID string, version int64, key string, eventTime int64, newState string, n int) string {
	return alertID(ruleID, version, key, eventTime, newState, n)
}

func alertID(ruleID string, version int64, key string, eventTime int64, newState string, seq int) string {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{ruleID, key, newState} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], uint64(version))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(eventTime))
	h.Write(n[:])
	if seq > 0 {
		binary.BigEndian.PutUint64(n[:], uint64(seq))
		h.Write(n[:])
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}

// fail counts an evaluation error and quarantines the rule after
// QuarantineAfter consecutive ones.
func (e *Engine) fail(r *ruleRT, err error) {
	r.stats.Errors++
	r.consecutive++
	if r.consecutive >= e.opts.QuarantineAfter && !r.quarantined {
		r.quarantined = true
		r.reason = fmt.Sprintf("%d consecutive evaluation errors, last: %v", r.consecutive, err)
		e.rebuild()
	}
}

// Advance moves event time to the watermark: pending groups whose duration
// has elapsed fire and inputs leave their windows, for keys that receive
// no further records.
func (e *Engine) Advance(watermark int64, emit func(Alert)) {
	if watermark <= e.watermark {
		return
	}
	e.watermark = watermark
	for len(e.timers) > 0 && e.timers[0].t <= watermark {
		en := heap.Pop(&e.timers).(timer)
		ks := en.ks
		if ks.dead || ks.timer != en.t || ks.rule.quarantined {
			continue
		}
		ks.timer = noTimer
		ok := e.settle(ks, emit) && e.step(ks, watermark, true, emit)
		if ok {
			ks.rule.consecutive = 0
			e.schedule(ks)
		}
	}
	e.sweep()
}

// sweep drops the keys the state TTL lets go. It runs once per quarter
// TTL of event time, so a key goes between one and 1.25 TTLs after its
// last activity, at the cost of one pass over the keys per quarter TTL.
func (e *Engine) sweep() {
	if e.watermark < e.nextSweep || e.watermark == -1<<63 {
		return
	}
	ttl := e.opts.ttl()
	for _, r := range e.rules {
		for _, ks := range r.byID {
			if e.idle(ks, ttl) {
				e.removeKey(r, ks)
				e.expired++
			}
		}
	}
	if e.watermark > noTimer-ttl/4-1 {
		e.nextSweep = noTimer
	} else {
		e.nextSweep = e.watermark + max(ttl/4, 1)
	}
}

// idle reports whether the state TTL lets a key go: no record reached it
// for ttl, its signals hold nothing valid, it is at rest and no event of
// its own is pending. A record for it later starts a new key that is
// exactly what this one is — empty, at rest, behind the watermark — so
// dropping it changes no alert; only a rule update, which re-evaluates
// the keys it carries over, no longer sees it (migrate skips idle keys
// whether or not a sweep has dropped them yet, so the outcome does not
// depend on when sweeps run).
func (e *Engine) idle(ks *keyState, ttl int64) bool {
	// Unsigned: the difference of two event times can exceed int64.
	if ks.dirty || ks.state != 0 || ks.lastRecord > e.watermark || uint64(e.watermark)-uint64(ks.lastRecord) < uint64(ttl) {
		return false
	}
	if ks.alertsAt > 0 && ks.lastAlertAt >= e.watermark {
		// A transition at the watermark's instant: a new key there would
		// number its alert IDs from 0 again.
		return false
	}
	for i := range ks.groups {
		if ks.groups[i].phase != phaseInactive {
			return false
		}
	}
	p := ks.rule.prog
	for i := range ks.sigs {
		st, sp := &ks.sigs[i], &p.signals[i]
		if st.head < len(st.pts) || st.has && (!sp.lazy || st.t+sp.window > e.watermark) {
			return false
		}
	}
	return e.nextEvent(ks) == noTimer
}

// ExpiredKeys counts the keys dropped because of the state TTL.
func (e *Engine) ExpiredKeys() uint64 { return e.expired }

// KeyCount is the number of (rule, key) states the engine holds.
func (e *Engine) KeyCount() int { return e.liveTimers() }

// schedule sets the key's timer to its next event.
func (e *Engine) schedule(ks *keyState) {
	next := e.nextEvent(ks)
	if ks.dirty {
		next = min(next, ks.dirtyAt)
	}
	if next == ks.timer {
		return
	}
	ks.timer = next
	if next == noTimer {
		return
	}
	e.seq++
	heap.Push(&e.timers, timer{t: next, seq: e.seq, ks: ks})
	if n := len(e.timers); n > 4096 && n > 4*e.liveTimers() {
		e.compactTimers()
	}
}

func (e *Engine) liveTimers() int {
	n := 0
	for _, r := range e.rules {
		n += len(r.byID)
	}
	return n
}

// compactTimers drops entries superseded by a later schedule.
func (e *Engine) compactTimers() {
	live := e.timers[:0]
	for _, t := range e.timers {
		if !t.ks.dead && t.ks.timer == t.t {
			live = append(live, t)
		}
	}
	clear(e.timers[len(live):])
	e.timers = live
	heap.Init(&e.timers)
}

type timer struct {
	t   int64
	seq uint64
	ks  *keyState
}

// timerHeap orders timers by time, then by scheduling order, so keys due at
// the same time fire in a deterministic order.
type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	return h[i].t < h[j].t || (h[i].t == h[j].t && h[i].seq < h[j].seq)
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

// Push implements heap.Interface.
func (h *timerHeap) Push(x any) { *h = append(*h, x.(timer)) }

// Pop implements heap.Interface.
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = timer{}
	*h = old[:len(old)-1]
	return t
}

// unsafeString views b as a string for a map lookup; intern clones it
// before keeping it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func errSignalType(sp *signalProg, v record.Value) error {
	return fmt.Errorf("value %s is %s, want %s", v.GoString(), v.T, sp.typ)
}
