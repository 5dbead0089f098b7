package difftest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/streamd/streamd/pkg/rules"
)

// The workload's records: a key (the stage's keyBy), a tag, a value that
// may be null, a site (a second key field for some rules), an event time.
type rec struct {
	key, tag, site string
	value          *float64
	t              int64
}

func (r rec) String() string {
	v := "null"
	if r.value != nil {
		v = strconv.FormatFloat(*r.value, 'g', -1, 64)
	}
	return fmt.Sprintf("%s/%s/%s=%s@%s", r.key, r.tag, r.site, v, fmtT(r.t))
}

// t0 is the event time the workloads start from.
const t0 = int64(1_700_000_000_000)

func fmtT(t int64) string {
	switch t {
	case minWM:
		return "-inf"
	case maxWM:
		return "+inf"
	}
	return fmt.Sprintf("%+dms", t-t0)
}

// Record predicates (select and when) as a tiny AST: the rule document is
// rendered from it and the model evaluates it directly, without the
// engine's expression compiler.
type pred struct {
	kind  string // "tag==", "tag!=", "tagIn", "value>", "site||tag"
	s, s2 string
	list  []string
	c     float64
}

func (p *pred) src() string {
	if p == nil {
		return ""
	}
	switch p.kind {
	case "tag==":
		return fmt.Sprintf("tag == %q", p.s)
	case "tag!=":
		return fmt.Sprintf("tag != %q", p.s)
	case "tagIn":
		q := make([]string, len(p.list))
		for i, s := range p.list {
			q[i] = strconv.Quote(s)
		}
		return "tag in [" + strings.Join(q, ", ") + "]"
	case "value>":
		return fmt.Sprintf("value > %g", p.c)
	case "site||tag":
		return fmt.Sprintf("site == %q || tag == %q", p.s, p.s2)
	}
	panic("unknown predicate " + p.kind)
}

// eval is the documented three-valued truth of the predicate on a record:
// a comparison with a null field is unknown.
func (p *pred) eval(r rec) tri {
	if p == nil {
		return triT
	}
	switch p.kind {
	case "tag==":
		return truth(r.tag == p.s)
	case "tag!=":
		return truth(r.tag != p.s)
	case "tagIn":
		return truth(slices.Contains(p.list, r.tag))
	case "value>":
		if r.value == nil {
			return triU
		}
		return truth(*r.value > p.c)
	case "site||tag":
		return or3(truth(r.site == p.s), truth(r.tag == p.s2))
	}
	panic("unknown predicate " + p.kind)
}

// cond is a condition over signals.
type cond struct {
	kind string // "cmp", "not", "and", "or", "sum"
	sig  string
	sig2 string
	op   string
	c    float64
	l, r *cond
}

func (c *cond) src() string {
	switch c.kind {
	case "cmp":
		return fmt.Sprintf("%s %s %g", c.sig, c.op, c.c)
	case "not":
		return "!(" + c.l.src() + ")"
	case "and":
		return "(" + c.l.src() + ") && (" + c.r.src() + ")"
	case "or":
		return "(" + c.l.src() + ") || (" + c.r.src() + ")"
	case "sum":
		// Arithmetic runs on the expression VM.
		return fmt.Sprintf("%s + %s %s %g", c.sig, c.sig2, c.op, c.c)
	}
	panic("unknown condition " + c.kind)
}

// eval follows the documented semantics: a comparison with an absent
// signal is unknown, ! && || are Kleene's, and an expression outside the
// native subset (arithmetic) is unknown when any signal it reads is absent.
func (c *cond) eval(sig map[string]*float64) tri {
	switch c.kind {
	case "cmp":
		v := sig[c.sig]
		if v == nil {
			return triU
		}
		return truth(compare(*v, c.op, c.c))
	case "not":
		return not3(c.l.eval(sig))
	case "and":
		return and3(c.l.eval(sig), c.r.eval(sig))
	case "or":
		return or3(c.l.eval(sig), c.r.eval(sig))
	case "sum":
		a, b := sig[c.sig], sig[c.sig2]
		if a == nil || b == nil {
			return triU
		}
		return truth(compare(*a+*b, c.op, c.c))
	}
	panic("unknown condition " + c.kind)
}

func compare(a float64, op string, b float64) bool {
	switch op {
	case ">":
		return a > b
	case ">=":
		return a >= b
	case "<":
		return a < b
	case "<=":
		return a <= b
	case "==":
		return a == b
	case "!=":
		return a != b
	}
	panic("unknown operator " + op)
}

