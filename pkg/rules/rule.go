package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/expr-lang/expr/ast"
	"gopkg.in/yaml.v3"

	"github.com/streamd/streamd/pkg/record"
)

// Format is the encoding of a rule document.
type Format string

// Rule document formats.
const (
	FormatJSON Format = "json"
	FormatYAML Format = "yaml"
)

// Aggregations a signal can apply to the values it selects.
const (
	AggLatest = "latest"
	AggAvg    = "avg"
	AggMax    = "max"
	AggMin    = "min"
	AggCount  = "count"
	AggSum    = "sum"
)

var aggNames = []string{AggLatest, AggAvg, AggMax, AggMin, AggCount, AggSum}

// defaultStates is the ranking DefaultStates returns.
var defaultStates = []string{"OK", "ACTIVE", "WARNING", "CRITICAL"}

// DefaultStates returns the state ranking used when a rule declares none;
// the first state is the one a key is in while no group fires.
func DefaultStates() []string { return slices.Clone(defaultStates) }

// Rule is a rule document: which records it reads, how it keys them, the
// signals it derives per key and the condition groups that decide the
// key's state. Rules are data; they are created and changed while the
// pipeline runs and identified by ID and Version.
type Rule struct {
	// ID names the rule; updates and deletes refer to it.
	ID string `json:"id" yaml:"id"`
	// Version must increase with every update of the same ID, so replays
	// of an older document from the control stream are rejected.
	Version int64 `json:"version" yaml:"version"`
	// Enabled rules evaluate; disabled rules keep their definition only.
	// Absent means enabled.
	Enabled bool `json:"enabled" yaml:"enabled"`
	// Description is free text carried into alerts.
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// DryRun rules evaluate and count but their alerts are flagged DryRun
	// so the runtime can log them instead of publishing them.
	DryRun bool `json:"dryRun,omitempty" yaml:"dryRun,omitempty"`
	// Select is a boolean expression over record fields; empty selects all.
	Select string `json:"select,omitempty" yaml:"select,omitempty"`
	// Key lists the record fields whose values form the rule key.
	Key []string `json:"key,omitempty" yaml:"key,omitempty"`
	// Signals are the named values per key that conditions read.
	Signals map[string]Signal `json:"signals" yaml:"signals"`
	// Groups are the condition groups, each mapping to a state.
	Groups []Group `json:"groups" yaml:"groups"`
	// States ranks the states, lowest first; the first is the state of a
	// key with no firing group. Defaults to OK, ACTIVE, WARNING, CRITICAL.
	States []string `json:"states,omitempty" yaml:"states,omitempty"`
	// Severity is copied into alerts.
	Severity string `json:"severity,omitempty" yaml:"severity,omitempty"`
	// Labels are copied into alerts.
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	// Annotations are text/template strings rendered at each alert with
	// the signal values, .key, .state, .oldState and .group.
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
}

// Signal derives one named value per key from the records a rule selects.
type Signal struct {
	// When is a boolean expression over record fields choosing the records
	// that feed this signal (e.g. tag == "water_temperature"); empty means
	// every selected record.
	When string `json:"when,omitempty" yaml:"when,omitempty"`
	// Value is an expression over record fields giving the input value.
	Value string `json:"value,omitempty" yaml:"value,omitempty"`
	// Agg is latest (default), avg, max, min, count or sum.
	Agg string `json:"agg,omitempty" yaml:"agg,omitempty"`
	// Window is the sliding event-time window of an aggregate: the value
	// at time T covers inputs with event time in (T-Window, T]. For latest
	// it is optional and makes the value expire Window after it was
	// observed.
	Window Duration `json:"window,omitempty" yaml:"window,omitempty"`
}

