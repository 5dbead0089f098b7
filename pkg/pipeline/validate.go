package pipeline

import (
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"

	"github.com/streamd/streamd/internal/fielderr"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/source/nexmark"
	"github.com/streamd/streamd/pkg/window"
)

// Defaults applied by ApplyDefaults. A zero value in the file means "use
// the default", so these are also what Validate assumes for zero values.
const (
	DefaultKeyGroups          = 128
	DefaultBatchSize          = 1024
	DefaultHTTPListen         = "127.0.0.1:9249"
	DefaultMaxRuleBytes       = ByteSize(1 << 20)
	DefaultInvalidUTF8        = invalidUTF8DeadLetter
	DefaultEmptyRecords       = emptySkip
	DefaultMaxRecordBytes     = ByteSize(1 << 20)
	DefaultMaxKeyBytes        = ByteSize(4 << 10)
	DefaultDecodeFormat       = "json"
	DefaultTimestampFormat    = "auto"
	DefaultWatermarkStrategy  = "bounded"
	DefaultMaxFuture          = Duration(24 * time.Hour)
	DefaultParquetCompression = "zstd"
	DefaultRollSize           = ByteSize(128 << 20)
	DefaultRollAge            = Duration(5 * time.Minute)
	DefaultGeneratorSplits    = 1
	DefaultGeneratorMachines  = 10
	DefaultGeneratorTags      = 4
	DefaultGeneratorLateBy    = Duration(10 * time.Minute)
	DefaultFilePollInterval   = Duration(200 * time.Millisecond)
	// DefaultCheckpointDir and DefaultCheckpointInterval are the checkpoints
	// of a pipeline file without a checkpoint block: a local directory
	// (relative to the working directory; checkpoints of pipeline <name>
	// go under pipelines/<name>) and an interval short enough that a
	// restart replays little.
	DefaultCheckpointDir      = "checkpoints"
	DefaultCheckpointInterval = Duration(10 * time.Second)
)

// MaxKeyGroups bounds keyGroups: key groups are the unit of state and
// rescaling, and each costs a little memory and a snapshot entry.
const MaxKeyGroups = 32768

const (
	builtinStreamAlerts        = "alerts"
	builtinStreamDeadLetters   = "deadletters"
	builtinStreamLate          = "late"
	invalidUTF8DeadLetter      = "deadLetter"
	invalidUTF8Replace         = "replace"
	emptySkip                  = "skip"
	emptyDeadLetter            = "deadLetter"
	watermarkStrategyBounded   = "bounded"
	watermarkStrategyPerSender = "perSender"
	sourceTypeGenerator        = "generator"
	sourceTypeNexmark          = "nexmark"
	sourceTypeFile             = "file"
	sourceTypeStdin            = "stdin"
	sourceTypeKafka            = "kafka"
	sourceTypeKinesis          = "kinesis"
	sinkTypeKafka              = "kafka"
	sinkTypeKinesis            = "kinesis"
	sinkTypeWebhook            = "webhook"
	sinkTypeParquet            = "parquet"
	sinkTypeStdout             = "stdout"
	sinkTypeFile               = "file"
	sinkTypeDiscard            = "discard"
	windowTypeTumbling         = "tumbling"
	windowTypeSliding          = "sliding"
	windowTypeSession          = "session"

	maxPartitionTemplateLength = 1024
	// maxExprMessage keeps an expression parser message on one short line.
	maxExprMessage = 200
)

// builtinStreams are the streams every pipeline has besides its sources and
// stages: alerts raised by stages, records that could not be decoded, and
// records that arrived after their windows were closed.
var builtinStreams = []string{builtinStreamAlerts, builtinStreamDeadLetters, builtinStreamLate}

var (
	timestampFormats  = []string{"", "auto", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "rfc3339"}
	compressions      = []string{"", "zstd", "snappy", "gzip", "none"}
	aggregateFns      = []string{"count", "sum", "min", "max", "avg", "first", "last", "count_distinct", "quantile", "max_by", "min_by"}
	windowTypes       = []string{windowTypeTumbling, windowTypeSliding, windowTypeSession}
	watermarkStrategy = []string{watermarkStrategyBounded, watermarkStrategyPerSender}
	invalidUTF8s      = []string{invalidUTF8DeadLetter, invalidUTF8Replace}
	emptyRecords      = []string{emptySkip, emptyDeadLetter}
	fieldTypes        = []string{"string", "int", "float", "bool", "timestamp", fieldTypeJSON, "struct", "list", "map"}
)

