package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// env returns a lookup function over a fixed set of variables, so tests do
// not depend on the process environment.
func env(kv ...string) func(string) (string, bool) {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// problemsOf returns the Problems in err, failing the test if err is
// something else.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	require.Error(t, err)
	var ps Problems
	require.True(t, errors.As(err, &ps), "error %T is not Problems: %v", err, err)
	return ps
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Path: "stages[0].window.size", Line: 12, Column: 7, Msg: "must be > 0"}, "line 12: stages[0].window.size: must be > 0"},
		{Problem{Path: "name", Msg: "required"}, "name: required"},
		{Problem{Line: 3, Msg: "invalid YAML: x"}, "line 3: invalid YAML: x"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.p.Error())
	}

	ps := Problems{
		{Path: "b", Line: 9, Column: 5, Msg: "second"},
		{Path: "a", Line: 2, Msg: "first"},
		{Path: "c", Line: 9, Column: 1, Msg: "also second"},
	}
	require.Equal(t, "line 2: a: first\nline 9: c: also second\nline 9: b: second", ps.Error())
	require.Equal(t, "b", ps[0].Path, "Error must not reorder the receiver")
	require.NoError(t, Problems(nil).Err())
	require.Error(t, ps.Err())
}

func TestParseTestdata(t *testing.T) {
	lookup := env("OUTPUT_DIR", "/data")
	tests := []struct {
		file string
		// want lists problems as "line N: path: msg prefix"; empty means valid.
		want []string
	}{
		{file: "line-monitoring.yaml"},
		{file: "minimal.yaml"},
		{file: "invalid-syntax.yaml", want: []string{"line 2: invalid YAML"}},
		{file: "invalid-types.yaml", want: []string{
			`line 2: parallelism: must be an integer, got "many"`,
			`line 3: batchSize: must be a single value, got a list`,
			`line 8: sources[0].generator.count: must be an integer, got "1.5"`,
			`line 9: sources[0].generator.step: invalid duration "5 minutes"`,
			`line 10: sources[0].generator.lateBy: invalid duration "10"`,
			`line 12: sources[0].watermark.maxOutOfOrderness: environment variable MISSING_VAR is not set`,
			`line 19: sinks[0].parquet.rollSize: invalid size "lots"`,
		}},
		{file: "invalid-many.yaml", want: []string{
			// Load problems stop before validation, so only they are reported.
			`line 7: sources[0].generator.rate: must be a number, got "fast"`,
			`line 24: stages[0].window: unknown field "sizee" (did you mean "size"?)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", tt.file), lookup)
			if err == nil {
				cfg.ApplyDefaults()
				err = cfg.Validate().Err()
			}
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			ps := problemsOf(t, err)
			require.Len(t, ps, len(tt.want), "%v", ps)
			for i, w := range tt.want {
				require.True(t, strings.HasPrefix(ps[i].Error(), w), "problem %d:\n got %s\nwant %s...", i, ps[i].Error(), w)
			}
		})
	}
}

func TestDocsExample(t *testing.T) {
	// The full example in the reference must stay valid and identical to
	// the testdata file the other tests use.
	doc, err := os.ReadFile("../../docs/pipeline.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	require.True(t, ok, "no yaml block in docs/pipeline.md")
	example, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)
	want, err := os.ReadFile("testdata/line-monitoring.yaml")
	require.NoError(t, err)
	require.Equal(t, string(want), example)
	cfg, err := Parse([]byte(example), env())
	require.NoError(t, err)
	cfg.ApplyDefaults()
	require.Empty(t, cfg.Validate())
	require.Equal(t, "./out/minutes", cfg.Sinks[0].Parquet.Path)
	require.Equal(t, `tag == "water_temperature" && max_value > 90`, cfg.Stages[0].Alerts[0].When)
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestInvalidManyValidation(t *testing.T) {
	// With the unknown field removed the file loads, and validation
	// reports every remaining problem with its line.
	data, err := os.ReadFile("testdata/invalid-many.yaml")
	require.NoError(t, err)
	src := strings.Replace(string(data), "      sizee: 1m\n", "", 1)
	src = strings.Replace(src, "rate: fast", "rate: -5", 1)
	data = []byte(src)
	cfg, err := Parse(data, env())
	require.NoError(t, err)
	cfg.ApplyDefaults()
	var got []string
	for _, p := range cfg.Validate() {
		got = append(got, p.Error())
	}
	want := []string{
		`line 1: name: required`,
		`line 2: keyGroups: must be in [1, 32768], got 65536`,
		`line 5: sources[0].type: unknown source type "generatr" (did you mean "generator"? want generator, nexmark, file, stdin, kafka, kinesis)`,
		`line 6: sources[0].generator: only applies to type generator`,
		`line 7: sources[0].generator.rate: must be a finite number >= 0 (0 means as fast as possible)`,
		`line 8: sources[0].generator.splits: must be > 0, got -1`,
		`line 11: sources[0].decode.fields[0].type: unknown type "timestmp" (did you mean "timestamp"? want string, int, float, bool, timestamp, json, struct, list, map)`,
		`line 12: sources[0].decode.fields[1].name: field "ts" already declared at sources[0].decode.fields[0]`,
		`line 14: sources[0].eventTime.field: field "missing" is not declared in decode.fields`,
		// senderField is absent: the problem takes the line of its parent.
		`line 15: sources[0].watermark.senderField: required for the perSender strategy`,
		`line 18: stages[0].name: name "sensors" already used by sources[0]`,
		`line 19: stages[0].input: unknown stream "later" (want a source or an earlier stage)`,
		`line 23: stages[0].window.slide: must be <= size (1m0s), got 2m0s`,
		`line 25: stages[0].aggregates[0].fn: unknown aggregate "median" (want count, sum, min, max, avg, first, last, count_distinct, quantile, max_by, min_by)`,
		`line 26: stages[0].aggregates[1].q: must be in (0, 1), got 1.5`,
		// parquet is absent: the problem takes the line of the sink.
		`line 28: sinks[0].parquet: required for type parquet`,
		`line 29: sinks[0].input: unknown stream "nowhere" (want a source, a stage, <stage>.late, or one of alerts, deadletters, late)`,
	}
	require.Equal(t, want, got)
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  []string
		want []Problem // Msg is matched as a prefix
	}{
		{
			name: "unknown top-level field with suggestion",
			yaml: "name: x\nkeygroups: 4\n",
			want: []Problem{{Path: "", Line: 2, Column: 1, Msg: `unknown field "keygroups" (did you mean "keyGroups"?)`}},
		},
		{
			name: "unknown field without suggestion lists known fields",
			yaml: "name: x\nsources:\n  - name: a\n    colour: red\n",
			want: []Problem{{Path: "sources[0]", Line: 4, Column: 5, Msg: `unknown field "colour" (known fields: name, type,`}},
		},
		{
			name: "unknown field in aggregate spec",
			yaml: "stages:\n  - aggregates:\n      - {fn: sum, feild: x}\n",
			want: []Problem{{Path: "stages[0].aggregates[0]", Line: 3, Msg: `unknown field "feild" (did you mean "field"?)`}},
		},
		{
			name: "every type error is reported",
			yaml: "name: x\nparallelism: two\nkeyGroups: 1.5\nstages:\n  - window:\n      size: 1 minute\n      gap: [1]\n",
			want: []Problem{
				{Path: "parallelism", Line: 2, Msg: `must be an integer, got "two"`},
				{Path: "keyGroups", Line: 3, Msg: `must be an integer, got "1.5"`},
				{Path: "stages[0].window.size", Line: 6, Msg: `invalid duration "1 minute"`},
				{Path: "stages[0].window.gap", Line: 7, Msg: "must be a single value, got a list"},
			},
		},
		{
			name: "bool and float",
			yaml: "sources:\n  - file: {follow: maybe}\n    generator: {rate: quick}\n",
			want: []Problem{
				{Path: "sources[0].file.follow", Line: 2, Msg: `must be true or false, got "maybe"`},
				{Path: "sources[0].generator.rate", Line: 3, Msg: `must be a number, got "quick"`},
			},
		},
		{
			name: "list where a mapping goes and scalar where a list goes",
			yaml: "http: [a]\nsources: one\n",
			want: []Problem{
				{Path: "http", Line: 1, Msg: "must be a mapping, got a list"},
				{Path: "sources", Line: 2, Msg: `must be a list, got "one"`},
			},
		},
		{
			name: "duplicate key",
			yaml: "name: a\nname: b\n",
			want: []Problem{{Path: "name", Line: 2, Msg: "duplicate field (first at line 1)"}},
		},
		{
			name: "file is not a mapping",
			yaml: "- a\n- b\n",
			want: []Problem{{Line: 1, Msg: "must be a mapping, got a list"}},
		},
		{
			name: "second document",
			yaml: "name: a\n---\nname: b\n",
			want: []Problem{{Line: 2, Msg: "a pipeline file holds one YAML document"}},
		},
		{
			name: "syntax error",
			yaml: "name: a\nsources: [\n",
			want: []Problem{{Line: 2, Msg: "invalid YAML:"}},
		},
		{
			name: "unset variables, each with its line",
			yaml: "name: ${NAME}\nhttp:\n  listen: ${HOST}:${PORT}\n",
			want: []Problem{
				{Path: "name", Line: 1, Msg: "environment variable NAME is not set"},
				{Path: "http.listen", Line: 3, Msg: "environment variable HOST is not set"},
				{Path: "http.listen", Line: 3, Msg: "environment variable PORT is not set"},
			},
		},
		{
			name: "bad references",
			yaml: "name: ${1X}\nhttp:\n  listen: ${OPEN\n",
			want: []Problem{
				{Path: "name", Line: 1, Msg: `invalid environment variable name "1X"`},
				{Path: "http.listen", Line: 3, Msg: `unterminated "${"`},
			},
		},
		{
			name: "expanded value of the wrong type",
			yaml: "name: x\nkeyGroups: ${KG}\n",
			env:  []string{"KG", "lots"},
			want: []Problem{{Path: "keyGroups", Line: 2, Msg: `must be an integer, got "lots"`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), env(tt.env...))
			ps := problemsOf(t, err)
			require.Len(t, ps, len(tt.want), "%v", ps)
			for i, w := range tt.want {
				got := ps[i]
				require.Equal(t, w.Path, got.Path, "problem %d: %v", i, got)
				require.Equal(t, w.Line, got.Line, "problem %d: %v", i, got)
				if w.Column != 0 {
					require.Equal(t, w.Column, got.Column, "problem %d: %v", i, got)
				}
				require.True(t, strings.HasPrefix(got.Msg, w.Msg), "problem %d:\n got %q\nwant %q...", i, got.Msg, w.Msg)
			}
		})
	}
}

func TestExpandEnv(t *testing.T) {
	lookup := env("A", "alpha", "EMPTY", "", "N", "5")
	tests := []struct {
		in, want    string
		substituted bool
		errs        int
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha", substituted: true},
		{in: "x-${A}-${N}", want: "x-alpha-5", substituted: true},
		{in: "${UNSET:-dflt}", want: "dflt", substituted: true},
		{in: "${EMPTY:-dflt}", want: "dflt", substituted: true},
		{in: "${EMPTY}", want: "", substituted: true},
		{in: "${A:-dflt}", want: "alpha", substituted: true},
		{in: "${UNSET:-}", want: "", substituted: true},
		{in: "${UNSET:-a:-b}", want: "a:-b", substituted: true},
		{in: "$${A}", want: "${A}"},
		{in: "cost $$5", want: "cost $5"},
		{in: "$env.x > 1", want: "$env.x > 1"},
		{in: "trailing $", want: "trailing $"},
		{in: "${UNSET}", errs: 1},
		{in: "${UNSET} ${ALSO}", errs: 2},
		{in: "${}", errs: 1},
		{in: "${A B}", errs: 1},
		{in: "${A", errs: 1},
	}
	for _, tt := range tests {
		got, sub, errs := expandEnv(tt.in, lookup)
		require.Len(t, errs, tt.errs, "%q: %v", tt.in, errs)
		if tt.errs > 0 {
			continue
		}
		require.Equal(t, tt.want, got, tt.in)
		require.Equal(t, tt.substituted, sub, tt.in)
	}
}

func TestParseEnvExpansion(t *testing.T) {
	// A multi-line value and a default must not shift any line: problems
	// after the expanded scalars keep the line they were written on.
	src := `name: ${NAME}
keyGroups: ${KEY_GROUPS}
batchSize: "${BATCH:-512}"
http:
  listen: ${LISTEN:-:9000}
steps:
  - filter: value > ${LIMIT:-80} && name != "$$x"
  - filter: ${MULTI}
stages:
  - name: s
    window: {type: tumbling, size: "${SIZE:-1m}"}
    allowedLateness: -1s
    aggregates: [{fn: count}]
`
	cfg, err := Parse([]byte(src), env("NAME", "plant-7", "KEY_GROUPS", "256", "MULTI", "a >\n\n1"))
	require.NoError(t, err)
	require.Equal(t, "plant-7", cfg.Name)
	require.Equal(t, 256, cfg.KeyGroups)
	require.Equal(t, 512, cfg.BatchSize, "a quoted reference still decodes into an int")
	require.Equal(t, ":9000", cfg.HTTP.Listen)
	require.Equal(t, `value > 80 && name != "$x"`, cfg.Steps[0].Filter)
	require.Equal(t, "a >\n\n1", cfg.Steps[1].Filter)
	require.Equal(t, Duration(time.Minute), cfg.Stages[0].Window.Size)

	ps := cfg.Validate()
	var late *Problem
	for i := range ps {
		if ps[i].Path == "stages[0].allowedLateness" {
			late = &ps[i]
		}
	}
	require.NotNil(t, late, "%v", ps)
	require.Equal(t, 12, late.Line)

	// A name that expands to something that looks like a number stays a string.
	cfg, err = Parse([]byte("name: ${NAME}\n"), env("NAME", "123"))
	require.NoError(t, err)
	require.Equal(t, "123", cfg.Name)
	// An explicit tag keeps the value as written.
	cfg, err = Parse([]byte("name: !!str ${NAME}\n"), env("NAME", "x"))
	require.NoError(t, err)
	require.Equal(t, "x", cfg.Name)
}

func TestParseAliasesAndMerges(t *testing.T) {
	src := `name: x
sources:
  - &src
    name: a
    type: stdin
    decode:
      fields: &fields
        - {name: ts, type: timestamp}
  - <<: *src
    name: b
    decode:
      fields: *fields
sinks:
  - {name: out, input: a, type: stdout}
`
	cfg, err := Parse([]byte(src), env())
	require.NoError(t, err)
	require.Len(t, cfg.Sources, 2)
	require.Equal(t, "b", cfg.Sources[1].Name)
	require.Equal(t, "stdin", cfg.Sources[1].Type)
	require.Len(t, cfg.Sources[1].Decode.Fields, 1)
	cfg.ApplyDefaults()
	require.Empty(t, cfg.Validate())

	// An unknown field inside a merged mapping is still reported.
	_, err = Parse([]byte("base: &b {name: x}\nname: y\n"), env())
	ps := problemsOf(t, err)
	require.Equal(t, `unknown field "base" (known fields: name, parallelism, keyGroups, batchSize, http, time, health, sources, steps, stages, sinks, checkpoint)`, ps[0].Msg)
}

func TestParseEmpty(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "~\n"} {
		cfg, err := Parse([]byte(src), env())
		require.NoError(t, err, "%q", src)
		ps := cfg.Validate()
		require.Len(t, ps, 3, "%v", ps)
		require.Equal(t, "name: required", ps[0].Error())
	}
}

func TestProblemf(t *testing.T) {
	src := `name: x
stages:
  - name: s
    keyBy: [a, b]
    window:
      type: tumbling
`
	cfg, err := Parse([]byte(src), env())
	require.NoError(t, err)
	tests := []struct {
		path      string
		line, col int
	}{
		{"stages[0].keyBy[1]", 4, 16},
		{"stages[0].window.type", 6, 7},
		{"stages[0].window.size", 5, 5},         // absent: its parent
		{"stages[0].aggregates[0].field", 3, 5}, // absent up to the stage
		{"sinks[0].parquet.path", 0, 0},         // nothing on the way
		{"name", 1, 1},
	}
	for _, tt := range tests {
		p := cfg.Problemf(tt.path, "bad %d", 1)
		require.Equal(t, tt.path, p.Path)
		require.Equal(t, "bad 1", p.Msg)
		require.Equal(t, tt.line, p.Line, tt.path)
		require.Equal(t, tt.col, p.Column, tt.path)
	}
	var nilCfg *Config
	require.Equal(t, 0, nilCfg.Problemf("name", "x").Line)
	require.Equal(t, 0, (&Config{}).Problemf("name", "x").Line)
}

func TestApplyDefaults(t *testing.T) {
	cfg := &Config{
		Name: "d",
		Sources: []SourceConfig{
			{Name: "g", Type: "generator", Decode: DecodeConfig{Fields: []FieldConfig{{Name: "ts", Type: "timestamp"}, {Name: "v", Type: "float"}}}},
			{Name: "f", Type: "file", File: &FileConfig{Paths: []string{"x"}}, EventTime: EventTimeConfig{MaxFuture: -1}},
		},
		Sinks: []SinkConfig{{Name: "p", Input: "g", Type: "parquet", Parquet: &ParquetConfig{Path: "out", RollAge: Duration(time.Hour)}}},
	}
	cfg.ApplyDefaults()
	require.Equal(t, 128, cfg.KeyGroups)
	require.Equal(t, 1024, cfg.BatchSize)
	require.Equal(t, "127.0.0.1:9249", cfg.HTTP.Listen)
	g := cfg.Sources[0]
	require.Equal(t, &GeneratorConfig{Splits: 1, Machines: 10, Tags: 4, LateBy: Duration(10 * time.Minute)}, g.Generator)
	require.Equal(t, "json", g.Decode.Format)
	require.Equal(t, FieldConfig{Name: "ts", Path: "ts", Type: "timestamp", Format: "auto"}, g.Decode.Fields[0])
	require.Equal(t, FieldConfig{Name: "v", Path: "v", Type: "float"}, g.Decode.Fields[1])
	require.Equal(t, "bounded", g.Watermark.Strategy)
	require.Equal(t, Duration(24*time.Hour), g.EventTime.MaxFuture)
	require.Equal(t, Duration(200*time.Millisecond), cfg.Sources[1].File.PollInterval)
	require.Equal(t, Duration(-1), cfg.Sources[1].EventTime.MaxFuture, "negative maxFuture disables the check and is kept")
	p := cfg.Sinks[0].Parquet
	require.Equal(t, "zstd", p.Compression)
	require.Equal(t, ByteSize(128<<20), p.RollSize)
	require.Equal(t, Duration(time.Hour), p.RollAge, "explicit values are kept")

	before := *cfg
	cfg.ApplyDefaults()
	require.Equal(t, before, *cfg, "ApplyDefaults is idempotent")
	require.Empty(t, cfg.Validate())
}

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	require.NoError(f, err)
	require.NotEmpty(f, files)
	for _, name := range files {
		data, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("name: ${X:-${Y}}\n"))
	f.Add([]byte("<<: {name: x}\n"))
	// Invalid UTF-8 in keys, values and comments.
	f.Add([]byte("name: \"k\xff\xfe\"\nsources: [{name: \xc3, type: stdin}]\n# \xed\xa0\x80\n"))
	f.Add([]byte("name: t\nsources:\n  - {name: k, type: kafka, kafka: {brokers: [\"h:1\"], topics: [t], sasl: {mechanism: \"pl\xffain\"}}}\nsinks: [{name: o, input: k, type: stdout}]\n"))
	lookup := env("X", "1", "OUTPUT_DIR", "/o")
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, lookup)
		if err != nil {
			var ps Problems
			require.True(t, errors.As(err, &ps), "Parse returned %T: %v", err, err)
			require.NotEmpty(t, ps)
			for _, p := range ps {
				require.GreaterOrEqual(t, p.Line, 0)
				require.NotEmpty(t, p.Msg)
			}
			_ = ps.Error()
			return
		}
		require.NotNil(t, cfg)
		cfg.ApplyDefaults()
		for _, p := range cfg.Validate() {
			require.NotEmpty(t, p.Msg)
			require.NotContains(t, p.Msg, "\n", "a problem must fit on one line")
		}
		// The whole validation path, connector settings included, must
		// survive any file without opening anything.
		for _, p := range Check(cfg) {
			require.NotEmpty(t, p.Msg)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/line-monitoring.yaml")
	require.NoError(b, err)
	lookup := env()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		cfg, err := Parse(data, lookup)
		if err != nil {
			b.Fatal(err)
		}
		cfg.ApplyDefaults()
		if ps := cfg.Validate(); len(ps) > 0 {
			b.Fatal(ps)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// The state bounds of a pipeline file reach the job: per-stage state TTL
// and budget, per-sender watermark bounds.
func TestStateBoundsReachTheJob(t *testing.T) {
	src := `
name: bounds
sources:
  - name: in
    type: generator
    generator: {count: 10}
    decode:
      fields:
        - {name: timestamp, type: timestamp, format: epoch_ms}
        - {name: equipmentId, type: string}
        - {name: tag, type: string}
        - {name: value, type: float}
    eventTime: {field: timestamp}
    watermark: {strategy: perSender, senderField: equipmentId, senderTTL: 30m, maxSenders: 500}
stages:
  - name: w
    input: in
    keyBy: [equipmentId]
    window: {type: tumbling, size: 1m}
    aggregates: [{fn: count}]
    stateTTL: 10m
    stateBudget: 64MiB
  - name: r
    input: in
    keyBy: [equipmentId]
    rules: {}
    stateTTL: 2h
sinks:
  - {name: out, input: w, type: stdout}
checkpoint: {enabled: false}
`
	cfg, err := Parse([]byte(src), env())
	require.NoError(t, err)
	require.Empty(t, cfg.Validate())
	job, err := Build(cfg, Options{})
	require.NoError(t, err)
	require.Equal(t, 10*time.Minute, job.Stages[0].StateTTL)
	require.EqualValues(t, 64<<20, job.Stages[0].StateBudget)
	require.Equal(t, 2*time.Hour, job.Stages[1].StateTTL)
	require.EqualValues(t, 30*time.Minute/time.Millisecond, job.Sources[0].Watermark.SenderTTL)
	require.Equal(t, 500, job.Sources[0].Watermark.MaxSenders)
}
