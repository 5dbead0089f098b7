package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/keyed"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/rules"
	"github.com/streamd/streamd/pkg/window"
)

// RulesSpec makes a stage a live rule stage instead of a window stage.
type RulesSpec struct {
	Options rules.Options
	// Initial rules are installed before the first record.
	Initial []*rules.Rule
	// Control sources deliver rule changes while the pipeline runs.
	Control []RuleControl
}

// RuleControl is a source of rule changes (watched files, a control
// topic). Run delivers changes until ctx is done; put and del validate and
// broadcast them, and their errors (an invalid or stale rule) are the
// source's to report — they never stop the pipeline.
type RuleControl interface {
	Run(ctx context.Context, put func(*rules.Rule) error, del func(id string) error) error
}

// RuleAlertSchema is the schema of a rule stage's output: one row per
// change of a rule's state for a key.
var RuleAlertSchema = record.MustSchema(
	record.Field{Name: "alert_id", Type: record.TypeString},
	record.Field{Name: "rule_id", Type: record.TypeString},
	record.Field{Name: "rule_version", Type: record.TypeInt},
	record.Field{Name: "key", Type: record.TypeString},
	record.Field{Name: "old_state", Type: record.TypeString},
	record.Field{Name: "new_state", Type: record.TypeString},
	record.Field{Name: "group", Type: record.TypeString},
	record.Field{Name: "severity", Type: record.TypeString},
	record.Field{Name: "event_time", Type: record.TypeTimestamp},
	record.Field{Name: "signals", Type: record.TypeString},
	record.Field{Name: "labels", Type: record.TypeString},
)

// ruleOperator adapts a rule engine to a subtask: records behind the
// watermark by more than the allowed lateness go to the late stream, as in
// window stages; the engine's state changes become output rows.
//
// Its state is kept per key group, as a window operator's is: the engine
// files each (rule, key) under the key group the keyBy exchange routes its
// records by (spec.Options.KeyGroup), and a snapshot holds one blob per
// key group the subtask owns — every one of them, empty or not, since each
// carries the rule set (broadcast state) so that any subtask restored from
// any subset of the key groups gets it. A restore merges the blobs of the
// key groups the subtask now owns into one engine.
type ruleOperator struct {
	eng      *rules.Engine
	stage    string
	spec     *RulesSpec
	in       *record.Schema
	late     *record.Schema
	lateness int64
	// owned are the key groups the subtask owns.
	owned []int
	// restoring holds the restored key groups' blobs until FinishRestore.
	restoring [][]byte
	out       *window.Output
	dryRuns   prometheus.Counter
	// fail stops the pipeline when a snapshot cannot be taken: the
	// checkpoint must not complete without the state.
	fail  func(error)
	log   *zap.Logger
	stats atomic.Pointer[[]rules.RuleStats]
}

func newRuleOperator(stage string, spec *RulesSpec, in *record.Schema, lateness int64, owned []int, log *zap.Logger) (*ruleOperator, error) {
	eng, err := rules.New(in, spec.Options)
	if err != nil {
		return nil, err
	}
	for _, r := range spec.Initial {
		if err := eng.Apply(rules.Update{Rule: r}); err != nil {
			return nil, fmt.Errorf("install rule %q: %w", r.ID, err)
		}
	}
	late, err := record.NewSchema(append(in.Fields(), record.Field{Name: window.FieldLateWatermark, Type: record.TypeTimestamp})...)
	if err != nil {
		return nil, err
	}
	return &ruleOperator{eng: eng, stage: stage, spec: spec, in: in, late: late, lateness: lateness, owned: owned, log: log, fail: func(error) {}}, nil
}

func (o *ruleOperator) ResultSchema() *record.Schema { return RuleAlertSchema }
func (o *ruleOperator) LateSchema() *record.Schema   { return o.late }
func (o *ruleOperator) Watermark() int64             { return o.eng.Watermark() }