type signalDef struct {
	name   string
	when   *pred
	value  string // "value", "value * 2" or "" (count of records)
	agg    string
	window int64 // ms; 0 only for latest
}

// same reports whether a new version keeps this signal's state: the
// documented rule is "definition unchanged".
func (s signalDef) same(o signalDef) bool {
	return s.name == o.name && s.when.src() == o.when.src() && s.value == o.value && s.agg == o.agg && s.window == o.window
}

type groupDef struct {
	name   string
	state  string
	weight int
	match  string // "all" or "any"
	conds  []*cond
	forMs  int64
	clear  *cond
}

func (g groupDef) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%d|%s|%d|", g.name, g.state, g.weight, g.match, g.forMs)
	for _, c := range g.conds {
		b.WriteString(c.src() + ";")
	}
	if g.clear != nil {
		b.WriteString("clear:" + g.clear.src())
	}
	return b.String()
}

type ruleDef struct {
	id       string
	version  int64
	enabled  bool
	dryRun   bool
	sel      *pred
	key      []string
	signals  []signalDef // sorted by name
	states   []string
	groups   []groupDef
	severity string
	labels   map[string]string
}

func (r *ruleDef) clone() *ruleDef {
	c := *r
	c.key = slices.Clone(r.key)
	c.signals = slices.Clone(r.signals)
	c.states = slices.Clone(r.states)
	c.groups = make([]groupDef, len(r.groups))
	for i, g := range r.groups {
		g.conds = slices.Clone(g.conds)
		c.groups[i] = g
	}
	if r.labels != nil {
		c.labels = map[string]string{}
		for k, v := range r.labels {
			c.labels[k] = v
		}
	}
	return &c
}

// doc renders the rule document (JSON, as a rule author writes it).
func (r *ruleDef) doc() []byte {
	type sigDoc struct {
		When   string `json:"when,omitempty"`
		Value  string `json:"value,omitempty"`
		Agg    string `json:"agg"`
		Window int64  `json:"window,omitempty"`
	}
	type groupDoc struct {
		Name       string   `json:"name"`
		State      string   `json:"state"`
		Weight     int      `json:"weight,omitempty"`
		Match      string   `json:"match"`
		Conditions []string `json:"conditions"`
		For        int64    `json:"for,omitempty"`
		Clear      string   `json:"clear,omitempty"`
	}
	doc := map[string]any{
		"id": r.id, "version": r.version, "enabled": r.enabled, "dryRun": r.dryRun,
		"key": r.key, "states": r.states, "severity": r.severity,
	}
	if r.sel != nil {
		doc["select"] = r.sel.src()
	}
	if len(r.labels) > 0 {
		doc["labels"] = r.labels
	}
	sigs := map[string]sigDoc{}
	for _, s := range r.signals {
		sigs[s.name] = sigDoc{When: s.when.src(), Value: s.value, Agg: s.agg, Window: s.window}
	}
	doc["signals"] = sigs
	var groups []groupDoc
	for _, g := range r.groups {
		gd := groupDoc{Name: g.name, State: g.state, Weight: g.weight, Match: g.match, For: g.forMs}
		for _, c := range g.conds {
			gd.Conditions = append(gd.Conditions, c.src())
		}
		if g.clear != nil {
			gd.Clear = g.clear.src()
		}
		groups = append(groups, gd)
	}
	doc["groups"] = groups
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		panic(err)
	}
	return bytes.TrimSpace(buf.Bytes())
}

// Script steps, applied one at a time to the runtime and the model.
type step struct {
	kind  string // "batch", "put", "delete", "end", "restart"
	split int
	// parallelism is what a restart restores at (0: unchanged).
	parallelism int
	recs        []rec
	rule        *ruleDef
	id          string
}

func (s step) String() string {
	switch s.kind {
	case "batch":
		parts := make([]string, len(s.recs))
		for i, r := range s.recs {
			parts[i] = r.String()
		}
		return fmt.Sprintf("batch split=%d [%s]", s.split, strings.Join(parts, " "))
	case "put":
		return fmt.Sprintf("put %s", s.rule.doc())
	case "delete":
		return "delete " + s.id
	case "end":
		return fmt.Sprintf("end split=%d", s.split)
	case "restart":
		if s.parallelism > 0 {
			return fmt.Sprintf("restart (savepoint, stop, restore at parallelism %d)", s.parallelism)
		}
		return "restart (savepoint, stop, restore)"
	}
	return s.kind
}

