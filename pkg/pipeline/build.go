package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/promreg"
	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/expression"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/operator/steps"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/rules"
	"github.com/streamd/streamd/pkg/rules/control"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/sink/hold"
	"github.com/streamd/streamd/pkg/window"
)

// Options are what building needs besides the file.
type Options struct {
	Logger   *zap.Logger
	Registry prometheus.Registerer
	// Now is the wall clock; default time.Now.
	Now func() time.Time
}

// Check validates c structurally and semantically (field references,
// expression types, aggregate inputs, every connector setting) without
// opening anything. It runs the code Build runs, up to opening sources,
// sinks and stores, so `streamd validate` and `streamd run` cannot
// disagree about a pipeline file.
func Check(c *Config) Problems {
	_, ps, _ := build(c, Options{}, false)
	return ps
}

// Warnings returns what c allows but should not be left unnoticed (SASL
// credentials sent without TLS), each with its YAML path and line. Build
// logs the same warnings.
func Warnings(c *Config) []Problem {
	_, _, ws := build(c, Options{}, false)
	return ws
}

// The steps a source's records go through are operator steps.
var (
	_ operator.Step = (*steps.Filter)(nil)
	_ operator.Step = (*steps.Map)(nil)
	_ operator.Step = (*steps.FlatMap)(nil)
)

// Build validates c and returns a runnable job with its sources and sinks
// constructed. Problems name the YAML path and line of every mistake.
func Build(c *Config, opts Options) (operator.Job, error) {
	job, ps, ws := build(c, opts, true)
	if len(ps) > 0 {
		return operator.Job{}, ps
	}
	if opts.Logger != nil {
		for _, w := range ws {
			opts.Logger.Warn(w.Msg, zap.String("setting", w.Path), zap.Int("line", w.Line))
		}
	}
	return job, nil
}

type builder struct {
	c        *Config
	opts     Options
	ps       Problems
	warnings []Problem
	open     bool
	// keys are the field names any stage keys by: decoded string fields
	// of these names are bounded by decode.maxKeyBytes.
	keys map[string]bool
	// counters are shared by every decoder of the pipeline.
	empty    *prometheus.CounterVec
	repaired *prometheus.CounterVec
}

func (b *builder) problem(path, format string, args ...any) {
	b.ps = append(b.ps, b.c.Problemf(path, format, args...))
}

func (b *builder) warn(path, format string, args ...any) {
	b.warnings = append(b.warnings, b.c.Problemf(path, format, args...))
}

// connector reports the problems of a connector block at prefix.
func (b *builder) connector(prefix string, err error) {
	b.ps = append(b.ps, connectorProblems(b.c, prefix, err)...)
}

