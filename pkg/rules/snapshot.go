package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/streamd/streamd/pkg/record"
)

// snapshotFormat is the version of the snapshot document; Restore rejects
// others rather than guess.
const snapshotFormat = 1

// The snapshot is JSON: rule state is small next to window state, changes
// at control-stream rate, and a readable checkpoint is worth the bytes when
// an operator asks why a rule is in the state it is in. Floats are stored
// as their IEEE bits so NaN and infinities survive.
type snapshotDoc struct {
	Format     int              `json:"format"`
	Watermark  int64            `json:"watermark"`
	Rules      []snapRule       `json:"rules"`
	Tombstones map[string]int64 `json:"tombstones,omitempty"`
	Keys       []snapKey        `json:"keys"`
}

type snapRule struct {
	Rule        *Rule  `json:"rule"`
	Quarantined bool   `json:"quarantined,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

type snapValue struct {
	T uint8  `json:"t"`
	S string `json:"s,omitempty"`
	N uint64 `json:"n,omitempty"`
}

type snapSignal struct {
	Name   string      `json:"name"`
	Has    bool        `json:"has,omitempty"`
	T      int64       `json:"t,omitempty"`
	V      snapValue   `json:"v"`
	Points [][2]uint64 `json:"points,omitempty"`
}

type snapGroup struct {
	Name  string `json:"name"`
	Phase uint8  `json:"phase"`
	Since int64  `json:"since"`
}

type snapKey struct {
	Rule    string       `json:"rule"`
	Version int64        `json:"version"`
	Key     string       `json:"key"`
	Values  []snapValue  `json:"values"`
	Clock   int64        `json:"clock"`
	State   string       `json:"state"`
	Decider string       `json:"decider,omitempty"`
	Signals []snapSignal `json:"signals"`
	Groups  []snapGroup  `json:"groups"`
	// DirtyAt is set while the key waits to be re-evaluated under a new
	// rule version, at that event time.
	DirtyAt *int64 `json:"dirtyAt,omitempty"`
	// LastAlertAt and AlertsAt number the transitions at one event time.
	LastAlertAt int64 `json:"lastAlertAt,omitempty"`
	AlertsAt    int   `json:"alertsAt,omitempty"`
	// LastRecord is the event time of the newest record that reached
	// the key, for the state TTL; snapshots without it restore the clock.
	LastRecord *int64 `json:"lastRecord,omitempty"`
}

// Snapshot writes every rule and the state of every (rule, key).
func (e *Engine) Snapshot(w io.Writer) error {
	return e.snapshot(w, func(*keyState) bool { return true })
}

// SnapshotKeyGroup writes every rule (rules are broadcast state, the same
// in every key group) and the state of the keys in key group kg.
func (e *Engine) SnapshotKeyGroup(kg int, w io.Writer) error {
	return e.snapshot(w, func(ks *keyState) bool { return ks.kg == kg })
}

func (e *Engine) snapshot(w io.Writer, keep func(*keyState) bool) error {
	doc := snapshotDoc{Format: snapshotFormat, Watermark: e.watermark, Tombstones: e.tombstones, Rules: []snapRule{}, Keys: []snapKey{}}
	for _, r := range e.sorted() {
		doc.Rules = append(doc.Rules, snapRule{Rule: r.prog.rule, Quarantined: r.quarantined, Reason: r.reason})
		for _, ks := range r.sortedKeys() {
			if keep(ks) {
				doc.Keys = append(doc.Keys, snapshotKey(ks))
			}
		}
	}
	if err := json.NewEncoder(w).Encode(&doc); err != nil {
		return fmt.Errorf("write rule snapshot: %w", err)
	}
	return nil
}

func snapshotKey(ks *keyState) snapKey {
	p := ks.rule.prog
	sk := snapKey{Rule: p.rule.ID, Version: p.rule.Version, Key: ks.key, Clock: ks.clock, State: p.states[ks.state]}
	for _, v := range ks.vals {
		sk.Values = append(sk.Values, snapValue{T: uint8(v.T), S: v.S, N: v.N})
	}
	if ks.decider >= 0 {
		sk.Decider = p.groups[ks.decider].name
	}
	if ks.dirty {
		at := ks.dirtyAt
		sk.DirtyAt = &at
	}
	sk.LastAlertAt, sk.AlertsAt = ks.lastAlertAt, ks.alertsAt
	if ks.lastRecord != -1<<63 {
		lr := ks.lastRecord
		sk.LastRecord = &lr
	}
	for i := range p.signals {
		st := &ks.sigs[i]
		ss := snapSignal{Name: p.signals[i].name, Has: st.has, T: st.t, V: snapValue{T: uint8(st.v.T), S: st.v.S, N: st.v.N}}
		for _, pt := range st.pts[st.head:] {
			ss.Points = append(ss.Points, [2]uint64{uint64(pt.t), math.Float64bits(pt.v)})
		}
		sk.Signals = append(sk.Signals, ss)
	}
	for i := range p.groups {
		sk.Groups = append(sk.Groups, snapGroup{Name: p.groups[i].name, Phase: ks.groups[i].phase, Since: ks.groups[i].since})
	}
	return sk
}

// Restore merges a snapshot into the engine: rules newer than the engine's
// are installed, and the keys of rules whose version matches are restored
// (replacing existing state of the same key). Restoring every key group of
// a subtask one after another rebuilds its state. The snapshot is checked
// completely before anything changes, so a bad snapshot leaves the engine
// as it was.
func (e *Engine) Restore(r io.Reader) error {
	var doc snapshotDoc
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("restore rules: decode snapshot: %w", err)
	}
	if doc.Format != snapshotFormat {
		return fmt.Errorf("restore rules: unsupported snapshot format %d (want %d)", doc.Format, snapshotFormat)
	}
	// Rules to install, compiled up front.
	install := map[string]*ruleRT{}
	committed := false
	defer func() {
		if !committed {
			// Nothing changes: the key spaces the new rules would use go too.
			for _, nr := range install {
				e.unuse(nr.space)
			}
		}
	}()
	for i, sr := range doc.Rules {
		if sr.Rule == nil {
			return fmt.Errorf("restore rules: rules[%d]: rule is missing", i)
		}
		id := sr.Rule.ID
		if _, dup := install[id]; dup {
			return fmt.Errorf("restore rules: rules[%d]: duplicate rule %q", i, id)
		}
		if cur := e.rules[id]; cur != nil && cur.prog.rule.Version >= sr.Rule.Version {
			continue
		}
		prog, err := compileRule(sr.Rule, e.schema)
		if err != nil {
			return fmt.Errorf("restore rules: rules[%d]: %w", i, err)
		}
		nr := e.newRuleRT(prog)
		nr.quarantined, nr.reason = sr.Quarantined, sr.Reason
		nr.stats.ID = id
		if cur := e.rules[id]; cur != nil {
			nr.stats = cur.stats
		}
		install[id] = nr
	}
	target := func(id string, version int64) *ruleRT {
		if r := install[id]; r != nil {
			if r.prog.rule.Version == version {
				return r
			}
			return nil
		}
		if r := e.rules[id]; r != nil && r.prog.rule.Version == version {
			return r
		}
		return nil
	}
	type restored struct {
		r  *ruleRT
		ks *keyState
	}
	var keys []restored
	scratch := &Engine{opts: e.opts}
	for i := range doc.Keys {
		sk := &doc.Keys[i]
		r := target(sk.Rule, sk.Version)
		if r == nil {
			continue // the rule has changed since: its old state does not apply
		}
		ks, err := scratch.restoreKey(r, sk)
		if err != nil {
			return fmt.Errorf("restore rules: keys[%d]: %w", i, err)
		}
		keys = append(keys, restored{r, ks})
	}

	// Commit.
	committed = true
	for id, nr := range install {
		if cur := e.rules[id]; cur != nil {
			e.retire(cur)
		}
		e.rules[id] = nr
		delete(e.tombstones, id)
	}
	for id, v := range doc.Tombstones {
		if e.rules[id] == nil && v > e.tombstones[id] {
			e.tombstones[id] = v
		}
	}
	e.watermark = max(e.watermark, doc.Watermark)
	for _, k := range keys {
		if old := k.r.lookup(k.ks.key); old != nil {
			e.removeKey(k.r, old)
		}
		if e.opts.KeyGroup != nil {
			k.ks.kg = e.opts.KeyGroup(k.ks.key)
		}
		e.putKey(k.r, k.ks)
		k.r.stateCount[k.ks.state]++
		e.schedule(k.ks)
	}
	e.rebuild()
	return nil
}

func restoreValue(v snapValue) (record.Value, error) {
	if record.Type(v.T) > record.TypeTimestamp {
		return record.Null, fmt.Errorf("unknown value type %d", v.T)
	}
	return record.Value{T: record.Type(v.T), S: v.S, N: v.N}, nil
}

// restoreKey rebuilds one key's state; the engine is a scratch one so the
// real engine is untouched until every key has been checked.
func (e *Engine) restoreKey(r *ruleRT, sk *snapKey) (*keyState, error) {
	p := r.prog
	if len(sk.Values) != len(p.keyIdx) {
		return nil, fmt.Errorf("key %q has %d values, the rule keys by %d fields", sk.Key, len(sk.Values), len(p.keyIdx))
	}
	vals := make([]record.Value, len(sk.Values))
	for i, v := range sk.Values {
		rv, err := restoreValue(v)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", sk.Key, err)
		}
		vals[i] = rv
	}
	tmp := &ruleRT{prog: p}
	ks := e.newKeyState(tmp, sk.Key, vals)
	ks.clock = sk.Clock
	st, ok := p.stateIdx[sk.State]
	if !ok {
		return nil, fmt.Errorf("key %q: unknown state %q", sk.Key, sk.State)
	}
	ks.state = st
	if sk.DirtyAt != nil {
		ks.dirty, ks.dirtyAt = true, *sk.DirtyAt
	}
	if sk.AlertsAt < 0 {
		return nil, fmt.Errorf("key %q: negative alertsAt %d", sk.Key, sk.AlertsAt)
	}
	ks.lastAlertAt, ks.alertsAt = sk.LastAlertAt, sk.AlertsAt
	ks.lastRecord = ks.clock // a snapshot from before the state TTL
	if sk.LastRecord != nil {
		ks.lastRecord = *sk.LastRecord
	}
	for _, ss := range sk.Signals {
		i, ok := p.sigIndex[ss.Name]
		if !ok {
			return nil, fmt.Errorf("key %q: unknown signal %q", sk.Key, ss.Name)
		}
		sp := &p.signals[i]
		v, err := restoreValue(ss.V)
		if err != nil {
			return nil, fmt.Errorf("key %q: signal %s: %w", sk.Key, ss.Name, err)
		}
		sig := sigState{has: ss.Has, t: ss.T, v: v}
		if ss.Has && v.T != sp.typ {
			return nil, fmt.Errorf("key %q: signal %s: value is %s, want %s", sk.Key, ss.Name, v.T, sp.typ)
		}
		if len(ss.Points) > 0 && sp.agg == AggLatest {
			return nil, fmt.Errorf("key %q: signal %s: latest keeps no points", sk.Key, ss.Name)
		}
		if len(ss.Points) > e.opts.MaxSignalPoints {
			ss.Points = ss.Points[len(ss.Points)-e.opts.MaxSignalPoints:]
		}
		for j, pt := range ss.Points {
			t := int64(pt[0])
			if j > 0 && t < sig.pts[j-1].t {
				return nil, fmt.Errorf("key %q: signal %s: points out of event-time order", sk.Key, ss.Name)
			}
			f := math.Float64frombits(pt[1])
			if math.IsNaN(f) {
				return nil, fmt.Errorf("key %q: signal %s: NaN point", sk.Key, ss.Name)
			}
			sig.pts = append(sig.pts, point{t: t, v: f})
		}
		sig.recompute()
		ks.sigs[i] = sig
	}
	for _, sg := range sk.Groups {
		found := false
		for i := range p.groups {
			if p.groups[i].name == sg.Name {
				if sg.Phase > phaseFiring {
					return nil, fmt.Errorf("key %q: group %s: unknown phase %d", sk.Key, sg.Name, sg.Phase)
				}
				ks.groups[i] = groupState{phase: sg.Phase, since: sg.Since}
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("key %q: unknown group %q", sk.Key, sg.Name)
		}
	}
	if sk.Decider != "" {
		for i := range p.groups {
			if p.groups[i].name == sk.Decider {
				ks.decider = i
			}
		}
	}
	return ks, nil
}

// SnapshotRules reads the rule set of a snapshot written by Snapshot or
// SnapshotKeyGroup: the rules in force (sorted by ID) and the versions of
// deleted rules. It lets the runtime know, before any engine is restored,
// which rules a checkpoint holds.
func SnapshotRules(r io.Reader) ([]*Rule, map[string]int64, error) {
	var doc snapshotDoc
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, fmt.Errorf("read rule snapshot: %w", err)
	}
	if doc.Format != snapshotFormat {
		return nil, nil, fmt.Errorf("read rule snapshot: unsupported snapshot format %d (want %d)", doc.Format, snapshotFormat)
	}
	out := make([]*Rule, 0, len(doc.Rules))
	for i, sr := range doc.Rules {
		if sr.Rule == nil {
			return nil, nil, fmt.Errorf("read rule snapshot: rules[%d]: rule is missing", i)
		}
		out = append(out, sr.Rule)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	tomb := make(map[string]int64, len(doc.Tombstones))
	for id, v := range doc.Tombstones {
		tomb[id] = v
	}
	return out, tomb, nil
}

// Tombstones returns the versions of deleted rules by ID: a rule with one
// of these IDs is accepted again only with a greater version.
func (e *Engine) Tombstones() map[string]int64 {
	out := make(map[string]int64, len(e.tombstones))
	for id, v := range e.tombstones {
		out[id] = v
	}
	return out
}

// ErrNoRule is returned for a rule ID the engine does not hold.
var ErrNoRule = errors.New("no such rule")

// Rule returns the current definition of a rule.
func (e *Engine) Rule(id string) (*Rule, error) {
	r := e.rules[id]
	if r == nil {
		return nil, fmt.Errorf("get rule %q: %w", id, ErrNoRule)
	}
	return r.prog.rule, nil
}