// ApplyDefaults fills every zero value that has a default. It is
// idempotent, and Validate gives the same answer before and after it.
func (c *Config) ApplyDefaults() {
	if c.Checkpoint == nil && !c.readsStdin() {
		// Without checkpoints a crash loses what was read since offsets
		// were last committed and repeats what was published since: every
		// pipeline checkpoints unless it says otherwise.
		c.Checkpoint = &CheckpointConfig{Interval: DefaultCheckpointInterval}
		c.defaultCheckpoint = true
	}
	if cc := c.Checkpoint; cc.enabled() {
		setDefault(&cc.Dir, DefaultCheckpointDir)
	}
	if c.KeyGroups == 0 {
		c.KeyGroups = DefaultKeyGroups
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultHTTPListen
	}
	setDefault(&c.HTTP.MaxRuleBytes, DefaultMaxRuleBytes)
	for i := range c.Stages {
		if r := c.Stages[i].Rules; r != nil {
			setDefault(&r.MaxRuleBytes, DefaultMaxRuleBytes)
		}
	}
	reg := c.kinds()
	for i := range c.Sources {
		s := &c.Sources[i]
		for _, k := range reg.sources {
			// A kind's defaults apply to its block wherever it is, and may
			// supply the block of a source of its type that has none.
			if b := k.blockOf(s); k.Defaults != nil && k.Block != "" && (b != nil || s.Type == k.Name) {
				if b = k.Defaults(b); b != nil {
					k.storeBlock(s, b)
				}
			}
		}
		setDefault(&s.Decode.Format, DefaultDecodeFormat)
		setDefault(&s.Decode.InvalidUTF8, DefaultInvalidUTF8)
		setDefault(&s.Decode.EmptyRecords, DefaultEmptyRecords)
		setDefault(&s.Decode.MaxRecordBytes, DefaultMaxRecordBytes)
		setDefault(&s.Decode.MaxKeyBytes, DefaultMaxKeyBytes)
		for j := range s.Decode.Fields {
			f := &s.Decode.Fields[j]
			setDefault(&f.Path, f.Name)
			if f.Type == "timestamp" {
				setDefault(&f.Format, DefaultTimestampFormat)
			}
		}
		setDefault(&s.EventTime.MaxFuture, DefaultMaxFuture)
		setDefault(&s.Watermark.Strategy, DefaultWatermarkStrategy)
	}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		for _, k := range reg.sinks {
			if b := k.blockOf(s); k.Defaults != nil && k.Block != "" && (b != nil || s.Type == k.Name) {
				if b = k.Defaults(b); b != nil {
					k.storeBlock(s, b)
				}
			}
		}
	}
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate checks the structure of the pipeline: required fields, known
// enumerations, references between sources, stages and sinks, and the
// syntax of expressions. It reports every problem, sorted by line, each
// with its YAML path. Checks that need the record schema (does a keyBy
// field exist after the map steps?) belong to the builder, which reports
// them through Problemf.
func (c *Config) Validate() Problems {
	v := &validator{c: c, names: make(map[string]string)}
	v.top()
	for i := range c.Sources {
		v.source(i, &c.Sources[i])
	}
	for i := range c.Steps {
		v.step(i, &c.Steps[i])
	}
	for i := range c.Stages {
		v.stage(i, &c.Stages[i])
	}
	for i := range c.Sinks {
		v.sink(i, &c.Sinks[i])
	}
	v.ps.Sort()
	return v.ps
}

// validator collects problems for one Validate call.
type validator struct {
	c  *Config
	ps Problems
	// names maps every source, stage and sink name to the path that
	// declared it first: names share one namespace.
	names map[string]string
}

func (v *validator) add(path, format string, args ...any) {
	v.ps = append(v.ps, v.c.Problemf(path, format, args...))
}

func (v *validator) top() {
	c := v.c
	if strings.TrimSpace(c.Name) == "" {
		v.add("name", "required")
	}
	if c.Parallelism < 0 {
		v.add("parallelism", "must be >= 0 (0 means one subtask per core)")
	}
	keyGroups := c.KeyGroups
	if keyGroups == 0 {
		keyGroups = DefaultKeyGroups
	}
	switch {
	case keyGroups < 1 || keyGroups > MaxKeyGroups:
		v.add("keyGroups", "must be in [1, %d], got %d", MaxKeyGroups, c.KeyGroups)
	case c.Parallelism > keyGroups:
		// A subtask owns whole key groups; extra subtasks would idle.
		v.add("parallelism", "must be <= keyGroups (%d), got %d", keyGroups, c.Parallelism)
	}
	if c.BatchSize < 0 {
		v.add("batchSize", "must be > 0, got %d", c.BatchSize)
	}
	v.http(&c.HTTP)
	v.nonNegative("time.idleAdvance", c.Time.IdleAdvance)
	v.nonNegative("health.readyGrace", c.Health.ReadyGrace)
	v.nonNegative("health.stallTimeout", c.Health.StallTimeout)
	if len(c.Sources) == 0 {
		v.add("sources", "at least one source is required")
	}
	if len(c.Sinks) == 0 {
		v.add("sinks", "at least one sink is required")
	}
}