func build(c *Config, opts Options, open bool) (operator.Job, Problems, []Problem) {
	c.ApplyDefaults()
	if ps := c.Validate(); len(ps) > 0 {
		ps.Sort()
		return operator.Job{}, ps, nil
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &builder{c: c, opts: opts, open: open, keys: make(map[string]bool)}
	for _, st := range c.Stages {
		for _, k := range st.KeyBy {
			b.keys[k] = true
		}
	}
	if open {
		f := promreg.With(opts.Registry)
		b.empty = f.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_empty_records_total",
			Help: "Empty messages and blank lines read, by source; skipped, or dead-lettered with reason empty_record under decode.emptyRecords: deadLetter.",
		}, []string{"source"})
		b.repaired = f.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_repaired_records_total",
			Help: "Records kept after repairing their content, by source and reason (invalid_utf8: invalid bytes replaced with U+FFFD under decode.invalidUTF8: replace).",
		}, []string{"source", "reason"})
	}
	job := operator.Job{
		Name:         c.Name,
		Parallelism:  c.Parallelism,
		KeyGroups:    c.KeyGroups,
		BatchSize:    c.BatchSize,
		IdleAdvance:  c.Time.IdleAdvance.D(),
		FailingGrace: c.Health.ReadyGrace.D(),
		StallTimeout: c.Health.StallTimeout.D(),
		Now:          opts.Now,
	}
	schemas := make(map[string]*record.Schema)
	for i := range c.Sources {
		spec, schema := b.source(i)
		if schema == nil {
			continue
		}
		schemas[spec.Name] = schema
		job.Sources = append(job.Sources, spec)
	}
	prev := ""
	for i := range c.Stages {
		sc := &c.Stages[i]
		path := fmt.Sprintf("stages[%d]", i)
		input := sc.Input
		if input == "" {
			input = prev
			if input == "" {
				if len(c.Sources) != 1 {
					b.problem(path+".input", "the first stage must name its input when there are %d sources", len(c.Sources))
					break
				}
				input = c.Sources[0].Name
			}
		}
		prev = sc.Name
		in := schemas[input]
		if in == nil {
			continue // the input already has a problem
		}
		spec, out := b.stage(path, sc, input, in, job.Stages)
		if out == nil {
			continue
		}
		schemas[sc.Name] = out
		job.Stages = append(job.Stages, spec)
	}
	for i := range c.Sinks {
		sk := c.Sinks[i]
		path := fmt.Sprintf("sinks[%d]", i)
		var schema *record.Schema
		switch {
		case sk.Input == operator.StreamDeadLetters:
			schema = operator.DeadLetterSchema
		case sk.Input == operator.StreamAlerts:
			schema = operator.AlertSchema
		case sk.Input == operator.StreamLate || strings.HasSuffix(sk.Input, "."+operator.StreamLate):
		default:
			schema = schemas[sk.Input]
			if schema == nil {
				continue
			}
		}
		s := b.sink(path, sk, schema)
		switch sk.Delivery {
		case "", deliveryAtLeastOnce:
		case deliveryExactlyOnce:
			if !c.Checkpoints() {
				b.problem(path+".delivery", "exactlyOnce needs checkpoints (they are disabled): rows are released when their checkpoint completes")
			} else if k := c.kinds().Sink(sk.Type); k != nil && !k.Transactional && s != nil {
				s = hold.NewWith(s, hold.Config{Name: sk.Name, MaxHeldBytes: int64(sk.MaxHeldBytes)}, b.opts.Registry)
			}
		default:
			b.problem(path+".delivery", "unknown delivery %q (want atLeastOnce or exactlyOnce)", sk.Delivery)
		}
		if s != nil {
			job.Sinks = append(job.Sinks, operator.SinkSpec{Name: sk.Name, Input: sk.Input, Sink: s})
		}
	}
	if cc := c.Checkpoint; cc.enabled() {
		job.Checkpoint = b.checkpoint(cc)
	}
	b.deliveryProblems()
	b.ps.Sort()
	slices.SortStableFunc(b.warnings, func(x, y Problem) int { return x.Line - y.Line })
	return job, b.ps, b.warnings
}

func (b *builder) checkpoint(cc *CheckpointConfig) *operator.CheckpointConfig {
	if cc.Dir == "" {
		b.problem("checkpoint.dir", "required: the directory checkpoints are written to")
		return nil
	}
	if cc.Interval < 0 || cc.Timeout < 0 || cc.Retain < 0 {
		b.problem("checkpoint", "interval, timeout and retain must not be negative")
		return nil
	}
	out := &operator.CheckpointConfig{
		Prefix: cc.Prefix, Interval: cc.Interval.D(), Timeout: cc.Timeout.D(), Retain: cc.Retain,
		SavepointOnStop: cc.SavepointOnStop == nil || *cc.SavepointOnStop,
	}
	if !b.open {
		return out
	}
	if strings.HasPrefix(cc.Dir, "s3://") {
		bucket, prefix, err := s3store.ParseURL(cc.Dir)
		if err != nil {
			b.problem("checkpoint.dir", "%v", err)
			return nil
		}
		scfg := s3store.DefaultConfig()
		if cc.S3 != nil {
			scfg = *cc.S3
		}
		scfg.Bucket, scfg.Prefix = bucket, prefix
		if scfg.Name == "" {
			scfg.Name = "checkpoints"
		}
		st, err := s3store.New(scfg, b.opts.Logger, b.opts.Registry)
		if err != nil {
			b.problem("checkpoint", "%v", err)
			return nil
		}
		out.Store = st
		return out
	}
	st, err := local.New(cc.Dir)
	if err != nil {
		b.problem("checkpoint.dir", "%v", err)
		return nil
	}
	out.Store = st
	return out
}