// SetWatermark keeps the engine's watermark: a restored engine has the
// most advanced one of its key groups' snapshots.
func (o *ruleOperator) SetWatermark(int64) {}

// Keys is the number of (rule, key) states.
func (o *ruleOperator) Keys() int { return o.eng.KeyCount() }

// StateBytes estimates the engine's state size.
func (o *ruleOperator) StateBytes() int64 { return o.eng.StateBytes() }

// ExpiredKeys counts the keys the state TTL let go.
func (o *ruleOperator) ExpiredKeys() int64 { return int64(o.eng.ExpiredKeys()) }

func (o *ruleOperator) Process(in *record.Batch, out *window.Output) {
	o.out = out
	wm := o.eng.Watermark()
	for i := 0; i < in.Len(); i++ {
		t := in.Times[i]
		if wm != minWM && t <= wm-o.lateness {
			out.LateRecords++
			row := out.Late.AppendRow(t)
			copy(row, in.Row(i))
			row[len(row)-1] = record.TimestampMillis(wm)
			continue
		}
		refused := o.eng.RefusedRecords()
		o.eng.Process(in.Row(i), t, o.emit)
		if o.eng.RefusedRecords() != refused {
			// Not applied to some rule for want of state budget.
			out.RefusedRecords++
			if out.Refused != nil {
				copy(out.Refused.AppendRow(t), in.Row(i))
			}
		}
	}
}

func (o *ruleOperator) Advance(wm int64, out *window.Output) {
	o.out = out
	o.eng.Advance(wm, o.emit)
}

func (o *ruleOperator) emit(a rules.Alert) {
	if a.DryRun {
		if o.dryRuns != nil {
			o.dryRuns.Inc()
		}
		o.log.Info("dry-run rule changed state", zap.String("rule", a.RuleID), zap.String("key", a.Key), zap.String("from", a.OldState), zap.String("to", a.NewState))
		return
	}
	o.out.Firings++
	b := o.out.Results
	row := b.AppendRow(a.EventTime)
	row[0] = record.String(a.ID)
	row[1] = record.String(a.RuleID)
	row[2] = record.Int(a.RuleVersion)
	row[3] = record.String(a.Key)
	row[4] = record.String(a.OldState)
	row[5] = record.String(a.NewState)
	row[6] = record.String(a.Group)
	row[7] = record.String(a.Severity)
	row[8] = record.TimestampMillis(a.EventTime)
	sig := []byte{'{'}
	for i, s := range a.Signals {
		if i > 0 {
			sig = append(sig, ',')
		}
		sig = record.AppendJSONString(sig, s.Name)
		sig = append(sig, ':')
		sig = record.AppendJSONValue(sig, s.Value)
	}
	row[9] = record.String(string(append(sig, '}')))
	lab := []byte{'{'}
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i > 0 {
			lab = append(lab, ',')
		}
		lab = record.AppendJSONString(lab, k)
		lab = append(lab, ':')
		lab = record.AppendJSONString(lab, a.Labels[k])
	}
	row[10] = record.String(string(append(lab, '}')))
}

// Restore takes the blob of one key group the subtask owns; FinishRestore
// restores them all at once.
func (o *ruleOperator) Restore(_ uint16, data []byte) error {
	o.restoring = append(o.restoring, data)
	return nil
}

// FinishRestore replaces the engine with one restored from the key groups'
// blobs: the checkpointed rules and key states are the truth, and the
// stage's initial rules (rule files) apply on top of them with the same
// version checks as any update — exactly what the rule manager computes
// for the admin API (see layerRules), so both agree after every restore.
// Without blobs (the checkpoint predates the stage, or the subtask owns no
// key group) the engine keeps the initial rules.
func (o *ruleOperator) FinishRestore() error {
	blobs := o.restoring
	o.restoring = nil
	if len(blobs) == 0 {
		return nil
	}
	eng, err := rules.New(o.in, o.spec.Options)
	if err != nil {
		return err
	}
	if err := eng.RestoreKeyGroups(blobs); err != nil {
		return err
	}
	for _, r := range layerRules(eng.Rules(), eng.Tombstones(), o.spec.Initial) {
		if err := eng.Apply(rules.Update{Rule: r}); err != nil {
			return fmt.Errorf("install rule %q over the restored rules: %w", r.ID, err)
		}
	}
	o.eng = eng
	return nil
}