// http checks the admin endpoint's settings.
func (v *validator) http(h *HTTPConfig) {
	if l := h.Listen; l != "" && l != "off" {
		if _, _, err := net.SplitHostPort(l); err != nil {
			v.add("http.listen", "invalid address %q (want host:port, :port or off)", l)
		}
	}
	if l := h.ProbeListen; l != "" {
		switch _, _, err := net.SplitHostPort(l); {
		case err != nil:
			v.add("http.probeListen", "invalid address %q (want host:port or :port)", l)
		case l == h.Listen:
			v.add("http.probeListen", "must differ from http.listen")
		}
	}
	if h.MaxRuleBytes < 0 {
		v.add("http.maxRuleBytes", "must be >= 0")
	}
	if t := h.TLS; t != nil {
		if t.CertFile == "" {
			v.add("http.tls.certFile", "required with http.tls (the server certificate)")
		}
		if t.KeyFile == "" {
			v.add("http.tls.keyFile", "required with http.tls (the server key)")
		}
	}
	if len(h.Auth.WriteClients) > 0 && (h.TLS == nil || h.TLS.ClientCAFile == "") {
		v.add("http.auth.writeClients", "needs client certificates: set http.tls.clientCAFile")
	}
	if h.Auth.TokenFile != "" && h.Auth.TokenFile == h.Auth.ReadTokenFile {
		v.add("http.auth.readTokenFile", "must differ from tokenFile: a read-only token that can also write is not read-only")
	}
}

// block checks that a component's block (path.<block>) is present exactly
// when the component's type is want.
func (v *validator) block(path, typ, want, block string, present bool) {
	switch {
	case typ == want && !present:
		v.add(path+"."+block, "required for type %s", want)
	case typ != want && present && typ != "":
		v.add(path+"."+block, "only applies to type %s", want)
	}
}

// declare registers a stream or sink name and reports duplicates.
func (v *validator) declare(path, name string, stream bool) {
	if strings.TrimSpace(name) == "" {
		v.add(path+".name", "required")
		return
	}
	if stream {
		for _, b := range builtinStreams {
			if name == b {
				v.add(path+".name", "%q is reserved for a built-in stream (%s)", name, strings.Join(builtinStreams, ", "))
				return
			}
		}
	}
	// Streams (sources and stages) and sinks are separate namespaces: a
	// sink may be named after the stream it writes.
	key := name
	if !stream {
		key = "sink\x00" + name
	}
	if first, dup := v.names[key]; dup {
		v.add(path+".name", "name %q already used by %s", name, first)
		return
	}
	v.names[key] = path
}

func (v *validator) source(i int, s *SourceConfig) {
	path := fmt.Sprintf("sources[%d]", i)
	v.declare(path, s.Name, true)
	reg := v.c.kinds()
	switch types := reg.SourceTypes(); {
	case s.Type == "":
		v.add(path+".type", "required (one of %s)", strings.Join(types, ", "))
	case reg.Source(s.Type) == nil:
		v.add(path+".type", "%s", fielderr.Unknown("source type", s.Type, types))
	}
	// Each type takes exactly its own block, so a block left over from
	// another type is not silently ignored.
	for _, k := range reg.sources {
		if k.Block != "" {
			v.block(path, s.Type, k.Name, k.Block, k.blockOf(s) != nil)
		}
	}
	if reg != defaultRegistry() {
		for _, k := range defaultRegistry().sources {
			if k.Block != "" && reg.Source(k.Name) == nil && k.blockOf(s) != nil {
				v.add(path+"."+k.Block, "only applies to type %s, which is not registered", k.Name)
			}
		}
	}
	for _, k := range reg.sources {
		if b := k.blockOf(s); b != nil && k.Validate != nil {
			k.Validate(&BlockCheck{v: v, path: path + "." + k.Block}, b)
		}
	}

	fieldTypes := v.fields(path+".decode", &s.Decode)

	if f := s.EventTime.Field; f != "" {
		switch t, ok := fieldTypes[f]; {
		case !ok:
			v.add(path+".eventTime.field", "field %q is not declared in decode.fields", f)
		case t != record.TypeTimestamp:
			v.add(path+".eventTime.field", "field %q has type %s; event time needs a timestamp field (declare it as timestamp with a format such as epoch_ms)", f, t)
		}
	}
	// maxFuture may be negative: that disables the check.

	w := &s.Watermark
	wp := path + ".watermark"
	switch w.Strategy {
	case "", watermarkStrategyBounded:
		if w.SenderField != "" {
			v.add(wp+".senderField", "only applies to the perSender strategy")
		}
		if w.SenderTTL != 0 || w.MaxSenders != 0 {
			v.add(wp, "senderTTL and maxSenders only apply to the perSender strategy")
		}
	case watermarkStrategyPerSender:
		switch _, ok := fieldTypes[w.SenderField]; {
		case w.SenderField == "":
			v.add(wp+".senderField", "required for the perSender strategy")
		case !ok:
			v.add(wp+".senderField", "field %q is not declared in decode.fields", w.SenderField)
		}
	default:
		v.add(wp+".strategy", "%s", fielderr.Unknown("strategy", w.Strategy, watermarkStrategy))
	}
	v.nonNegative(wp+".maxOutOfOrderness", w.MaxOutOfOrderness)
	v.nonNegative(wp+".idleTimeout", w.IdleTimeout)
	v.nonNegative(wp+".senderIdleTimeout", w.SenderIdleTimeout)
	if w.SenderTTL != 0 {
		v.positiveMillis(wp+".senderTTL", w.SenderTTL)
	}
	if w.MaxSenders < 0 {
		v.add(wp+".maxSenders", "must be >= 0 (0 means the default, 100000)")
	}
}