// decodeField maps a validated field declaration, nested members
// included, to the decoder's.
func decodeField(f FieldConfig) decode.Field {
	t, _ := record.ParseType(f.Type)
	raw := f.Type == fieldTypeJSON
	if raw {
		t = record.TypeString
	}
	if nt, ok := nestedTypes[f.Type]; ok {
		t = nt
	}
	tf, _ := decode.ParseTimeFormat(f.Format)
	out := decode.Field{Name: f.Name, Type: t, TimeFormat: tf, Required: f.Required, Raw: raw}
	for _, m := range f.Fields {
		out.Fields = append(out.Fields, decodeField(m))
	}
	for _, e := range []*FieldConfig{f.Items, f.Values} {
		if e != nil {
			de := decodeField(*e)
			out.Elem = &de
		}
	}
	return out
}

func (b *builder) source(i int) (operator.SourceSpec, *record.Schema) {
	sc := b.c.Sources[i]
	path := fmt.Sprintf("sources[%d]", i)
	dcfg := decode.Config{EventTimeField: sc.EventTime.Field, MaxFuture: sc.EventTime.MaxFuture.D(), Now: b.opts.Now,
		MaxRecordBytes: int(sc.Decode.MaxRecordBytes), MaxKeyBytes: int(sc.Decode.MaxKeyBytes)}
	if sc.EventTime.MaxFuture < 0 {
		dcfg.MaxFuture = 0
	}
	if sc.Decode.InvalidUTF8 == invalidUTF8Replace {
		dcfg.InvalidUTF8 = decode.UTF8Replace
	}
	if sc.Decode.EmptyRecords == emptyDeadLetter {
		dcfg.Empty = decode.EmptyDeadLetter
	}
	if b.empty != nil {
		dcfg.Counters = decode.Counters{
			Empty:    b.empty.WithLabelValues(sc.Name),
			Repaired: b.repaired.WithLabelValues(sc.Name, decode.ReasonInvalidUTF8),
		}
	}
	dcfg.ExtrasField = sc.Decode.Extras
	for _, f := range sc.Decode.Fields {
		p := f.Path
		if p == "" {
			p = f.Name
		}
		df := decodeField(f)
		df.Path, df.Key = strings.Split(p, "."), b.keys[f.Name]
		dcfg.Fields = append(dcfg.Fields, df)
	}
	kind := b.c.kinds().Source(sc.Type)
	if kind == nil {
		b.problem(path+".type", "source type %q is not supported", sc.Type)
		return operator.SourceSpec{}, nil
	}
	sb := &SourceBuild{
		Path: path, Source: &sc, Block: kind.blockOf(&sc), Config: b.c, Checkpoints: b.c.Checkpoints(),
		Logger: b.opts.Logger, Registry: b.opts.Registry, Now: b.opts.Now, Decode: dcfg, b: b,
	}
	if kind.Prepare != nil {
		n := len(b.ps)
		if err := kind.Prepare(sb); err != nil {
			b.problem(subPath(path, kind.Block), "%v", err)
		}
		if len(b.ps) > n {
			return operator.SourceSpec{}, nil
		}
	}
	newDecoder := sb.NewDecoder
	if newDecoder == nil {
		newDecoder = jsonDecoder(dcfg)
	}
	probe, err := newDecoder()
	if err != nil {
		b.problem(path+".decode", "%v", err)
		return operator.SourceSpec{}, nil
	}
	schema := probe.Schema()
	type stepMaker func(in *record.Schema) (operator.Step, error)
	var makers []stepMaker
	for j, st := range b.c.Steps {
		spath := fmt.Sprintf("steps[%d]", j)
		var mk stepMaker
		switch {
		case st.Filter != "":
			src := st.Filter
			mk = func(in *record.Schema) (operator.Step, error) { return steps.NewFilter(src, in) }
			spath += ".filter"
		case st.Map != nil:
			var fields []steps.MapField
			for k, f := range st.Map.Fields {
				t, err := record.ParseType(f.Type)
				if err != nil {
					b.problem(fmt.Sprintf("%s.map.fields[%d].type", spath, k), "%v", err)
					return operator.SourceSpec{}, nil
				}
				fields = append(fields, steps.MapField{Name: f.Name, Expr: f.Expr, Type: t})
			}
			keep := st.Map.Keep
			mk = func(in *record.Schema) (operator.Step, error) { return steps.NewMap(fields, keep, in) }
			spath += ".map"
		case st.FlatMap != nil:
			fm := *st.FlatMap
			t, err := record.ParseType(fm.Type)
			if err != nil {
				b.problem(spath+".flatMap.type", "%v", err)
				return operator.SourceSpec{}, nil
			}
			mk = func(in *record.Schema) (operator.Step, error) { return steps.NewFlatMap(fm.Expr, fm.As, t, in) }
			spath += ".flatMap"
		default:
			continue
		}
		s, err := mk(schema)
		if err != nil {
			b.problem(spath, "%v (fields: %s)", err, schema)
			return operator.SourceSpec{}, nil
		}
		schema = s.Schema()
		makers = append(makers, mk)
	}
	wcfg := operator.WatermarkConfig{
		MaxOutOfOrderness: sc.Watermark.MaxOutOfOrderness.D().Milliseconds(),
		IdleTimeout:       sc.Watermark.IdleTimeout.D(),
		SenderField:       -1,
		SenderIdleTimeout: sc.Watermark.SenderIdleTimeout.D(),
		SenderTTL:         sc.Watermark.SenderTTL.D().Milliseconds(),
		MaxSenders:        sc.Watermark.MaxSenders,
	}
	if sc.Watermark.Strategy == "perSender" {
		idx, ok := schema.Index(sc.Watermark.SenderField)
		if !ok {
			b.problem(path+".watermark.senderField", "field %q is not in the records after the steps (%s)", sc.Watermark.SenderField, schema)
			return operator.SourceSpec{}, nil
		}
		if schema.Field(idx).Type != record.TypeString {
			b.problem(path+".watermark.senderField", "field %q must be a string, it is %s", sc.Watermark.SenderField, schema.Field(idx).Type)
			return operator.SourceSpec{}, nil
		}
		wcfg.SenderField = idx
	}
	spec := operator.SourceSpec{
		Name:       sc.Name,
		Watermark:  wcfg,
		NewDecoder: newDecoder,
		NewSteps: func() ([]operator.Step, error) {
			in := probe.Schema()
			chain := make([]operator.Step, 0, len(makers))
			for _, mk := range makers {
				s, err := mk(in)
				if err != nil {
					return nil, err
				}
				chain = append(chain, s)
				in = s.Schema()
			}
			return chain, nil
		},
	}
	if b.open {
		if kind.Open == nil {
			b.problem(path+".type", "source type %q cannot be opened", sc.Type)
			return operator.SourceSpec{}, nil
		}
		src, err := kind.Open(sb)
		if err != nil {
			b.problem(path, "%v", err)
			return operator.SourceSpec{}, nil
		}
		spec.Source = src
	}
	return spec, schema
}

