package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
)

// countingConfig is the block of the test-only "counting" source kind:
// splits bounded splits of count messages each.
type countingConfig struct {
	Splits int   `yaml:"splits"`
	Count  int   `yaml:"count"`
	Keys   int   `yaml:"keys"`
	Start  int64 `yaml:"start"` // event time of message 0, ms
	Step   int64 `yaml:"step"`  // event-time distance between messages, ms
}

// countingMessage is message i of split s, the whole definition of the
// source's data: the expectations below compute it again on their own.
func countingMessage(c countingConfig, s, i int) (key string, n int, ts int64) {
	return "k" + strconv.Itoa((s+i)%c.Keys), s*1000 + i, c.Start + int64(i)*c.Step
}

type countingSource struct{ cfg countingConfig }

func (c *countingSource) Splits(context.Context) ([]source.Split, error) {
	out := make([]source.Split, c.cfg.Splits)
	for i := range out {
		out[i] = source.Split{ID: "counting-" + strconv.Itoa(i)}
	}
	return out, nil
}

func (c *countingSource) Open(_ context.Context, sp source.Split, start *source.Position) (source.Reader, error) {
	s, err := strconv.Atoi(sp.ID[len("counting-"):])
	if err != nil {
		return nil, fmt.Errorf("open split %q: %w", sp.ID, err)
	}
	r := &countingReader{cfg: c.cfg, split: s}
	if start != nil {
		r.next = int(start.Offset)
	}
	return r, nil
}

func (c *countingSource) Close(context.Context) error { return nil }

type countingReader struct {
	cfg         countingConfig
	split, next int
}

func (r *countingReader) Read(_ context.Context, b *source.Batch, max int) error {
	for ; max > 0 && r.next < r.cfg.Count; max-- {
		key, n, ts := countingMessage(r.cfg, r.split, r.next)
		b.Messages = append(b.Messages, source.Message{
			Value:    fmt.Appendf(nil, `{"key":%q,"n":%d,"ts":%d}`, key, n, ts),
			Position: source.Position{Offset: int64(r.next)},
		})
		r.next++
	}
	if r.next >= r.cfg.Count {
		return source.ErrEndOfSplit
	}
	return nil
}

func (r *countingReader) Position() source.Position { return source.Position{Offset: int64(r.next)} }

func (r *countingReader) Close() error { return nil }

// collectConfig is the block of the test-only "collect" sink kind.
type collectConfig struct {
	// Label is required; it names the collection in messages.
	Label string `yaml:"label"`
	// KeyField, when set, must be a field of the sink's input.
	KeyField string `yaml:"keyField"`
}

// collectSink keeps every row written to it as a JSON object.
type collectSink struct {
	mu   sync.Mutex
	rows []map[string]any
}

func (c *collectSink) NewWriter(_ string, schema *record.Schema) (sink.Writer, error) {
	return &collectWriter{sink: c, schema: schema}, nil
}

func (c *collectSink) Close(context.Context) error { return nil }

type collectWriter struct {
	sink   *collectSink
	schema *record.Schema
}

func (w *collectWriter) Write(_ context.Context, b *record.Batch) error {
	w.sink.mu.Lock()
	defer w.sink.mu.Unlock()
	for i := range b.Len() {
		var row map[string]any
		if err := json.Unmarshal(record.AppendJSON(nil, w.schema, b.Row(i)), &row); err != nil {
			return fmt.Errorf("decode row: %w", err)
		}
		w.sink.rows = append(w.sink.rows, row)
	}
	return nil
}

func (w *collectWriter) Close(context.Context) error { return nil }