func (v *validator) generator(path string, g *GeneratorConfig) {
	if !(g.Rate >= 0) || math.IsInf(g.Rate, 0) {
		v.add(path+".rate", "must be a finite number >= 0 (0 means as fast as possible)")
	}
	if g.Count < 0 {
		v.add(path+".count", "must be >= 0 (0 means run forever)")
	}
	for _, f := range []struct {
		name string
		val  int
	}{{"splits", g.Splits}, {"machines", g.Machines}, {"tags", g.Tags}} {
		if f.val < 0 {
			v.add(path+"."+f.name, "must be > 0, got %d", f.val)
		}
	}
	if g.StartTime != "" {
		if _, err := time.Parse(time.RFC3339, g.StartTime); err != nil {
			v.add(path+".startTime", "invalid RFC 3339 time %q (want e.g. 2026-01-02T15:04:05Z)", g.StartTime)
		}
	}
	v.nonNegative(path+".step", g.Step)
	v.nonNegative(path+".outOfOrderness", g.OutOfOrderness)
	v.nonNegative(path+".lateBy", g.LateBy)
	v.fraction(path+".lateFraction", g.LateFraction)
	v.fraction(path+".malformedFraction", g.MalformedFraction)
}

func (v *validator) nexmark(path string, n *NexmarkConfig) {
	if n.Events < 0 {
		v.add(path+".events", "must be >= 0 (0 means run forever)")
	}
	if n.Splits < 0 {
		v.add(path+".splits", "must be > 0 (default 1), got %d", n.Splits)
	}
	if n.Events > 0 && int64(n.Splits) > n.Events {
		v.add(path+".splits", "%d splits for %d events would leave a split empty", n.Splits, n.Events)
	}
	if !(n.Rate >= 0) || math.IsInf(n.Rate, 0) {
		v.add(path+".rate", "must be a finite number >= 0 (events per second of event time; 0 means the default 10000)")
	}
	if !(n.EmitRate >= 0) || math.IsInf(n.EmitRate, 0) {
		v.add(path+".emitRate", "must be a finite number >= 0 (0 means as fast as possible)")
	}
	if n.BaseTime != "" {
		t, err := time.Parse(time.RFC3339, n.BaseTime)
		if err != nil {
			v.add(path+".baseTime", "invalid RFC 3339 time %q (want e.g. 2015-07-15T00:00:00Z)", n.BaseTime)
		} else if err := (&nexmark.Config{BaseTime: t}).Validate(); err != nil {
			v.add(path+".baseTime", "%v", err)
		}
	}
	if n.Format != "" && n.Format != "json" && n.Format != "native" {
		v.add(path+".format", "%s", fielderr.Unknown("format", n.Format, []string{"json", "native"}))
	}
}

// fields checks declared fields and returns their types by name.
func (v *validator) fields(path string, d *DecodeConfig) map[string]record.Type {
	if d.InvalidUTF8 != "" && !slices.Contains(invalidUTF8s, d.InvalidUTF8) {
		v.add(path+".invalidUTF8", "%s", fielderr.Unknown("policy", d.InvalidUTF8, invalidUTF8s))
	}
	if d.EmptyRecords != "" && !slices.Contains(emptyRecords, d.EmptyRecords) {
		v.add(path+".emptyRecords", "%s", fielderr.Unknown("policy", d.EmptyRecords, emptyRecords))
	}
	if d.MaxRecordBytes < 0 {
		v.add(path+".maxRecordBytes", "must be >= 0")
	}
	if d.MaxKeyBytes < 0 {
		v.add(path+".maxKeyBytes", "must be >= 0")
	}
	if d.Format != "" && d.Format != DefaultDecodeFormat {
		v.add(path+".format", "%s", fielderr.Unknown("format", d.Format, []string{DefaultDecodeFormat}))
	}
	types := make(map[string]record.Type, len(d.Fields))
	first := make(map[string]int, len(d.Fields))
	for j, f := range d.Fields {
		fp := fmt.Sprintf("%s.fields[%d]", path, j)
		t, err := record.ParseType(f.Type)
		if f.Type == fieldTypeJSON {
			t, err = record.TypeString, nil
		}
		if nt, ok := nestedTypes[f.Type]; ok {
			t, err = nt, nil
		}
		switch {
		case f.Type == "":
			v.add(fp+".type", "required (string, int, float, bool, timestamp, json, struct, list or map)")
		case err != nil:
			v.add(fp+".type", "%s", fielderr.Unknown("type", f.Type, fieldTypes))
		}
		v.nestedMembers(fp, f.Name, &f, 1)
		switch {
		case f.Format == "":
		case t != record.TypeTimestamp:
			if err == nil && f.Type != "" {
				v.add(fp+".format", "only applies to timestamp fields")
			}
		case !slices.Contains(timestampFormats, f.Format):
			v.add(fp+".format", "%s", fielderr.Unknown("timestamp format", f.Format, timestampFormats[1:]))
		}
		if f.Name == "" {
			v.add(fp+".name", "required")
			continue
		}
		if k, dup := first[f.Name]; dup {
			v.add(fp+".name", "field %q already declared at %s.fields[%d]", f.Name, path, k)
			continue
		}
		first[f.Name] = j
		types[f.Name] = t
	}
	if d.Extras != "" {
		if k, dup := first[d.Extras]; dup {
			v.add(path+".extras", "field %q already declared at %s.fields[%d]", d.Extras, path, k)
		} else {
			types[d.Extras] = record.TypeString
		}
	}
	return types
}