func (b *builder) stage(path string, sc *StageConfig, input string, in *record.Schema, earlier []operator.StageSpec) (operator.StageSpec, *record.Schema) {
	if sc.Rules != nil {
		return b.rulesStage(path, sc, input, in)
	}
	kind, err := window.ParseKind(sc.Window.Type)
	if err != nil {
		b.problem(path+".window.type", "%v", err)
		return operator.StageSpec{}, nil
	}
	emit, err := window.ParseEmit(sc.Emit)
	if err != nil {
		b.problem(path+".emit", "%v", err)
		return operator.StageSpec{}, nil
	}
	spec := operator.StageSpec{
		Name:            sc.Name,
		Input:           input,
		KeyBy:           sc.KeyBy,
		Assigner:        window.Assigner{Kind: kind, Size: sc.Window.Size.D().Milliseconds(), Slide: sc.Window.Slide.D().Milliseconds(), Gap: sc.Window.Gap.D().Milliseconds(), Offset: sc.Window.Offset.D().Milliseconds()},
		AllowedLateness: sc.AllowedLateness.D(),
		Emit:            emit,
		Aggregates:      sc.Aggregates,
		NewAggregate:    window.NewAggregate,
		StateTTL:        sc.StateTTL.D(),
		StateBudget:     int64(sc.StateBudget),
	}
	// A stage reading the updates of an earlier window stage consumes them
	// as a changelog: each row replaces or withdraws an earlier one.
	var clog *window.Changelog
	for _, up := range earlier {
		if up.Name != input || up.Rules != nil {
			continue
		}
		updates := up.Emit == window.EmitUpdates && up.AllowedLateness > 0
		if updates && kind == window.Session {
			b.problem(path+".window.type", "a session stage cannot read the updates of stage %q (allowedLateness with emit: updates); set emit: final on %q", input, input)
			return operator.StageSpec{}, nil
		}
		if clog, err = window.StageInput(in, len(up.KeyBy), updates, sc.Aggregates); err != nil {
			b.problem(path+".input", "%v", err)
			return operator.StageSpec{}, nil
		}
	}
	if kind == window.Tumbling {
		spec.Assigner.Slide = spec.Assigner.Size
	}
	ok := true
	for j, k := range sc.KeyBy {
		if _, found := in.Index(k); !found {
			b.problem(fmt.Sprintf("%s.keyBy[%d]", path, j), "field %q is not in %q (fields: %s)", k, input, in)
			ok = false
		}
	}
	var aggs []window.Aggregate
	for j, a := range sc.Aggregates {
		agg, err := window.NewAggregate(a, in)
		if err != nil {
			b.problem(fmt.Sprintf("%s.aggregates[%d]", path, j), "%v", err)
			ok = false
			continue
		}
		aggs = append(aggs, agg)
	}
	if !ok {
		return operator.StageSpec{}, nil
	}
	op, err := window.NewOperator(window.Config{Assigner: spec.Assigner, AllowedLateness: spec.AllowedLateness.Milliseconds(), Emit: emit, Input: in, KeyFields: sc.KeyBy, Aggregates: aggs, Changelog: clog})
	if err != nil {
		b.problem(path, "%v", err)
		return operator.StageSpec{}, nil
	}
	out := op.ResultSchema()
	for j, a := range sc.Alerts {
		when := a.When
		cond := func(s *record.Schema) (func(record.Row) (bool, error), error) {
			e, err := expression.Compile(when, s, record.TypeBool)
			if err != nil {
				return nil, err
			}
			return e.EvalBool, nil
		}
		if _, err := cond(out); err != nil {
			b.problem(fmt.Sprintf("%s.alerts[%d].when", path, j), "%v (fields: %s)", err, out)
			continue
		}
		sev := a.Severity
		if sev == "" {
			sev = "warning"
		}
		spec.Alerts = append(spec.Alerts, operator.AlertSpec{Name: a.Name, Severity: sev, NewCondition: cond})
	}
	return spec, out
}

