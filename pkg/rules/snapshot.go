package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"

	"github.com/streamd/streamd/pkg/record"
)

// snapshotFormat is the version of the snapshot document; Restore rejects
// others rather than guess. Format 1 predates key groups: it is a whole
// engine's snapshot (the runtime wrote one per subtask) and is still read,
// its keys' groups recomputed with Options.KeyGroup.
const (
	snapshotFormat   = 2
	snapshotFormatV1 = 1
)

// The snapshot is JSON: rule state is small next to window state, changes
// at control-stream rate, and a readable checkpoint is worth the bytes when
// an operator asks why a rule is in the state it is in. Floats are stored
// as their IEEE bits so NaN and infinities survive.
type snapshotDoc struct {
	Format int `json:"format"`
	// KeyGroup is set on the snapshot of one key group (SnapshotKeyGroup,
	// SnapshotKeyGroups): Keys are that group's. Rules and Tombstones are
	// broadcast state, the same in every key group.
	KeyGroup   *int             `json:"keyGroup,omitempty"`
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
	// group is the key group of the snapshot the key was read from, when
	// it names one (grouped).
	group   int
	grouped bool
}

// Snapshot writes every rule and the state of every (rule, key).
func (e *Engine) Snapshot(w io.Writer) error {
	head, err := e.snapshotHead()
	if err != nil {
		return err
	}
	var keys []snapKey
	e.eachKey(func(ks *keyState) { keys = append(keys, snapshotKey(ks)) })
	return writeSnapshot(w, head, nil, keys)
}

// SnapshotKeyGroup writes every rule (rules are broadcast state, the same
// in every key group) and the state of the keys in key group kg.
func (e *Engine) SnapshotKeyGroup(kg int, w io.Writer) error {
	head, err := e.snapshotHead()
	if err != nil {
		return err
	}
	var keys []snapKey
	e.eachKey(func(ks *keyState) {
		if ks.kg == kg {
			keys = append(keys, snapshotKey(ks))
		}
	})
	return writeSnapshot(w, head, &kg, keys)
}

// SnapshotKeyGroups snapshots each of the key groups kgs as
// SnapshotKeyGroup does, in one pass over the keys and with the rules
// encoded once. Every group listed gets a snapshot, with its keys or none,
// so each carries the rule set. A key in a group not listed is an error:
// the engine would hold state that no snapshot saves.
func (e *Engine) SnapshotKeyGroups(kgs []int) (map[int][]byte, error) {
	head, err := e.snapshotHead()
	if err != nil {
		return nil, err
	}
	keys := make(map[int][]snapKey, len(kgs))
	for _, kg := range kgs {
		keys[kg] = nil
	}
	var stray *keyState
	e.eachKey(func(ks *keyState) {
		if _, ok := keys[ks.kg]; !ok {
			if stray == nil {
				stray = ks
			}
			return
		}
		keys[ks.kg] = append(keys[ks.kg], snapshotKey(ks))
	})
	if stray != nil {
		return nil, fmt.Errorf("snapshot rules: key %q of rule %q is in key group %d, which is not among the %d key groups snapshotted", stray.key, stray.rule.prog.rule.ID, stray.kg, len(kgs))
	}
	out := make(map[int][]byte, len(kgs))
	for kg, ks := range keys {
		doc, err := encodeSnapshot(head, &kg, ks)
		if err != nil {
			return nil, err
		}
		out[kg] = doc
	}
	return out, nil
}

// eachKey calls f for every (rule, key), rules by ID and keys in order.
func (e *Engine) eachKey(f func(*keyState)) {
	for _, r := range e.sorted() {
		for _, ks := range r.sortedKeys() {
			f(ks)
		}
	}
}

// snapshotHead encodes what every snapshot of the engine shares: the
// watermark, the rules and the tombstones, as the document fields that
// follow the key group.
func (e *Engine) snapshotHead() ([]byte, error) {
	rules := []snapRule{}
	for _, r := range e.sorted() {
		rules = append(rules, snapRule{Rule: r.prog.rule, Quarantined: r.quarantined, Reason: r.reason})
	}
	rj, err := json.Marshal(rules)
	if err != nil {
		return nil, fmt.Errorf("write rule snapshot: %w", err)
	}
	head := fmt.Appendf(nil, `"watermark":%d,"rules":%s`, e.watermark, rj)
	if len(e.tombstones) > 0 {
		tj, err := json.Marshal(e.tombstones)
		if err != nil {
			return nil, fmt.Errorf("write rule snapshot: %w", err)
		}
		head = fmt.Appendf(head, `,"tombstones":%s`, tj)
	}
	return head, nil
}

// writeSnapshot writes one snapshot document (see encodeSnapshot).
func writeSnapshot(w io.Writer, head []byte, kg *int, keys []snapKey) error {
	doc, err := encodeSnapshot(head, kg, keys)
	if err != nil {
		return err
	}
	if _, err := w.Write(doc); err != nil {
		return fmt.Errorf("write rule snapshot: %w", err)
	}
	return nil
}