// fieldTypeJSON is the decode field type that keeps a value as JSON text.
const fieldTypeJSON = "json"

// nestedTypes are the decode field types written as Parquet groups.
var nestedTypes = map[string]record.Type{"struct": record.TypeStruct, "list": record.TypeList, "map": record.TypeMap}

// memberTypes are the types a struct member, list item or map value takes.
var memberTypes = []string{"string", "int", "float", "bool", "timestamp", "struct", "list", "map"}

// nestedMembers checks what a field of type f.Type declares below it at
// YAML path fp: fields for a struct, items for a list, values for a map,
// nothing for the others. name is the field's dotted path for messages.
func (v *validator) nestedMembers(fp, name string, f *FieldConfig, depth int) {
	want := map[string]string{"struct": "fields", "list": "items", "map": "values"}[f.Type]
	for key, set := range map[string]bool{"fields": len(f.Fields) > 0, "items": f.Items != nil, "values": f.Values != nil} {
		if set && key != want {
			if want == "" {
				v.add(fp+"."+key, "field %q: only a %s field has %s", name, map[string]string{"fields": "struct", "items": "list", "values": "map"}[key], key)
			} else {
				v.add(fp+"."+key, "field %q: a %s has %s, not %s", name, f.Type, want, key)
			}
		}
	}
	if want == "" {
		return
	}
	if depth > record.MaxNestedDepth {
		v.add(fp+".type", "field %q: nested more than %d levels deep", name, record.MaxNestedDepth)
		return
	}
	member := func(mp, mname string, m *FieldConfig, isStructField bool) {
		switch {
		case m.Type == "":
			v.add(mp+".type", "field %q: required (%s)", mname, strings.Join(memberTypes, ", "))
			return
		case !slices.Contains(memberTypes, m.Type):
			v.add(mp+".type", "field %q: %s", mname, fielderr.Unknown("type", m.Type, memberTypes))
			return
		}
		if m.Path != "" && m.Path != m.Name {
			v.add(mp+".path", "field %q: a struct field is read from its name, it has no path", mname)
		}
		if !isStructField && (m.Required || m.Name != "") {
			v.add(mp, "field %q: items and values take a type (with fields, items, values or format), not a name or required", mname)
		}
		if m.Format != "" && m.Type != "timestamp" {
			v.add(mp+".format", "field %q: only applies to timestamp fields", mname)
		} else if !slices.Contains(timestampFormats, m.Format) {
			v.add(mp+".format", "field %q: %s", mname, fielderr.Unknown("timestamp format", m.Format, timestampFormats[1:]))
		}
		v.nestedMembers(mp, mname, m, depth+1)
	}
	switch f.Type {
	case "struct":
		if len(f.Fields) == 0 {
			v.add(fp+".fields", "field %q: a struct needs at least one field", name)
		}
		seen := map[string]int{}
		for j := range f.Fields {
			m := &f.Fields[j]
			mp := fmt.Sprintf("%s.fields[%d]", fp, j)
			if m.Name == "" {
				v.add(mp+".name", "field %q: required", name+".?")
				continue
			}
			if k, dup := seen[m.Name]; dup {
				v.add(mp+".name", "field %q already declared at %s.fields[%d]", name+"."+m.Name, fp, k)
				continue
			}
			seen[m.Name] = j
			member(mp, name+"."+m.Name, m, true)
		}
	case "list", "map":
		m := f.Items
		if f.Type == "map" {
			m = f.Values
		}
		if m == nil {
			v.add(fp+"."+want, "field %q: a %s needs %s, e.g. %s: {type: string}", name, f.Type, want, want)
			return
		}
		member(fp+"."+want, name+"[]", m, false)
	}
}