// workload is one case: the pipeline's shape, the initial rules and the
// script.
type workload struct {
	seed        uint64
	splits      int
	parallelism int
	keyGroups   int
	batchSize   int
	bound       int64 // maxOutOfOrderness, ms
	lateness    int64 // allowedLateness, ms
	maxPoints   int   // rules.Options.MaxSignalPoints
	stateTTL    int64 // rules.Options.StateTTL, ms; 0 is the default (a day)
	initial     []*ruleDef
	steps       []step
}

func (w *workload) shape() string {
	return fmt.Sprintf("splits=%d parallelism=%d keyGroups=%d batchSize=%d bound=%dms lateness=%dms maxSignalPoints=%d stateTTL=%dms", w.splits, w.parallelism, w.keyGroups, w.batchSize, w.bound, w.lateness, w.maxPoints, w.ttl())
}

// ttl is the state TTL in force, ms.
func (w *workload) ttl() int64 {
	if w.stateTTL == 0 {
		return rules.DefaultStateTTL.Milliseconds()
	}
	return w.stateTTL
}

func (w *workload) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s\n", w.seed, w.shape())
	for _, r := range w.initial {
		fmt.Fprintf(&b, "  initial %s\n", r.doc())
	}
	for i, s := range w.steps {
		fmt.Fprintf(&b, "  %3d %s\n", i, s)
	}
	return b.String()
}