// testRegistry is an empty registry with the two test-only kinds; into
// receives the rows of every collect sink.
func testRegistry(t *testing.T, into *collectSink) *pipeline.Registry {
	t.Helper()
	r := pipeline.NewRegistry()
	require.NoError(t, r.RegisterSource(pipeline.SourceKind{
		Name:     "counting",
		Block:    "counting",
		NewBlock: func() any { return &countingConfig{} },
		Defaults: func(b any) any {
			c, _ := b.(*countingConfig)
			if c != nil && c.Step == 0 {
				c.Step = 1000
			}
			return b
		},
		Validate: func(c *pipeline.BlockCheck, b any) {
			cfg := b.(*countingConfig)
			if cfg.Splits <= 0 {
				c.Problemf("splits", "must be > 0, got %d", cfg.Splits)
			}
			if cfg.Keys <= 0 {
				c.Problemf("keys", "must be > 0, got %d", cfg.Keys)
			}
		},
		Open: func(sb *pipeline.SourceBuild) (source.Source, error) {
			return &countingSource{cfg: *sb.Block.(*countingConfig)}, nil
		},
	}))
	require.NoError(t, r.RegisterSink(pipeline.SinkKind{
		Name:     "collect",
		Block:    "collect",
		NewBlock: func() any { return &collectConfig{} },
		Validate: func(c *pipeline.BlockCheck, b any) {
			if b.(*collectConfig).Label == "" {
				c.Problemf("label", "required")
			}
		},
		Build: func(kb *pipeline.SinkBuild) (sink.Sink, error) {
			cfg := kb.Block.(*collectConfig)
			if f := cfg.KeyField; f != "" && kb.Schema != nil {
				if _, ok := kb.Schema.Index(f); !ok {
					kb.Problemf("collect.keyField", "field %q is not in %q", f, kb.Sink.Input)
					return nil, nil
				}
			}
			if !kb.Open {
				return nil, nil
			}
			return into, nil
		},
	}))
	return r
}

const registryPipeline = `
name: registry
parallelism: 2
http: {listen: "off"}
checkpoint: {enabled: false}
sources:
  - name: numbers
    type: counting
    counting: {splits: 3, count: 500, keys: 7, start: 1767225600000, step: 250}
    decode:
      fields:
        - {name: key, type: string, required: true}
        - {name: n, type: int, required: true}
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
    eventTime: {field: ts}
stages:
  - name: sums
    keyBy: [key]
    window: {type: tumbling, size: 10s}
    aggregates:
      - {fn: count, as: c}
      - {fn: sum, field: n, as: total}
sinks:
  - {name: out, input: sums, type: collect, collect: {label: sums, keyField: key}}
`

// TestRegistryKindsRunEndToEnd runs a pipeline whose source and sink kinds
// exist only in this test through validation and the real runtime.
func TestRegistryKindsRunEndToEnd(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	got := &collectSink{}
	reg := testRegistry(t, got)
	cfg, err := reg.Parse([]byte(registryPipeline), nil)
	require.NoError(t, err)
	require.Empty(t, pipeline.Check(cfg))
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, rt.Run(ctx))

	// Expected windows straight from the message definition.
	src := countingConfig{Splits: 3, Count: 500, Keys: 7, Start: 1767225600000, Step: 250}
	type result struct{ count, total int64 }
	want := map[string]result{}
	for s := range src.Splits {
		for i := range src.Count {
			key, n, ts := countingMessage(src, s, i)
			k := key + "@" + time.UnixMilli(ts-ts%10000).UTC().Format(time.RFC3339)
			r := want[k]
			r.count++
			r.total += int64(n)
			want[k] = r
		}
	}
	have := map[string]result{}
	for _, row := range got.rows {
		start, err := time.Parse(time.RFC3339Nano, row["window_start"].(string))
		require.NoError(t, err)
		k := row["key"].(string) + "@" + start.UTC().Format(time.RFC3339)
		_, dup := have[k]
		require.False(t, dup, "one result per window and key: %s", k)
		have[k] = result{int64(row["c"].(float64)), int64(row["total"].(float64))}
	}
	require.Equal(t, want, have)
}