// Group is a condition group: while its conditions hold (for at least For)
// the group fires and proposes its State.
type Group struct {
	// Name identifies the group in alerts.
	Name string `json:"name" yaml:"name"`
	// State is the state the group proposes while firing.
	State string `json:"state" yaml:"state"`
	// Weight breaks ties between firing groups of the same state.
	Weight int `json:"weight,omitempty" yaml:"weight,omitempty"`
	// Conditions are boolean expressions over the signals.
	Conditions []string `json:"conditions" yaml:"conditions"`
	// Match is all (default) or any.
	Match string `json:"match,omitempty" yaml:"match,omitempty"`
	// For is how long the conditions must hold without interruption, in
	// event time, before the group fires.
	For Duration `json:"for,omitempty" yaml:"for,omitempty"`
	// Clear, when set, is the condition that ends a firing group
	// (hysteresis); without it the group stops when its conditions stop
	// holding.
	Clear string `json:"clear,omitempty" yaml:"clear,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("5m",
// "90s") or as a number of milliseconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Millis returns d in milliseconds.
func (d Duration) Millis() int64 { return time.Duration(d).Milliseconds() }

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalJSON reads a duration string or milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return d.parse(s)
	}
	var ms int64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("parse duration %s: want a string like \"5m\" or milliseconds", b)
	}
	*d = Duration(time.Duration(ms) * time.Millisecond)
	return nil
}

// UnmarshalYAML reads a duration string or milliseconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var ms int64
	if n.Tag == "!!int" && n.Decode(&ms) == nil {
		*d = Duration(time.Duration(ms) * time.Millisecond)
		return nil
	}
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("parse duration: %w", err)
	}
	return d.parse(s)
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("parse duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Parse decodes a rule document and validates it without a schema (field
// names are not checked; see Validate). Unknown keys are errors, so a
// misspelt option is reported instead of ignored.
func Parse(data []byte, format Format) (*Rule, error) {
	r := &Rule{Enabled: true}
	switch format {
	case FormatJSON:
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(r); err != nil {
			return nil, fmt.Errorf("parse rule: %w", err)
		}
		if dec.More() {
			return nil, errors.New("parse rule: trailing data after the rule document")
		}
	case FormatYAML:
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(r); err != nil {
			return nil, fmt.Errorf("parse rule: %w", err)
		}
	default:
		return nil, fmt.Errorf("parse rule: unknown format %q (want json or yaml)", format)
	}
	if err := r.Validate(nil); err != nil {
		return nil, err
	}
	return r, nil
}

// Validate checks the rule and compiles every expression against schema
// (the fields records carry) and the declared signals. A nil schema accepts
// any field name. Every problem is reported, each prefixed with its path
// in the document, e.g. `groups[1].conditions[0]: unknown signal "temprature"`.
func (r *Rule) Validate(schema *record.Schema) error {
	_, err := compileRule(r, schema)
	return err
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,200}$`)

// program is a rule compiled against a schema. It is immutable after
// compileRule and may be shared by engines on several goroutines.
type program struct {
	rule     *Rule
	selectC  *compiled
	keyIdx   []int
	signals  []signalProg
	sigIndex map[string]int
	groups   []groupProg
	states   []string
	stateIdx map[string]int
	// index is the select's equality constraints: field position → values.
	index map[int][]string
	// selectIsIndex means the select is exactly the indexed predicate.
	selectIsIndex bool
	annot         []annotation
}

type signalProg struct {
	name   string
	spec   Signal
	when   *compiled
	value  *compiled
	agg    string
	window int64
	// lazy marks a latest signal whose window is the state TTL: its value
	// is absent from every evaluation at or after window past its
	// observation, but its expiry alone schedules no evaluation — so a
	// silent key is not woken up (and a bounded input's end does not
	// resolve every alert) just because its last reading aged.
	lazy bool
	typ  record.Type
}

type groupProg struct {
	name   string
	spec   Group
	state  int
	weight int
	conds  []*compiled
	any    bool
	forMs  int64
	clear  *compiled
}

type annotation struct {
	name string
	tmpl *template.Template
}

// errList collects problems with their document paths.
type errList []error

func (l *errList) add(path string, err error) {
	*l = append(*l, fmt.Errorf("%s: %w", path, err))
}