// rulesStage builds a live rule stage: rules from files are loaded (and
// validated against the stage's input) now; files and a control topic are
// watched while running.
func (b *builder) rulesStage(path string, sc *StageConfig, input string, in *record.Schema) (operator.StageSpec, *record.Schema) {
	rc := sc.Rules
	for j, k := range sc.KeyBy {
		if _, found := in.Index(k); !found {
			b.problem(fmt.Sprintf("%s.keyBy[%d]", path, j), "field %q is not in %q (fields: %s)", k, input, in)
			return operator.StageSpec{}, nil
		}
	}
	opts := rules.DefaultOptions()
	if rc.QuarantineAfter > 0 {
		opts.QuarantineAfter = rc.QuarantineAfter
	}
	if rc.MaxSignalPoints > 0 {
		opts.MaxSignalPoints = rc.MaxSignalPoints
	}
	spec := &operator.RulesSpec{Options: opts}
	if len(rc.Files) > 0 {
		files := &control.Files{Paths: rc.Files, Poll: rc.PollInterval.D(), Log: b.opts.Logger, MaxBytes: int64(rc.MaxRuleBytes)}
		initial, err := files.Load()
		if err != nil {
			b.problem(path+".rules.files", "%v", err)
			return operator.StageSpec{}, nil
		}
		for _, r := range initial {
			if err := r.Validate(in); err != nil {
				b.problem(path+".rules.files", "rule %q: %v", r.ID, err)
				return operator.StageSpec{}, nil
			}
			if !keyCovers(r.Key, sc.KeyBy) {
				b.problem(path+".rules.files", "rule %q keys by %v, which must include the stage's keyBy %v so each key's records meet on one subtask", r.ID, r.Key, sc.KeyBy)
				return operator.StageSpec{}, nil
			}
		}
		spec.Initial = initial
		spec.Control = append(spec.Control, files)
	}
	if k := rc.Kafka; k != nil {
		if len(k.Brokers) == 0 || k.Topic == "" {
			b.problem(path+".rules.kafka", "brokers and topic are required")
			return operator.StageSpec{}, nil
		}
		spec.Control = append(spec.Control, &control.Kafka{Brokers: k.Brokers, Topic: k.Topic, Log: b.opts.Logger, MaxBytes: int64(rc.MaxRuleBytes)})
	}
	return operator.StageSpec{Name: sc.Name, Input: input, KeyBy: sc.KeyBy, AllowedLateness: sc.AllowedLateness.D(), Rules: spec,
		StateTTL: sc.StateTTL.D(), StateBudget: int64(sc.StateBudget)}, operator.RuleAlertSchema
}

// keyCovers reports whether a rule key includes every stage key field.
func keyCovers(ruleKey, stageKey []string) bool {
	for _, k := range stageKey {
		found := false
		for _, r := range ruleKey {
			found = found || r == k
		}
		if !found {
			return false
		}
	}
	return true
}

// sink checks the sink at path against the schema of its input through
// its kind's Build and, when opening, constructs it.
func (b *builder) sink(path string, sk SinkConfig, schema *record.Schema) sink.Sink {
	kind := b.c.kinds().Sink(sk.Type)
	if kind == nil {
		b.problem(path+".type", "sink type %q is not supported", sk.Type)
		return nil
	}
	s, err := kind.Build(&SinkBuild{
		Path: path, Sink: &sk, Block: kind.blockOf(&sk), Schema: schema, Config: b.c, Open: b.open,
		Checkpoints: b.c.Checkpoints(), Logger: b.opts.Logger, Registry: b.opts.Registry, Now: b.opts.Now, b: b,
	})
	if err != nil {
		b.problem(path, "%v", err)
		return nil
	}
	if !b.open {
		return nil
	}
	return s
}