// layerRules returns the rules of initial that apply on top of a restored
// rule set: those newer than the restored version of their ID, or than
// the version it was deleted at. An initial rule with the restored
// version or an older one is already in place or superseded.
func layerRules(restored []*rules.Rule, tombstones map[string]int64, initial []*rules.Rule) []*rules.Rule {
	current := make(map[string]int64, len(restored)+len(tombstones))
	for id, v := range tombstones {
		current[id] = v
	}
	for _, r := range restored {
		current[r.ID] = r.Version
	}
	var out []*rules.Rule
	for _, r := range initial {
		if v, known := current[r.ID]; known && r.Version <= v {
			continue
		}
		out = append(out, r)
	}
	return out
}

// Snapshot encodes the engine's rules and key states, one blob per key
// group the subtask owns, each with the rule set. It fails only when the
// engine holds a key of a key group the subtask does not own (its records
// were routed elsewhere); then the pipeline fails rather than let a
// checkpoint complete without that key's state.
func (o *ruleOperator) Snapshot() map[uint16][]byte {
	blobs, err := o.eng.SnapshotKeyGroups(o.owned)
	if err != nil {
		o.fail(fmt.Errorf("snapshot rule stage %q: %w", o.stage, err))
		return nil
	}
	out := make(map[uint16][]byte, len(blobs))
	for kg, data := range blobs {
		out[uint16(kg)] = data
	}
	return out
}

// BeginSnapshot takes the snapshot at once: the engine has no
// copy-on-write, so the whole encoding is the subtask's pause.
func (o *ruleOperator) BeginSnapshot() keyed.PendingSnapshot { return keyed.Taken(o.Snapshot()) }

// ruleUpdate is the payload of a rule-change marker: every change accepted
// since the last one, in order, so a burst of changes (a control topic
// replayed at start) costs one alignment, not one per rule.
type ruleUpdate struct {
	changes []ruleChange
}

// ruleChange is one accepted change of one rule stage.
type ruleChange struct {
	stage  string
	update rules.Update
}

// RuleManager validates rule changes for the rule stages of a runtime,
// keeps the current rule set for the admin API, and broadcasts changes as
// markers so every subtask applies them at the same point of its input.
type RuleManager struct {
	rt *Runtime
	mu sync.Mutex
	// rules holds the current rules by stage and id; tombstones the
	// versions of deleted rules, which a re-created rule must exceed.
	rules      map[string]map[string]*rules.Rule
	tombstones map[string]map[string]int64
	// schemas are the input schemas of the rule stages, keys their keyBy.
	schemas map[string]*record.Schema
	keys    map[string][]string
	// queued holds changes accepted and not yet broadcast: those of a
	// burst, which one marker carries, and those accepted while no split
	// was reading (a consumer group still assigning partitions) — a marker
	// reaches the subtasks only through splits, and a split that starts
	// later joins past every marker injected before it. They go out, in
	// order, once a split reads.
	queued []ruleChange
	// flushing is set while a broadcast of the queue is scheduled.
	flushing bool
}

// ErrStaleRule is returned for an update whose version is not newer than
// the current one (or than the deleted one), and for a different document
// under the version already in place.
var ErrStaleRule = errors.New("rule version is not newer than the current one")

// ErrNoRuleStage is returned for a stage name that is not a rule stage.
var ErrNoRuleStage = errors.New("no such rule stage")

// Rules returns the rule manager, nil when the job has no rule stage.
func (r *Runtime) Rules() *RuleManager { return r.ruleManager }

