package connectortest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/internal/connectortest"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

// The pipeline reads a sequence, keeps every record in one memory sink and
// per-parity ten-second sums in another, and drops a copy into a built-in
// sink, so the registered kinds run beside the built-in ones.
const pipelineFile = `
name: sequence-to-memory
parallelism: 2
http: {listen: "off"}
checkpoint: {enabled: false}
sources:
  - name: numbers
    type: sequence
    sequence: {count: 250, start: 1767225600, step: 700}
    decode:
      fields:
        - {name: n, type: int, required: true}
        - {name: parity, type: string, required: true}
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
    eventTime: {field: ts}
stages:
  - name: sums
    keyBy: [parity]
    window: {type: tumbling, size: 10s}
    aggregates:
      - {fn: count, as: c}
      - {fn: sum, field: n, as: total}
sinks:
  - {name: raw, input: numbers, type: memory, memory: {maxRows: 250}}
  - {name: windows, input: sums, type: memory, memory: {}}
  - {name: drop, input: numbers, type: discard}
`

// The settings of the file's source block, for the expectations.
const count, start, step = 250, 1767225600, 700

// registry is the built-in registry with the two kinds of this package.
func registry(t *testing.T) (*pipeline.Registry, *connectortest.Memory) {
	t.Helper()
	reg := pipeline.DefaultRegistry()
	mem, err := connectortest.Register(reg)
	require.NoError(t, err)
	return reg, mem
}

// TestSequenceToMemoryEndToEnd loads a pipeline file that uses both kinds,
// validates it and runs it through the runtime; the sinks receive exactly
// the rows worked out here from the definition of the records.
func TestSequenceToMemoryEndToEnd(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	reg, mem := registry(t)
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	require.NoError(t, os.WriteFile(path, []byte(pipelineFile), 0o600))
	cfg, err := reg.Load(path, nil)
	require.NoError(t, err)
	require.Empty(t, pipeline.Check(cfg))
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, rt.Run(ctx))

	// Record i has n = start+i, the parity of n and event time n*step ms.
	type window struct {
		parity string
		start  time.Time
	}
	type sums struct{ c, total int64 }
	var wantRaw []connectortest.Row
	wantWindows := map[window]sums{}
	for i := range int64(count) {
		n := start + i
		parity := map[bool]string{true: "even", false: "odd"}[n%2 == 0]
		ts := n * step
		wantRaw = append(wantRaw, connectortest.Row{"n": n, "parity": parity, "ts": time.UnixMilli(ts).UTC()})
		w := window{parity, time.UnixMilli(ts - ts%10_000).UTC()}
		s := wantWindows[w]
		s.c++
		s.total += n
		wantWindows[w] = s
	}

	raw := mem.Rows("raw")
	slices.SortFunc(raw, func(a, b connectortest.Row) int { return int(a["n"].(int64) - b["n"].(int64)) })
	require.Equal(t, wantRaw, raw)

	gotWindows := map[window]sums{}
	for _, row := range mem.Rows("windows") {
		w := window{row["parity"].(string), row["window_start"].(time.Time)}
		require.Equal(t, w.start.Add(10*time.Second), row["window_end"], "window end")
		require.Equal(t, int64(0), row["revision"], "a first result")
		require.Equal(t, false, row["retract"], "not a retraction")
		_, dup := gotWindows[w]
		require.False(t, dup, "one result per window and key: %v", w)
		gotWindows[w] = sums{row["c"].(int64), row["total"].(int64)}
	}
	require.Equal(t, wantWindows, gotWindows)
	require.Empty(t, mem.Rows("drop"), "a built-in sink's rows do not reach the memory sinks")
}

// A bad setting of a registered block is reported by validate and by run
// at its path and line, like a built-in block's; the loader checks the
// block's fields against its Go type.
func TestSettingsProblems(t *testing.T) {
	for _, tc := range []struct {
		name, old, repl, want string
	}{
		{"negative count", "count: 250", "count: -1", "sources[0].sequence.count: must be >= 0, got -1"},
		{"negative step", "step: 700", "step: -700", "sources[0].sequence.step: must be > 0, got -700"},
		{"negative maxRows", "maxRows: 250", "maxRows: -1", "sinks[0].memory.maxRows: must be >= 0, got -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := replaceOnce(t, pipelineFile, tc.old, tc.repl)
			want := "line " + lineOf(t, doc, tc.repl) + ": " + tc.want
			reg, _ := registry(t)
			cfg, err := reg.Parse([]byte(doc), nil)
			require.NoError(t, err)
			checked := pipeline.Check(cfg)
			require.Len(t, checked, 1)
			require.EqualError(t, checked, want)

			cfg, err = reg.Parse([]byte(doc), nil)
			require.NoError(t, err)
			_, err = pipeline.Build(cfg, pipeline.Options{})
			var built pipeline.Problems
			require.True(t, errors.As(err, &built), "Build returns Problems, got %v", err)
			require.Equal(t, checked, built)
		})
	}

	reg, _ := registry(t)
	_, err := reg.Parse([]byte(replaceOnce(t, pipelineFile, "count: 250", "cuont: 250")), nil)
	require.ErrorContains(t, err, `unknown field "cuont" (did you mean "count"?)`)
	doc := replaceOnce(t, pipelineFile, "count: 250", "count: many")
	_, err = reg.Parse([]byte(doc), nil)
	require.ErrorContains(t, err, "line "+lineOf(t, doc, "count: many")+`: sources[0].sequence.count: must be an integer, got "many"`)
}

// The kinds join the registry's type lists after the built-in ones, so
// messages that list the types name them too.
func TestRegisteredTypes(t *testing.T) {
	reg, _ := registry(t)
	require.Equal(t, connectortest.SequenceKind, reg.SourceTypes()[len(reg.SourceTypes())-1])
	require.Equal(t, connectortest.MemoryKind, reg.SinkTypes()[len(reg.SinkTypes())-1])
	_, err := connectortest.Register(reg)
	require.ErrorContains(t, err, `register source kind "sequence": already registered`)

	cfg, err := reg.Parse([]byte(replaceOnce(t, pipelineFile, "type: sequence", "type: sequense")), nil)
	require.NoError(t, err)
	require.ErrorContains(t, pipeline.Check(cfg), `unknown source type "sequense" (did you mean "sequence"?`)
}

func replaceOnce(t *testing.T, s, old, repl string) string {
	t.Helper()
	require.Equal(t, 1, strings.Count(s, old), "%q once in the document", old)
	return strings.Replace(s, old, repl, 1)
}

// lineOf is the 1-based number of the line of doc that holds s.
func lineOf(t *testing.T, doc, s string) string {
	t.Helper()
	for i, l := range strings.Split(doc, "\n") {
		if strings.Contains(l, s) {
			return strconv.Itoa(i + 1)
		}
	}
	t.Fatalf("%q is not in the document", s)
	return ""
}