func (l *errList) addf(path, format string, args ...any) {
	*l = append(*l, fmt.Errorf("%s: "+format, append([]any{path}, args...)...))
}

func compileRule(r *Rule, schema *record.Schema) (*program, error) {
	var errs errList
	if !idPattern.MatchString(r.ID) {
		errs.addf("id", "must be 1-200 characters of letters, digits and _.:/- (got %q)", r.ID)
	}
	if r.Version <= 0 {
		errs.addf("version", "must be a positive integer (got %d)", r.Version)
	}
	p := &program{rule: r, sigIndex: map[string]int{}, stateIdx: map[string]int{}}

	// Record fields.
	fields := &names{refs: map[string]nameRef{}, env: map[string]any{}, kind: "field"}
	if schema != nil {
		for i := 0; i < schema.Len(); i++ {
			f := schema.Field(i)
			fields.refs[f.Name] = nameRef{idx: i, typ: f.Type}
			if z := f.Type.GoZero(); z != nil {
				fields.env[f.Name] = z
			}
		}
	}
	rowExpr := func(path, src string, asBool bool) *compiled {
		if schema == nil {
			// Without a schema only syntax and result type can be checked.
			c, err := compileLoose(src, asBool)
			if err != nil {
				errs.add(path, err)
			}
			return c
		}
		c, err := compileExpr(src, fields, asBool)
		if err != nil {
			errs.add(path, err)
		}
		return c
	}
	if r.Select != "" {
		p.selectC = rowExpr("select", r.Select, true)
		if p.selectC != nil && schema != nil {
			p.index = equalityPredicates(p.selectC.tree, fields)
			if b, ok := p.selectC.tree.(*ast.BinaryNode); ok && len(p.index) == 1 && (b.Operator == "==" || b.Operator == "in") {
				// The select is nothing but the indexed predicate: finding
				// the rule through the index already proves it matches.
				p.selectIsIndex = true
			}
		}
	}
	for i, k := range r.Key {
		if schema == nil {
			continue
		}
		idx, ok := schema.Index(k)
		if !ok {
			errs.addf(fmt.Sprintf("key[%d]", i), "unknown field %q", k)
			continue
		}
		p.keyIdx = append(p.keyIdx, idx)
	}

	// Signals, in name order so indexes are stable.
	sigNames := make([]string, 0, len(r.Signals))
	for name := range r.Signals {
		sigNames = append(sigNames, name)
	}
	sort.Strings(sigNames)
	if len(sigNames) == 0 {
		errs.addf("signals", "at least one signal is required")
	}
	sigs := &names{refs: map[string]nameRef{}, env: map[string]any{}, kind: "signal"}
	for i, name := range sigNames {
		s := r.Signals[name]
		path := "signals." + name
		if !identPattern.MatchString(name) {
			errs.addf(path, "signal name must be an identifier (letters, digits, _)")
		}
		sp := signalProg{name: name, spec: s, agg: s.Agg, window: s.Window.Millis()}
		if sp.agg == "" {
			sp.agg = AggLatest
		}
		if !slices.Contains(aggNames, sp.agg) {
			errs.addf(path+".agg", "unknown aggregation %q (want %s)", s.Agg, strings.Join(aggNames, ", "))
		}
		if s.Window < 0 {
			errs.addf(path+".window", "must not be negative")
		}
		if sp.agg != AggLatest && sp.window <= 0 {
			errs.addf(path+".window", "is required for agg %s", sp.agg)
		}
		if s.When != "" {
			sp.when = rowExpr(path+".when", s.When, true)
		}
		switch {
		case s.Value != "":
			sp.value = rowExpr(path+".value", s.Value, false)
		case sp.agg != AggCount:
			errs.addf(path+".value", "is required for agg %s", sp.agg)
		}
		sp.typ = record.TypeFloat
		if sp.value != nil && sp.agg == AggLatest {
			sp.typ = signalType(sp.value.outType)
			if schema == nil {
				// Without a schema the input type is unknown: leave the
				// signal untyped so conditions are checked for names only.
				sp.typ = record.TypeNull
			}
		}
		if sp.value != nil && sp.agg != AggLatest && sp.agg != AggCount {
			if t := signalType(sp.value.outType); t != record.TypeFloat {
				errs.addf(path+".value", "agg %s needs a number, the expression gives %s", sp.agg, t)
			}
		}
		p.sigIndex[name] = i
		p.signals = append(p.signals, sp)
		sigs.refs[name] = nameRef{signal: true, idx: i, typ: sp.typ}
		if z := sp.typ.GoZero(); z != nil {
			sigs.env[name] = z
		}
	}

	// States.
	p.states = r.States
	if len(p.states) == 0 {
		p.states = defaultStates
	}
	for i, s := range p.states {
		if s == "" {
			errs.addf(fmt.Sprintf("states[%d]", i), "must not be empty")
		}
		if _, dup := p.stateIdx[s]; dup {
			errs.addf(fmt.Sprintf("states[%d]", i), "duplicate state %q", s)
		}
		p.stateIdx[s] = i
	}
	if len(p.states) < 2 {
		errs.addf("states", "needs at least two states (the first is the resting state)")
	}

	// Groups.
	if len(r.Groups) == 0 {
		errs.addf("groups", "at least one group is required")
	}
	groupNames := map[string]bool{}
	for gi, g := range r.Groups {
		path := fmt.Sprintf("groups[%d]", gi)
		gp := groupProg{name: g.Name, spec: g, weight: g.Weight, forMs: g.For.Millis()}
		if g.Name == "" {
			errs.addf(path+".name", "is required")
		} else if groupNames[g.Name] {
			errs.addf(path+".name", "duplicate group %q", g.Name)
		}
		groupNames[g.Name] = true
		st, ok := p.stateIdx[g.State]
		switch {
		case !ok:
			errs.addf(path+".state", "unknown state %q (states: %s)", g.State, strings.Join(p.states, ", "))
		case st == 0:
			errs.addf(path+".state", "%q is the resting state; a group must propose a higher one", g.State)
		}
		gp.state = st
		switch g.Match {
		case "", "all":
		case "any":
			gp.any = true
		default:
			errs.addf(path+".match", "must be all or any (got %q)", g.Match)
		}
		if g.For < 0 {
			errs.addf(path+".for", "must not be negative")
		}
		if len(g.Conditions) == 0 {
			errs.addf(path+".conditions", "at least one condition is required")
		}
		for ci, src := range g.Conditions {
			c, err := compileExpr(src, sigs, true)
			if err != nil {
				errs.add(fmt.Sprintf("%s.conditions[%d]", path, ci), err)
				continue
			}
			gp.conds = append(gp.conds, c)
		}
		if g.Clear != "" {
			c, err := compileExpr(g.Clear, sigs, true)
			if err != nil {
				errs.add(path+".clear", err)
			}
			gp.clear = c
		}
		p.groups = append(p.groups, gp)
	}

	// Annotations.
	annNames := make([]string, 0, len(r.Annotations))
	for k := range r.Annotations {
		annNames = append(annNames, k)
	}
	sort.Strings(annNames)
	for _, k := range annNames {
		t, err := template.New(k).Option("missingkey=zero").Parse(r.Annotations[k])
		if err != nil {
			errs.add("annotations."+k, fmt.Errorf("parse template: %w", err))
			continue
		}
		p.annot = append(p.annot, annotation{name: k, tmpl: t})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("validate rule %q: %w", r.ID, errors.Join(errs...))
	}
	return p, nil
}

var identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// compileLoose checks syntax and result type with every name allowed.
func compileLoose(src string, asBool bool) (*compiled, error) {
	ns := &names{refs: map[string]nameRef{}, env: map[string]any{}, kind: "field", loose: true}
	c, err := compileExpr(src, ns, asBool)
	if c != nil {
		// Never evaluated: a loose compile only validates.
		c.boolNative, c.valueNative = nil, nil
	}
	return c, err
}