func newRuleManager(rt *Runtime) *RuleManager {
	m := &RuleManager{rt: rt, rules: make(map[string]map[string]*rules.Rule), tombstones: make(map[string]map[string]int64), schemas: make(map[string]*record.Schema), keys: make(map[string][]string)}
	for _, st := range rt.stages {
		if st.spec.Rules == nil {
			continue
		}
		m.schemas[st.spec.Name] = st.in.schema
		m.keys[st.spec.Name] = st.spec.KeyBy
		m.rules[st.spec.Name] = make(map[string]*rules.Rule)
		m.tombstones[st.spec.Name] = make(map[string]int64)
		for _, r := range st.spec.Rules.Initial {
			m.rules[st.spec.Name][r.ID] = r
		}
	}
	if len(m.schemas) == 0 {
		return nil
	}
	return m
}

// restore rebuilds the rule sets from a checkpoint being restored, the way
// the engines rebuild theirs (ruleOperator.FinishRestore): the checkpointed
// rules and tombstones, then the initial rules on top with version checks.
// Every key group's blob carries the same rule set (updates are aligned
// markers), so their union by greatest version is that set.
func (m *RuleManager) restore(rs *restoreState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, st := range m.rt.stages {
		if st.spec.Rules == nil {
			continue
		}
		stage := st.spec.Name
		blobs := rs.Groups[stage]
		if len(blobs) == 0 {
			continue // the checkpoint predates the stage: initial rules only
		}
		set := make(map[string]*rules.Rule)
		tomb := make(map[string]int64)
		for kg, data := range blobs {
			list, deleted, err := rules.SnapshotRules(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("restore rules of stage %q (key group %d): %w", stage, kg, err)
			}
			for _, r := range list {
				if cur, ok := set[r.ID]; !ok || r.Version > cur.Version {
					set[r.ID] = r
				}
			}
			for id, v := range deleted {
				tomb[id] = max(tomb[id], v)
			}
		}
		for id, v := range tomb {
			if r, ok := set[id]; ok {
				if r.Version > v {
					delete(tomb, id)
					continue
				}
				delete(set, id)
			}
		}
		restored := make([]*rules.Rule, 0, len(set))
		for _, r := range set {
			restored = append(restored, r)
		}
		for _, r := range layerRules(restored, tomb, st.spec.Rules.Initial) {
			set[r.ID] = r
			delete(tomb, r.ID)
		}
		m.rules[stage], m.tombstones[stage] = set, tomb
	}
	return nil
}