// encodeSnapshot encodes one snapshot document (see snapshotDoc), the
// shared head spliced in as it is.
func encodeSnapshot(head []byte, kg *int, keys []snapKey) ([]byte, error) {
	if keys == nil {
		keys = []snapKey{}
	}
	kj, err := json.Marshal(keys)
	if err != nil {
		return nil, fmt.Errorf("write rule snapshot: %w", err)
	}
	buf := fmt.Appendf(make([]byte, 0, len(head)+len(kj)+64), `{"format":%d,`, snapshotFormat)
	if kg != nil {
		buf = fmt.Appendf(buf, `"keyGroup":%d,`, *kg)
	}
	buf = append(buf, head...)
	buf = append(buf, `,"keys":`...)
	buf = append(buf, kj...)
	return append(buf, '}', '\n'), nil
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
// (replacing existing state of the same key). The snapshot is checked
// completely before anything changes, so a bad snapshot leaves the engine
// as it was. To restore several key groups of one checkpoint, use
// RestoreKeyGroups: it takes their shared rule set once and checks that
// they agree on it.
func (e *Engine) Restore(r io.Reader) error {
	doc, err := decodeSnapshot(r)
	if err != nil {
		return fmt.Errorf("restore rules: %w", err)
	}
	return e.restore(doc)
}

// RestoreKeyGroups merges the snapshots of several key groups taken at one
// checkpoint — those a subtask owns after rescaling, written by one or
// several subtasks — into the engine, as Restore does with one. The rule
// set (rules and tombstones) is broadcast state that every snapshot of a
// checkpoint carries: it is taken once, and snapshots that disagree on it
// are refused, as are two snapshots of one key group or one (rule, key)
// in two snapshots. A rule quarantined in any snapshot stays quarantined
// (it failed repeatedly on some subtask); the watermark is the most
// advanced one. Nothing changes unless every snapshot is accepted.
func (e *Engine) RestoreKeyGroups(snapshots [][]byte) error {
	if len(snapshots) == 0 {
		return nil
	}
	docs := make([]*snapshotDoc, len(snapshots))
	for i, data := range snapshots {
		doc, err := decodeSnapshot(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("restore rules: snapshot %d of %d: %w", i+1, len(snapshots), err)
		}
		docs[i] = doc
	}
	merged, err := mergeSnapshots(docs)
	if err != nil {
		return fmt.Errorf("restore rules: %w", err)
	}
	return e.restore(merged)
}

// decodeSnapshot reads and checks a snapshot document of any format still
// read; the keys of a key group's snapshot are marked with their group.
func decodeSnapshot(r io.Reader) (*snapshotDoc, error) {
	var doc snapshotDoc
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w", err)
	}
	if err := checkHeader(doc.Format, doc.KeyGroup); err != nil {
		return nil, err
	}
	if doc.KeyGroup != nil {
		for i := range doc.Keys {
			doc.Keys[i].group, doc.Keys[i].grouped = *doc.KeyGroup, true
		}
	}
	return &doc, nil
}

func checkHeader(format int, kg *int) error {
	switch {
	case format != snapshotFormat && format != snapshotFormatV1:
		return fmt.Errorf("unsupported snapshot format %d (want %d, or %d)", format, snapshotFormat, snapshotFormatV1)
	case kg != nil && format == snapshotFormatV1:
		return fmt.Errorf("a format %d snapshot names no key group", snapshotFormatV1)
	case kg != nil && (*kg < 0 || *kg > math.MaxUint16):
		return fmt.Errorf("key group %d out of range", *kg)
	}
	return nil
}