func (v *validator) step(i int, s *StepConfig) {
	path := fmt.Sprintf("steps[%d]", i)
	var kinds []string
	if s.Filter != "" {
		kinds = append(kinds, "filter")
	}
	if s.Map != nil {
		kinds = append(kinds, "map")
	}
	if s.FlatMap != nil {
		kinds = append(kinds, "flatMap")
	}
	switch len(kinds) {
	case 0:
		v.add(path, "one of filter, map or flatMap is required")
	case 1:
	default:
		v.add(path, "only one of filter, map and flatMap may be set, found %s", strings.Join(kinds, " and "))
	}
	if s.Filter != "" {
		v.expr(path+".filter", s.Filter)
	}
	if m := s.Map; m != nil {
		if len(m.Fields) == 0 {
			v.add(path+".map.fields", "at least one field is required")
		}
		seen := make(map[string]int, len(m.Fields))
		for j, f := range m.Fields {
			fp := fmt.Sprintf("%s.map.fields[%d]", path, j)
			switch k, dup := seen[f.Name]; {
			case f.Name == "":
				v.add(fp+".name", "required")
			case dup:
				v.add(fp+".name", "field %q already computed by %s.map.fields[%d]", f.Name, path, k)
			default:
				seen[f.Name] = j
			}
			if f.Expr == "" {
				v.add(fp+".expr", "required")
			} else {
				v.expr(fp+".expr", f.Expr)
			}
			v.optionalType(fp+".type", f.Type)
		}
	}
	if fm := s.FlatMap; fm != nil {
		if fm.Expr == "" {
			v.add(path+".flatMap.expr", "required")
		} else {
			v.expr(path+".flatMap.expr", fm.Expr)
		}
		if fm.As == "" {
			v.add(path+".flatMap.as", "required (the field that receives each element)")
		}
		v.optionalType(path+".flatMap.type", fm.Type)
	}
}

func (v *validator) stage(i int, s *StageConfig) {
	path := fmt.Sprintf("stages[%d]", i)
	switch {
	case s.Input != "":
		v.streamRef(path+".input", s.Input, i, false)
	case i == 0 && len(v.c.Sources) > 1:
		// Later stages default to the previous stage; the first has no
		// previous stage and must pick one of several sources.
		v.add(path+".input", "required for the first stage when there are %d sources", len(v.c.Sources))
	}
	// Declared after the input check so a stage reading itself is
	// reported as "not an earlier stage".
	v.declare(path, s.Name, true)

	seenKey := make(map[string]bool, len(s.KeyBy))
	for j, k := range s.KeyBy {
		kp := fmt.Sprintf("%s.keyBy[%d]", path, j)
		switch {
		case k == "":
			v.add(kp, "must not be empty")
		case seenKey[k]:
			v.add(kp, "field %q listed twice", k)
		}
		seenKey[k] = true
	}

	v.nonNegative(path+".allowedLateness", s.AllowedLateness)
	if s.StateTTL != 0 {
		v.positiveMillis(path+".stateTTL", s.StateTTL)
	}
	if s.StateBudget < 0 {
		v.add(path+".stateBudget", "must be > 0")
	}
	if s.Rules != nil {
		// A rule stage evaluates live rules instead of windows.
		if s.Window != (WindowConfig{}) {
			v.add(path+".window", "a rule stage has no window")
		}
		if len(s.Aggregates) > 0 || len(s.Alerts) > 0 {
			v.add(path+".aggregates", "a rule stage has no aggregates or threshold alerts: rules define them")
		}
		return
	}
	v.window(path+".window", &s.Window)
	if _, err := window.ParseEmit(s.Emit); err != nil {
		v.add(path+".emit", "%v", err)
	}

	if len(s.Aggregates) == 0 {
		v.add(path+".aggregates", "at least one aggregate is required")
	}
	outputs := make(map[string]string, len(s.Aggregates))
	for _, k := range s.KeyBy {
		outputs[k] = "keyBy"
	}
	for j := range s.Aggregates {
		ap := fmt.Sprintf("%s.aggregates[%d]", path, j)
		name := v.aggregate(ap, &s.Aggregates[j])
		if name == "" {
			continue
		}
		if first, dup := outputs[name]; dup {
			v.add(ap, "output field %q already produced by %s (set as to rename it)", name, first)
			continue
		}
		outputs[name] = ap
	}

	alertNames := make(map[string]int, len(s.Alerts))
	for j, a := range s.Alerts {
		ap := fmt.Sprintf("%s.alerts[%d]", path, j)
		switch k, dup := alertNames[a.Name]; {
		case a.Name == "":
			v.add(ap+".name", "required")
		case dup:
			v.add(ap+".name", "alert %q already defined at %s.alerts[%d]", a.Name, path, k)
		default:
			alertNames[a.Name] = j
		}
		if a.When == "" {
			v.add(ap+".when", "required (a boolean expression over the stage's output fields)")
		} else {
			v.expr(ap+".when", a.When)
		}
	}
}