// Stages lists the rule stages.
func (m *RuleManager) Stages() []string {
	out := make([]string, 0, len(m.schemas))
	for s := range m.schemas {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// List returns a stage's current rules sorted by id.
func (m *RuleManager) List(stage string) ([]*rules.Rule, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	set, ok := m.rules[stage]
	if !ok {
		return nil, fmt.Errorf("list rules of %q: %w", stage, ErrNoRuleStage)
	}
	out := make([]*rules.Rule, 0, len(set))
	for _, r := range set {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Validate checks a rule against a stage without installing it.
func (m *RuleManager) Validate(stage string, r *rules.Rule) error {
	schema, ok := m.schemas[stage]
	if !ok {
		return fmt.Errorf("validate rule %q for %q: %w", r.ID, stage, ErrNoRuleStage)
	}
	if err := r.Validate(schema); err != nil {
		return err
	}
	for _, k := range m.keys[stage] {
		found := false
		for _, rk := range r.Key {
			found = found || rk == k
		}
		if !found {
			return fmt.Errorf("rule %q: key %v must include %q, the field stage %q is partitioned by", r.ID, r.Key, k, stage)
		}
	}
	return nil
}

// Put validates a rule and broadcasts it; it returns once the change is
// injected into every split (or queued, while no split reads, to go out
// as soon as one does). The same document under the version in place
// is a replay (a control topic read again after a restart) and changes
// nothing; another document under that version, an older version, or a
// version not above the one a deleted rule had is refused with
// ErrStaleRule, exactly as the engines would refuse it.
func (m *RuleManager) Put(ctx context.Context, stage string, r *rules.Rule) error {
	if err := m.Validate(stage, r); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.rules[stage][r.ID]; ok && r.Version <= cur.Version {
		if r.Version == cur.Version {
			if sameRule(r, cur) {
				return nil // a replayed change: already in place
			}
			return fmt.Errorf("rule %q version %d: %w (version %d is in place with another definition)", r.ID, r.Version, ErrStaleRule, cur.Version)
		}
		return fmt.Errorf("rule %q version %d: %w (current %d)", r.ID, r.Version, ErrStaleRule, cur.Version)
	}
	if v, ok := m.tombstones[stage][r.ID]; ok && r.Version <= v {
		return fmt.Errorf("rule %q version %d: %w (version %d was deleted)", r.ID, r.Version, ErrStaleRule, v)
	}
	if err := m.broadcast(ruleChange{stage: stage, update: rules.Update{Rule: r}}); err != nil {
		return fmt.Errorf("broadcast rule %q: %w", r.ID, err)
	}
	m.rules[stage][r.ID] = r
	delete(m.tombstones[stage], r.ID)
	return nil
}

// Delete removes a rule everywhere. A rule the stage does not hold (never
// created, or deleted already) is reported with rules.ErrNoRule.
func (m *RuleManager) Delete(ctx context.Context, stage, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	set, ok := m.rules[stage]
	if !ok {
		return fmt.Errorf("delete rule %q from %q: %w", id, stage, ErrNoRuleStage)
	}
	cur, ok := set[id]
	if !ok {
		return fmt.Errorf("delete rule %q: %w", id, rules.ErrNoRule)
	}
	if err := m.broadcast(ruleChange{stage: stage, update: rules.Update{Delete: id}}); err != nil {
		return fmt.Errorf("broadcast delete of rule %q: %w", id, err)
	}
	delete(set, id)
	m.tombstones[stage][id] = cur.Version
	return nil
}

// ruleBatchDelay is how long an accepted change waits for others to go out
// with it in one marker: short beside the time a marker takes to reach
// every subtask, long enough to gather a burst.
const ruleBatchDelay = 5 * time.Millisecond

// broadcast queues an accepted change and schedules a broadcast of the
// queue; m.mu is held. Changes accepted within ruleBatchDelay go out
// together, in one marker.
func (m *RuleManager) broadcast(c ruleChange) error {
	if !m.rt.started() {
		return ErrNotRunning
	}
	m.queued = append(m.queued, c)
	if !m.flushing {
		m.flushing = true
		time.AfterFunc(ruleBatchDelay, func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.flushing = false
			if err := m.flushQueued(); err != nil && !errors.Is(err, ErrNotRunning) {
				m.rt.log.Warn("broadcast rule changes", zap.Error(err))
			}
		})
	}
	return nil
}

// flushQueued broadcasts every queued change in one marker while splits
// are running; m.mu is held. Injecting never waits on a split.
func (m *RuleManager) flushQueued() error {
	if len(m.queued) == 0 {
		return nil
	}
	_, n, err := m.rt.inject(&ruleUpdate{changes: slices.Clone(m.queued)}, nil)
	if err != nil {
		return err
	}
	if n > 0 {
		m.queued = m.queued[:0]
	}
	return nil
}

// sameRule reports whether two documents define the same rule: equal
// canonical JSON (map keys sorted, durations normalised).
func sameRule(a, b *rules.Rule) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// Stats returns the per-rule counters summed over a stage's subtasks.
func (m *RuleManager) Stats(stage string) []rules.RuleStats {
	byID := map[string]*rules.RuleStats{}
	var order []string
	for _, st := range m.rt.stages {
		if st.spec.Name != stage {
			continue
		}
		for _, op := range st.ruleOps {
			p := op.stats.Load()
			if p == nil {
				continue
			}
			for _, s := range *p {
				agg := byID[s.ID]
				if agg == nil {
					c := s
					c.Keys = map[string]int{}
					for k, v := range s.Keys {
						c.Keys[k] = v
					}
					byID[s.ID] = &c
					order = append(order, s.ID)
					continue
				}
				// The version every subtask has reached; quarantined on
				// any subtask is quarantined.
				agg.Version = min(agg.Version, s.Version)
				if s.Quarantined && !agg.Quarantined {
					agg.Quarantined, agg.QuarantineReason = true, s.QuarantineReason
				}
				agg.Evaluations += s.Evaluations
				agg.Errors += s.Errors
				agg.Alerts += s.Alerts
				agg.DryRunAlerts += s.DryRunAlerts
				for k, v := range s.Keys {
					agg.Keys[k] += v
				}
			}
		}
	}
	sort.Strings(order)
	out := make([]rules.RuleStats, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out
}

// ruleCollector exports per-rule metrics from the subtasks' published stats.
type ruleCollector struct {
	m                                  *RuleManager
	evals, errs, alerts, keys, quarant *prometheus.Desc
}

func newRuleCollector(m *RuleManager) *ruleCollector {
	return &ruleCollector{
		m:       m,
		evals:   prometheus.NewDesc("streamd_rule_evaluations_total", "Rule evaluations.", []string{"stage", "rule"}, nil),
		errs:    prometheus.NewDesc("streamd_rule_errors_total", "Rule evaluations that failed.", []string{"stage", "rule"}, nil),
		alerts:  prometheus.NewDesc("streamd_rule_alerts_total", "State changes emitted as alerts.", []string{"stage", "rule"}, nil),
		keys:    prometheus.NewDesc("streamd_rule_keys", "Keys of a rule by current state.", []string{"stage", "rule", "state"}, nil),
		quarant: prometheus.NewDesc("streamd_rule_quarantined", "1 when a rule is quarantined after repeated errors.", []string{"stage", "rule"}, nil),
	}
}

func (c *ruleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.evals
	ch <- c.errs
	ch <- c.alerts
	ch <- c.keys
	ch <- c.quarant
}

func (c *ruleCollector) Collect(ch chan<- prometheus.Metric) {
	for _, stage := range c.m.Stages() {
		for _, s := range c.m.Stats(stage) {
			ch <- prometheus.MustNewConstMetric(c.evals, prometheus.CounterValue, float64(s.Evaluations), stage, s.ID)
			ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(s.Errors), stage, s.ID)
			ch <- prometheus.MustNewConstMetric(c.alerts, prometheus.CounterValue, float64(s.Alerts), stage, s.ID)
			q := 0.0
			if s.Quarantined {
				q = 1
			}
			ch <- prometheus.MustNewConstMetric(c.quarant, prometheus.GaugeValue, q, stage, s.ID)
			for state, n := range s.Keys {
				ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(n), stage, s.ID, state)
			}
		}
	}
}

// upgradeRuleState rewrites the rule-stage state of a checkpoint written
// before rule state was kept per key group — one blob per subtask, a whole
// engine's snapshot filed under the subtask's index as its key group —
// into blobs per key group, so it restores at any parallelism as current
// checkpoints do. Subtask j of the P that wrote it owned the key groups
// SubtaskFor maps to j: its engine is restored, each key filed under the
// key group of its values (the rule key includes the stage's keyBy), and
// snapshotted per owned key group, with the watermark subtask j had.
func (r *Runtime) upgradeRuleState(rs *restoreState) error {
	for _, st := range r.stages {
		if st.spec.Rules == nil {
			continue
		}
		stage := st.spec.Name
		blobs := rs.Groups[stage]
		legacy := 0
		for kg, data := range blobs {
			g, ok, err := rules.SnapshotKeyGroupOf(bytes.NewReader(data))
			switch {
			case err != nil:
				return fmt.Errorf("restore rule stage %q: key group %d: %w", stage, kg, err)
			case !ok:
				legacy++
			case g != int(kg):
				return fmt.Errorf("restore rule stage %q: the state filed under key group %d is that of key group %d", stage, kg, g)
			}
		}
		if legacy == 0 {
			continue
		}
		if legacy != len(blobs) {
			return fmt.Errorf("restore rule stage %q: the checkpoint mixes rule state per subtask and per key group", stage)
		}
		parallelism := len(blobs)
		for j := range parallelism {
			if _, ok := blobs[uint16(j)]; !ok {
				return fmt.Errorf("restore rule stage %q: the checkpoint has rule state per subtask for %d subtasks, but none for subtask %d", stage, parallelism, j)
			}
		}
		groups, wms := make(map[uint16][]byte), make(map[uint16]int64)
		spec := r.ruleSpec(st, 0)
		for j := range parallelism {
			var owned []int
			for kg := range st.keyGroups {
				if SubtaskFor(kg, st.keyGroups, parallelism) == j {
					owned = append(owned, kg)
				}
			}
			eng, err := rules.New(st.in.schema, spec.Options)
			if err != nil {
				return fmt.Errorf("restore rule stage %q: %w", stage, err)
			}
			if err := eng.Restore(bytes.NewReader(blobs[uint16(j)])); err != nil {
				return fmt.Errorf("restore rule stage %q (state of subtask %d of %d): %w", stage, j, parallelism, err)
			}
			split, err := eng.SnapshotKeyGroups(owned)
			if err != nil {
				return fmt.Errorf("restore rule stage %q: split the state of subtask %d of %d by key group: %w", stage, j, parallelism, err)
			}
			for kg, data := range split {
				groups[uint16(kg)], wms[uint16(kg)] = data, rs.Watermarks[stage][uint16(j)]
			}
		}
		r.log.Info("restoring rule state kept per subtask; it is checkpointed per key group from now on", zap.String("stage", stage), zap.Int("subtasks", parallelism))
		rs.Groups[stage], rs.Watermarks[stage] = groups, wms
	}
	return nil
}

// publishStats makes the engine's counters readable by the metrics
// collector; it runs on the subtask's goroutine.
func (o *ruleOperator) publishStats() {
	st := o.eng.Stats()
	o.stats.Store(&st)
}

// runControls starts every rule stage's control sources. They stop with
// ctx, or once every rule stage has finished (a bounded input read to its
// end): nothing could apply a change any more, and Run waits for them.
func (r *Runtime) runControls(ctx context.Context, wg *sync.WaitGroup) {
	m := r.ruleManager
	if m == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			for _, st := range r.stages {
				if st.spec.Rules != nil {
					st.done.Wait()
				}
			}
		}()
		// Changes queued while no split was reading go out once one is.
		tick := time.NewTicker(r.job.TickInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-finished:
				return
			case <-tick.C:
				m.mu.Lock()
				if err := m.flushQueued(); err != nil && !errors.Is(err, ErrNotRunning) {
					r.log.Warn("broadcast queued rule changes", zap.Error(err))
				}
				m.mu.Unlock()
			}
		}
	}()
	for _, st := range r.stages {
		if st.spec.Rules == nil {
			continue
		}
		stage := st.spec.Name
		for _, ctl := range st.spec.Rules.Control {
			wg.Add(1)
			go func() {
				defer wg.Done()
				put := func(rule *rules.Rule) error { return m.Put(ctx, stage, rule) }
				del := func(id string) error { return m.Delete(ctx, stage, id) }
				if err := ctl.Run(ctx, put, del); err != nil {
					r.log.Error("rule control source stopped", zap.String("stage", stage), zap.Error(err))
				}
			}()
		}
	}
}