// TestRegistryValidateAndBuildAgree shows a connector's problem surfacing
// identically from validate (Check) and run (Build), for built-in kinds and
// registered ones alike: both reach the kind through the registry.
func TestRegistryValidateAndBuildAgree(t *testing.T) {
	const builtin = `
name: p
http: {listen: "off"}
checkpoint: {enabled: false}
sources:
  - name: s
    type: generator
    generator: {count: 10}
    decode: {fields: [{name: tag, type: string}]}
sinks:
  - name: k
    input: s
    type: kafka
    kafka: {brokers: ["localhost:9092"], topic: out, keyField: nope}
`
	registered := registryPipeline[:len(registryPipeline)-len("keyField: key}}\n")] + "keyField: nope}}\n"
	for _, tc := range []struct {
		name string
		reg  *pipeline.Registry
		doc  string
		want string
	}{
		{"built-in kafka sink", pipeline.DefaultRegistry(), builtin, `line 14: sinks[0].kafka.keyField: field "nope" is not in "s"`},
		{"registered collect sink", testRegistry(t, &collectSink{}), registered, `sinks[0].collect.keyField: field "nope" is not in "sums"`},
		{"registered block check", testRegistry(t, &collectSink{}), replaceOnce(t, registryPipeline, "keys: 7", "keys: 0"), `sources[0].counting.keys: must be > 0, got 0`},
		{"registered required label", testRegistry(t, &collectSink{}), replaceOnce(t, registryPipeline, "label: sums", "label: ''"), `sinks[0].collect.label: required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parse := func() *pipeline.Config {
				cfg, err := tc.reg.Parse([]byte(tc.doc), nil)
				require.NoError(t, err)
				return cfg
			}
			checked := pipeline.Check(parse())
			require.NotEmpty(t, checked)
			require.Contains(t, checked.Error(), tc.want)
			_, err := pipeline.Build(parse(), pipeline.Options{})
			var built pipeline.Problems
			require.True(t, errors.As(err, &built), "Build returns Problems, got %v", err)
			require.Equal(t, checked, built)
		})
	}
}

func replaceOnce(t *testing.T, s, old, repl string) string {
	t.Helper()
	require.Equal(t, 1, strings.Count(s, old), "%q once in the document", old)
	return strings.Replace(s, old, repl, 1)
}

// TestRegistryKinds checks what a registry accepts and what an empty one,
// extended with test kinds, says about the built-in ones.
func TestRegistryKinds(t *testing.T) {
	reg := testRegistry(t, &collectSink{})
	require.Equal(t, []string{"counting"}, reg.SourceTypes())
	require.Equal(t, []string{"collect"}, reg.SinkTypes())
	require.Error(t, reg.RegisterSource(pipeline.SourceKind{Name: "counting"}), "duplicate name")
	require.Error(t, reg.RegisterSource(pipeline.SourceKind{Name: "other", Block: "decode", NewBlock: func() any { return &countingConfig{} }}), "block is a SourceConfig field")
	require.Error(t, reg.RegisterSink(pipeline.SinkKind{Name: "nobuild"}), "sink without Build")

	// A kind the registry does not have is unknown, and so is the block of
	// a built-in kind it does not have.
	cfg, err := reg.Parse([]byte(`
name: p
checkpoint: {enabled: false}
sources: [{name: s, type: counting, counting: {splits: 1, keys: 1}, generator: {count: 1}}]
sinks: [{name: o, input: s, type: collect, collect: {label: x}}]
`), nil)
	require.NoError(t, err)
	require.ErrorContains(t, pipeline.Check(cfg), `sources[0].generator: only applies to type generator, which is not registered`)
	_, err = reg.Parse([]byte(`
name: p
sinks: [{name: o, input: s, type: collect, collect: {label: x, labl: y}}]
`), nil)
	require.ErrorContains(t, err, `unknown field "labl" (did you mean "label"?)`)
	cfg, err = reg.Parse([]byte(`
name: p
checkpoint: {enabled: false}
sources: [{name: s, type: generator}]
sinks: [{name: o, input: s, type: collect, collect: {label: x}}]
`), nil)
	require.NoError(t, err)
	require.ErrorContains(t, pipeline.Check(cfg), `sources[0].type: unknown source type "generator" (want counting)`)

	// The default registry lists the built-in kinds in the order messages name them.
	def := pipeline.DefaultRegistry()
	require.Equal(t, []string{"generator", "nexmark", "file", "stdin", "kafka", "kinesis"}, def.SourceTypes())
	require.Equal(t, []string{"parquet", "stdout", "file", "kafka", "kinesis", "webhook", "discard"}, def.SinkTypes())
}