func (v *validator) window(path string, w *WindowConfig) {
	switch w.Type {
	case "":
		v.add(path+".type", "required (one of %s)", strings.Join(windowTypes, ", "))
		return
	case windowTypeTumbling, windowTypeSliding:
		v.positiveMillis(path+".size", w.Size)
		if w.Gap != 0 {
			v.add(path+".gap", "only applies to session windows")
		}
	case windowTypeSession:
		v.positiveMillis(path+".gap", w.Gap)
		if w.Offset != 0 {
			v.add(path+".offset", "only applies to tumbling and sliding windows")
		}
		if w.Size != 0 {
			v.add(path+".size", "does not apply to session windows (they last until a gap)")
		}
		if w.Slide != 0 {
			v.add(path+".slide", "only applies to sliding windows")
		}
		return
	default:
		v.add(path+".type", "%s", fielderr.Unknown("window type", w.Type, windowTypes))
		return
	}
	if w.Type == windowTypeTumbling {
		if w.Slide != 0 {
			v.add(path+".slide", "only applies to sliding windows")
		}
		v.offset(path+".offset", w.Offset, w.Size, "size")
		return
	}
	v.offset(path+".offset", w.Offset, w.Slide, "slide")
	// Sliding windows are pre-aggregated in slices of gcd(size, slide), so
	// the slide need not divide the size; it only must not exceed it.
	if v.positiveMillis(path+".slide", w.Slide) && w.Size > 0 && w.Slide > w.Size {
		v.add(path+".slide", "must be <= size (%s), got %s", w.Size.D(), w.Slide.D())
	}
}

// offset checks a window offset against the period it shifts.
func (v *validator) offset(path string, off, period Duration, name string) {
	switch {
	case off == 0 || period <= 0:
	case off.D()%time.Millisecond != 0:
		v.add(path, "must be a whole number of milliseconds, got %s", off.D())
	case off <= -period || off >= period:
		v.add(path, "must be smaller than the %s (%s), got %s", name, period.D(), off.D())
	}
}

// positiveMillis checks that a window length is positive and whole
// milliseconds: event time is kept in milliseconds.
func (v *validator) positiveMillis(path string, d Duration) bool {
	switch {
	case d == 0:
		v.add(path, "required, must be > 0")
	case d < 0:
		v.add(path, "must be > 0, got %s", d.D())
	case d.D()%time.Millisecond != 0:
		v.add(path, "must be a whole number of milliseconds, got %s", d.D())
	default:
		return true
	}
	return false
}

// aggregate checks one aggregate and returns its output field name.
func (v *validator) aggregate(path string, a *window.Spec) string {
	switch {
	case a.Fn == "":
		v.add(path+".fn", "required (one of %s)", strings.Join(aggregateFns, ", "))
		return ""
	case !slices.Contains(aggregateFns, a.Fn):
		v.add(path+".fn", "%s", fielderr.Unknown("aggregate", a.Fn, aggregateFns))
		return ""
	}
	if a.Field == "" && a.Fn != "count" {
		v.add(path+".field", "required for %s", a.Fn)
	}
	switch a.Fn {
	case "max_by", "min_by":
		if a.By == "" {
			v.add(path+".by", "required for %s (the field that decides which value wins)", a.Fn)
		}
	default:
		if a.By != "" {
			v.add(path+".by", "only applies to max_by and min_by")
		}
	}
	switch {
	case a.Fn == "quantile" && !(a.Q > 0 && a.Q < 1):
		v.add(path+".q", "must be in (0, 1), got %v", a.Q)
	case a.Fn != "quantile" && a.Q != 0:
		v.add(path+".q", "only applies to quantile")
	}
	switch {
	case a.As != "":
		return a.As
	case a.Field == "":
		return a.Fn
	default:
		return a.Fn + "_" + a.Field
	}
}

func (v *validator) sink(i int, s *SinkConfig) {
	path := fmt.Sprintf("sinks[%d]", i)
	v.declare(path, s.Name, false)
	reg := v.c.kinds()
	kind := reg.Sink(s.Type)
	switch {
	case s.MaxHeldBytes < 0:
		v.add(path+".maxHeldBytes", "must be > 0")
	case s.MaxHeldBytes > 0 && (s.Delivery != "exactlyOnce" || kind != nil && kind.Transactional):
		v.add(path+".maxHeldBytes", "only applies to delivery exactlyOnce of a sink other than parquet")
	}
	if s.Input == "" {
		v.add(path+".input", "required (a source, a stage, or one of %s)", strings.Join(builtinStreams, ", "))
	} else {
		v.streamRef(path+".input", s.Input, len(v.c.Stages), true)
	}
	switch types := reg.SinkTypes(); {
	case s.Type == "":
		v.add(path+".type", "required (one of %s)", strings.Join(types, ", "))
	case kind == nil:
		v.add(path+".type", "%s", fielderr.Unknown("sink type", s.Type, types))
	}
	for _, k := range reg.sinks {
		if k.Block != "" {
			v.block(path, s.Type, k.Name, k.Block, k.blockOf(s) != nil)
		}
	}
	if reg != defaultRegistry() {
		for _, k := range defaultRegistry().sinks {
			if k.Block != "" && reg.Sink(k.Name) == nil && k.blockOf(s) != nil {
				v.add(path+"."+k.Block, "only applies to type %s, which is not registered", k.Name)
			}
		}
	}
	for _, k := range reg.sinks {
		if b := k.blockOf(s); b != nil && k.Validate != nil {
			k.Validate(&BlockCheck{v: v, path: path + "." + k.Block}, b)
		}
	}
}