// mergeSnapshots combines snapshots of one checkpoint into one document
// (see RestoreKeyGroups).
func mergeSnapshots(docs []*snapshotDoc) (*snapshotDoc, error) {
	name := func(i int) string {
		if kg := docs[i].KeyGroup; kg != nil {
			return fmt.Sprintf("key group %d", *kg)
		}
		return fmt.Sprintf("snapshot %d of %d", i+1, len(docs))
	}
	first := docs[0]
	out := &snapshotDoc{Format: snapshotFormat, Watermark: first.Watermark, Rules: slices.Clone(first.Rules), Tombstones: first.Tombstones}
	defs := make(map[string][]byte, len(first.Rules))
	pos := make(map[string]int, len(first.Rules))
	for i, sr := range first.Rules {
		if sr.Rule == nil {
			return nil, fmt.Errorf("%s: rules[%d]: rule is missing", name(0), i)
		}
		def, err := json.Marshal(sr.Rule)
		if err != nil {
			return nil, fmt.Errorf("%s: rule %q: %w", name(0), sr.Rule.ID, err)
		}
		defs[sr.Rule.ID], pos[sr.Rule.ID] = def, i
	}
	groups := make(map[int]int, len(docs))
	keys := make(map[string]int)
	for i, d := range docs {
		if kg := d.KeyGroup; kg != nil {
			if j, dup := groups[*kg]; dup {
				return nil, fmt.Errorf("snapshots %d and %d are both of key group %d", j+1, i+1, *kg)
			}
			groups[*kg] = i
		}
		if i > 0 {
			if len(d.Rules) != len(first.Rules) {
				return nil, fmt.Errorf("the snapshots of one checkpoint disagree on the rule set: %s holds %d rules, %s %d", name(0), len(first.Rules), name(i), len(d.Rules))
			}
			for j, sr := range d.Rules {
				if sr.Rule == nil {
					return nil, fmt.Errorf("%s: rules[%d]: rule is missing", name(i), j)
				}
				id := sr.Rule.ID
				want, ok := defs[id]
				if !ok {
					return nil, fmt.Errorf("the snapshots of one checkpoint disagree on the rule set: rule %q is in %s, not in %s", id, name(i), name(0))
				}
				def, err := json.Marshal(sr.Rule)
				if err != nil {
					return nil, fmt.Errorf("%s: rule %q: %w", name(i), id, err)
				}
				if !bytes.Equal(def, want) {
					return nil, fmt.Errorf("the snapshots of one checkpoint disagree on the rule set: rule %q is version %d in %s and version %d in %s, or defined otherwise", id, first.Rules[pos[id]].Rule.Version, name(0), sr.Rule.Version, name(i))
				}
				if m := &out.Rules[pos[id]]; sr.Quarantined && !m.Quarantined {
					m.Quarantined, m.Reason = true, sr.Reason
				}
			}
			if !maps.Equal(d.Tombstones, first.Tombstones) {
				return nil, fmt.Errorf("the snapshots of one checkpoint disagree on the deleted rules: %v in %s, %v in %s", first.Tombstones, name(0), d.Tombstones, name(i))
			}
			out.Watermark = max(out.Watermark, d.Watermark)
		}
		for _, k := range d.Keys {
			id := k.Rule + "\x00" + k.Key
			if j, dup := keys[id]; dup {
				return nil, fmt.Errorf("key %q of rule %q is in %s and in %s", k.Key, k.Rule, name(j), name(i))
			}
			keys[id] = i
			out.Keys = append(out.Keys, k)
		}
	}
	return out, nil
}

// restore merges a checked snapshot document into the engine.
func (e *Engine) restore(doc *snapshotDoc) error {
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
		switch {
		case sk.grouped:
			ks.kg = sk.group
		case e.opts.KeyGroup != nil:
			// A snapshot from before key groups: the key's group follows
			// from its values, as the record's did.
			ks.kg = e.opts.KeyGroup(e.keyRow(r.prog, ks.vals))
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
		e.putKey(k.r, k.ks)
		k.r.stateCount[k.ks.state]++
		e.schedule(k.ks)
	}
	e.rebuild()
	return nil
}

// keyRow returns a row of the engine's schema holding a rule key's values
// in their fields, the others null.
func (e *Engine) keyRow(p *program, vals []record.Value) record.Row {
	row := make(record.Row, e.schema.Len())
	for i, f := range p.keyIdx {
		row[f] = vals[i]
	}
	return row
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

// SnapshotKeyGroupOf reports which key group a snapshot holds: ok is false
// for a snapshot of a whole engine (Snapshot, and every snapshot written
// before key groups), whose keys may be of any group.
func SnapshotKeyGroupOf(r io.Reader) (kg int, ok bool, err error) {
	var doc struct {
		Format   int  `json:"format"`
		KeyGroup *int `json:"keyGroup"`
	}
	if err := json.NewDecoder(r).Decode(&doc); err != nil {
		return 0, false, fmt.Errorf("read rule snapshot: %w", err)
	}
	if err := checkHeader(doc.Format, doc.KeyGroup); err != nil {
		return 0, false, fmt.Errorf("read rule snapshot: %w", err)
	}
	if doc.KeyGroup == nil {
		return 0, false, nil
	}
	return *doc.KeyGroup, true, nil
}

// SnapshotRules reads the rule set of a snapshot written by Snapshot or
// SnapshotKeyGroup: the rules in force (sorted by ID) and the versions of
// deleted rules. It lets the runtime know, before any engine is restored,
// which rules a checkpoint holds.
func SnapshotRules(r io.Reader) ([]*Rule, map[string]int64, error) {
	// The keys are skipped, not decoded: a checkpoint holds a snapshot
	// per key group, each with the rule set.
	var doc struct {
		Format     int              `json:"format"`
		KeyGroup   *int             `json:"keyGroup,omitempty"`
		Watermark  int64            `json:"watermark"`
		Rules      []snapRule       `json:"rules"`
		Tombstones map[string]int64 `json:"tombstones,omitempty"`
		Keys       json.RawMessage  `json:"keys"`
	}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, fmt.Errorf("read rule snapshot: %w", err)
	}
	if err := checkHeader(doc.Format, doc.KeyGroup); err != nil {
		return nil, nil, fmt.Errorf("read rule snapshot: %w", err)
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