// gen draws random workloads from a seed.
type gen struct {
	r      *rand.Rand
	keys   []string
	tags   []string
	nulls  bool
	nextID int
	// states per rule id stay the same across versions.
	states map[string][]string
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func generate(seed uint64) *workload { return generateShape(seed, 0, 0) }

// generateShape is generate with the split count and the parallelism
// fixed when they are positive (the random draws stay the same).
func generateShape(seed uint64, splits, parallelism int) *workload {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &gen{r: r, tags: []string{"a", "b", "c"}, states: map[string][]string{}}
	g.nulls = r.IntN(4) == 0
	for i := range 1 + r.IntN(5) {
		g.keys = append(g.keys, fmt.Sprintf("k%d", i))
	}
	w := &workload{
		seed:        seed,
		splits:      1 + r.IntN(4),
		parallelism: 1 + r.IntN(4),
		keyGroups:   pick(r, 1, 2, 7, 128),
		batchSize:   pick(r, 1, 2, 3, 8, 1024),
		bound:       pick(r, int64(0), 300, 1000, 2500),
		lateness:    pick(r, int64(0), 0, 500, 2000),
		maxPoints:   pick(r, 10000, 10000, 10000, 2, 3),
	}
	if splits > 0 {
		w.splits = splits
	}
	if parallelism > 0 {
		w.parallelism = parallelism
	}
	live := map[string]*ruleDef{}
	deleted := map[string]int64{}
	for range 1 + r.IntN(3) {
		rd := g.rule()
		w.initial = append(w.initial, rd)
		live[rd.id] = rd
	}
	cur := make([]int64, w.splits)
	for i := range cur {
		cur[i] = t0 + r.Int64N(2000)
	}
	running := make([]bool, w.splits)
	for i := range running {
		running[i] = true
	}
	nRunning := w.splits
	n := 15 + r.IntN(50)
	for range n {
		switch x := r.IntN(100); {
		case x < 12:
			w.steps = append(w.steps, g.update(live, deleted))
		case x < 15 && nRunning > 1:
			s := g.runningSplit(running)
			running[s] = false
			nRunning--
			w.steps = append(w.steps, step{kind: "end", split: s})
		default:
			s := g.runningSplit(running)
			b := step{kind: "batch", split: s}
			for range 1 + r.IntN(6) {
				cur[s] += pick(r, int64(0), 0, 100, 300, 700, 1500)
				t := cur[s] - r.Int64N(w.bound+1)
				if r.IntN(20) == 0 {
					// Behind the watermark, beyond or within allowed lateness.
					t = cur[s] - w.bound - 1 - r.Int64N(6000)
				}
				b.recs = append(b.recs, g.record(t))
			}
			w.steps = append(w.steps, b)
		}
	}
	if r.IntN(3) == 0 {
		// Stop with a savepoint and restore from it, once or twice,
		// before the input ends.
		for range 1 + r.IntN(2) {
			at := r.IntN(len(w.steps) + 1)
			w.steps = slices.Insert(w.steps, at, step{kind: "restart"})
		}
	}
	for s, ok := range running {
		if ok {
			w.steps = append(w.steps, step{kind: "end", split: s})
		}
	}
	// Ends in random order: each end moves the watermark to the minimum of
	// the splits still open.
	tail := w.steps[len(w.steps)-nRunning:]
	r.Shuffle(len(tail), func(i, j int) { tail[i], tail[j] = tail[j], tail[i] })
	// Drawn last, so the rest of a seed's workload is what it was before
	// state TTLs were drawn. Short TTLs let latest values age and idle
	// keys go within the workload's few seconds of event time.
	w.stateTTL = pick(r, int64(0), 0, 1500, 4000, 10000)
	// Drawn after that: half the restarts restore at another parallelism
	// (rule state moves by key group), possibly above the key groups.
	p := w.parallelism
	for i := range w.steps {
		if w.steps[i].kind == "restart" {
			p = pick(r, p, 1+r.IntN(5))
			w.steps[i].parallelism = p
		}
	}
	return w
}

func (g *gen) runningSplit(running []bool) int {
	for {
		if s := g.r.IntN(len(running)); running[s] {
			return s
		}
	}
}

func (g *gen) record(t int64) rec {
	r := g.r
	x := rec{key: pick(r, g.keys...), tag: pick(r, g.tags...), site: pick(r, "x", "y"), t: t}
	if !g.nulls || r.IntN(8) != 0 {
		v := float64(r.IntN(7))
		x.value = &v
	}
	return x
}

func (g *gen) pred() *pred {
	r := g.r
	switch r.IntN(6) {
	case 0:
		return nil
	case 1:
		return &pred{kind: "tag==", s: pick(r, g.tags...)}
	case 2:
		return &pred{kind: "tag!=", s: pick(r, g.tags...)}
	case 3:
		return &pred{kind: "tagIn", list: []string{"a", pick(r, "b", "c")}}
	case 4:
		return &pred{kind: "value>", c: float64(r.IntN(4))}
	}
	return &pred{kind: "site||tag", s: pick(r, "x", "y"), s2: pick(r, g.tags...)}
}

func (g *gen) signal(name string) signalDef {
	r := g.r
	s := signalDef{name: name, when: g.pred(), value: "value", agg: pick(r, "latest", "latest", "avg", "max", "min", "count", "sum")}
	if s.when != nil && s.when.kind == "value>" && r.IntN(2) == 0 {
		s.when = nil
	}
	if !g.nulls && r.IntN(5) == 0 {
		// Arithmetic runs on the expression VM; a null value would be an
		// evaluation error, so only without nulls.
		s.value = "value * 2"
	}
	if s.agg == "count" && r.IntN(2) == 0 {
		s.value = ""
	}
	if s.agg != "latest" || r.IntN(2) == 0 {
		s.window = pick(r, int64(1000), 2000, 3000, 5000)
	}
	return s
}

func (g *gen) cond(sigs []string, depth int) *cond {
	r := g.r
	atom := func() *cond {
		return &cond{kind: "cmp", sig: pick(r, sigs...), op: pick(r, ">", ">=", "<", "<=", "==", "!="), c: float64(r.IntN(8))}
	}
	sum := func() *cond {
		// Arithmetic runs on the expression VM, combined natively with
		// the rest of the condition.
		return &cond{kind: "sum", sig: pick(r, sigs...), sig2: pick(r, sigs...), op: pick(r, ">", "<", ">="), c: float64(r.IntN(12))}
	}
	if depth > 0 {
		if r.IntN(4) == 0 {
			return sum()
		}
		return atom()
	}
	switch x := r.IntN(10); {
	case x < 5:
		return atom()
	case x < 6:
		return &cond{kind: "not", l: g.cond(sigs, depth+1)}
	case x < 7:
		return &cond{kind: "and", l: g.cond(sigs, depth+1), r: g.cond(sigs, depth+1)}
	case x < 8:
		return &cond{kind: "or", l: g.cond(sigs, depth+1), r: g.cond(sigs, depth+1)}
	case x < 9:
		return sum()
	}
	return atom()
}

func (g *gen) group(name string, sigs, states []string) groupDef {
	r := g.r
	gr := groupDef{name: name, state: pick(r, states[1:]...), weight: r.IntN(3), match: pick(r, "all", "any"), forMs: pick(r, int64(0), 0, 1000, 2000, 3000)}
	for range 1 + r.IntN(2) {
		gr.conds = append(gr.conds, g.cond(sigs, 0))
	}
	if r.IntN(3) == 0 {
		gr.clear = g.cond(sigs, 1)
	}
	return gr
}

func (g *gen) rule() *ruleDef {
	id := fmt.Sprintf("r%d", g.nextID)
	g.nextID++
	return g.ruleWithID(id, 1)
}

func (g *gen) ruleWithID(id string, version int64) *ruleDef {
	r := g.r
	states, ok := g.states[id]
	if !ok {
		states = pick(r, []string{"OK", "ACTIVE", "WARNING", "CRITICAL"}, []string{"OK", "HIGH"})
		g.states[id] = states
	}
	rd := &ruleDef{id: id, version: version, enabled: true, dryRun: r.IntN(8) == 0, sel: g.pred(), key: []string{"key"}, states: states, severity: pick(r, "warning", "critical")}
	if r.IntN(3) == 0 {
		rd.key = []string{"key", "site"}
	}
	if r.IntN(2) == 0 {
		rd.labels = map[string]string{"team": pick(r, "line-7", "ops")}
	}
	var names []string
	for i := range 1 + r.IntN(3) {
		name := fmt.Sprintf("s%d", i)
		names = append(names, name)
		rd.signals = append(rd.signals, g.signal(name))
	}
	for i := range 1 + r.IntN(3) {
		rd.groups = append(rd.groups, g.group(fmt.Sprintf("g%d", i), names, states))
	}
	return rd
}

// mutate derives the next version of a rule, keeping some signals and
// groups unchanged so that their state carries over.
func (g *gen) mutate(old *ruleDef, version int64) *ruleDef {
	r := g.r
	rd := old.clone()
	rd.version = version
	var names []string
	for _, s := range rd.signals {
		names = append(names, s.name)
	}
	for range 1 + r.IntN(2) {
		switch r.IntN(8) {
		case 0:
			rd.dryRun = !rd.dryRun
		case 1:
			rd.enabled = r.IntN(4) != 0
		case 2:
			i := r.IntN(len(rd.signals))
			rd.signals[i] = g.signal(rd.signals[i].name)
		case 3:
			i := r.IntN(len(rd.groups))
			rd.groups[i] = g.group(rd.groups[i].name, names, rd.states)
		case 4:
			i := r.IntN(len(rd.groups))
			rd.groups[i].forMs = pick(r, int64(0), 1000, 2000)
		case 5:
			if len(rd.groups) < 3 {
				name := ""
				for i := 0; name == ""; i++ {
					name = fmt.Sprintf("g%d", i)
					for _, gr := range rd.groups {
						if gr.name == name {
							name = ""
						}
					}
				}
				rd.groups = append(rd.groups, g.group(name, names, rd.states))
			} else {
				rd.groups = rd.groups[1:]
			}
		case 6:
			i := r.IntN(len(rd.groups))
			rd.groups[i].weight = r.IntN(3)
		default:
			rd.enabled = true
		}
	}
	return rd
}

func (g *gen) update(live map[string]*ruleDef, deleted map[string]int64) step {
	r := g.r
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	gone := make([]string, 0, len(deleted))
	for id := range deleted {
		gone = append(gone, id)
	}
	slices.Sort(gone)
	switch x := r.IntN(20); {
	case x < 9 && len(ids) > 0:
		old := live[pick(r, ids...)]
		nr := g.mutate(old, old.version+1+r.Int64N(2))
		live[nr.id] = nr
		return step{kind: "put", rule: nr}
	case x < 11 && len(ids) > 0:
		// Stale: an older version, or the current one with another
		// definition; refused, changes nothing.
		old := live[pick(r, ids...)]
		nr := g.mutate(old, old.version-r.Int64N(old.version))
		return step{kind: "put", rule: nr}
	case x < 12 && len(ids) > 0:
		// A replay of the document in force: accepted, changes nothing.
		return step{kind: "put", rule: live[pick(r, ids...)].clone()}
	case x < 15 && len(ids) > 0:
		id := pick(r, ids...)
		deleted[id] = live[id].version
		delete(live, id)
		return step{kind: "delete", id: id}
	case x < 16:
		return step{kind: "delete", id: "nope"}
	case x < 18 && len(gone) > 0:
		id := pick(r, gone...)
		v := deleted[id] + 1 - r.Int64N(2) // sometimes not above the deleted version
		nr := g.ruleWithID(id, max(1, v))
		if nr.version > deleted[id] {
			delete(deleted, id)
			live[id] = nr
		}
		return step{kind: "put", rule: nr}
	}
	if len(live) >= 5 {
		old := live[pick(r, ids...)]
		nr := g.mutate(old, old.version+1)
		live[nr.id] = nr
		return step{kind: "put", rule: nr}
	}
	nr := g.rule()
	live[nr.id] = nr
	return step{kind: "put", rule: nr}
}