// streamRef checks that name is a source, one of the first `stages`
// stages, or (for sinks) a built-in stream.
func (v *validator) streamRef(path, name string, stages int, builtins bool) {
	for _, s := range v.c.Sources {
		if s.Name == name {
			return
		}
	}
	for j, s := range v.c.Stages {
		if s.Name != name {
			continue
		}
		if j < stages {
			return
		}
		v.add(path, "stage %q is not an earlier stage (a stage reads a source or an earlier stage)", name)
		return
	}
	if builtins && slices.Contains(builtinStreams, name) {
		return
	}
	if builtins {
		// "<stage>.late" is one stage's late records; "late" is all of them.
		if stage, ok := strings.CutSuffix(name, "."+builtinStreamLate); ok {
			for _, s := range v.c.Stages {
				if s.Name == stage {
					return
				}
			}
		}
		v.add(path, "unknown stream %q (want a source, a stage, <stage>.late, or one of %s)", name, strings.Join(builtinStreams, ", "))
		return
	}
	v.add(path, "unknown stream %q (want a source or an earlier stage)", name)
}

// expr checks an expression's syntax. Types and field names are checked
// by the builder, which knows the schema.
func (v *validator) expr(path, src string) {
	if _, err := parseExpr(src); err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			msg := fe.Message
			if len(msg) > maxExprMessage {
				msg = msg[:maxExprMessage] + "..."
			}
			v.add(path, "invalid expression: %s (line %d, column %d of the expression)", msg, fe.Line, fe.Column+1)
			return
		}
		v.add(path, "invalid expression: %s", err.Error())
	}
}

// parseExpr parses src, turning a panic inside the expression parser into
// an error: validation must survive any input.
func parseExpr(src string) (t *parser.Tree, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parse expression: %v", r)
		}
	}()
	return parser.Parse(src)
}

func (v *validator) optionalType(path, t string) {
	if t == "" {
		return
	}
	if _, err := record.ParseType(t); err != nil {
		v.add(path, "%s", err.Error())
	}
}

func (v *validator) nonNegative(path string, d Duration) {
	if d < 0 {
		v.add(path, "must be >= 0, got %s", d.D())
	}
}

func (v *validator) fraction(path string, f float64) {
	if !(f >= 0 && f <= 1) {
		v.add(path, "must be in [0, 1], got %v", f)
	}
}

// checkPartition checks a partition template's {placeholder} syntax.
func checkPartition(t string) error {
	if len(t) > maxPartitionTemplateLength {
		return fmt.Errorf("template longer than %d characters", maxPartitionTemplateLength)
	}
	for rest := t; rest != ""; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			break
		}
		if rest[open] == '}' {
			return fmt.Errorf("unmatched \"}\" in %q", t)
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] != '}' {
			return fmt.Errorf("unclosed \"{\" in %q", t)
		}
		if name := rest[open+1 : open+1+end]; strings.TrimSpace(name) == "" {
			return fmt.Errorf("empty placeholder {} in %q (want {date}, {hour}, {minute} or {field})", t)
		}
		rest = rest[open+1+end+1:]
	}
	if strings.HasPrefix(t, "/") || strings.Contains("/"+t+"/", "/../") {
		return fmt.Errorf("must be a relative path inside the output directory, got %q", t)
	}
	return nil
}

// settingPath matches the "path: message" of a connector's plain error.
var settingPath = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9]*(?:\[\d+\])?(?:\.[A-Za-z][A-Za-z0-9]*(?:\[\d+\])?)*): (.+)$`)

// connectorProblems turns the error of a connector's Validate into
// Problems under prefix (the block's YAML path): each *fielderr.Error at
// its own setting's path and line, other errors at the setting their
// "setting: message" text names, or else at the block.
func connectorProblems(c *Config, prefix string, err error) Problems {
	var ps Problems
	for _, e := range fielderr.Flatten(err) {
		var fe *fielderr.Error
		switch {
		case errors.As(e, &fe):
			path := prefix
			if fe.Path != "" {
				path += "." + fe.Path
			}
			ps = append(ps, c.Problemf(path, "%s", fe.Msg))
		default:
			if m := settingPath.FindStringSubmatch(e.Error()); m != nil {
				ps = append(ps, c.Problemf(prefix+"."+m[1], "%s", m[2]))
				continue
			}
			ps = append(ps, c.Problemf(prefix, "%s", e.Error()))
		}
	}
	return ps
}
