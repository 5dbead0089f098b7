package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

const hostilePipeline = `
name: hostile
http: {listen: "off"}
checkpoint: {dir: "${OUT}/checkpoints"}
sources:
  - name: strict
    type: file
    file: {paths: ["${OUT}/strict.jsonl"]}
    decode:
      fields: &fields
        - {name: key, type: string, required: true}
        - {name: note, type: string}
        - {name: v, type: float}
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
    eventTime: {field: ts}
  - name: lenient
    type: file
    file: {paths: ["${OUT}/lenient.jsonl"]}
    decode:
      invalidUTF8: replace
      emptyRecords: deadLetter
      fields: *fields
    eventTime: {field: ts}
stages:
  - name: per-key
    input: strict
    keyBy: [key]
    window: {type: tumbling, size: 1m}
    aggregates: [{fn: count, as: n}]
sinks:
  - {name: strict-rows, input: strict, type: parquet, parquet: {path: "${OUT}/strict"}}
  - {name: lenient-rows, input: lenient, type: parquet, parquet: {path: "${OUT}/lenient"}}
  - {name: windows, input: per-key, type: parquet, parquet: {path: "${OUT}/windows"}}
  - {name: dlq, input: deadletters, type: parquet, parquet: {path: "${OUT}/deadletters"}}
`

// hostileInput writes the bad inputs of a careless producer or an attacker
// between good records, and returns the expected outcome counted from what
// it wrote: rows kept per source, dead letters per source and reason,
// empty records per source and repaired records.
type hostileInput struct {
	lines []string
	rows  int
	dead  map[string]int // reason → dead letters
	empty int
	fixed int // records kept with U+FFFD
}

func (h *hostileInput) add(n int, reason string, line func(i int) string) {
	for i := range n {
		h.lines = append(h.lines, line(i))
	}
	switch reason {
	case "":
		h.rows += n
	case "empty":
		h.empty += n
	case "fixed":
		h.rows += n
		h.fixed += n
	default:
		h.dead[reason] += n
	}
}

func (h *hostileInput) write(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(h.lines, "\n")+"\n"), 0o600))
}

const t0 = 1767225600000 // 2026-01-01T00:00:00Z

func good(i int) string {
	return fmt.Sprintf(`{"key":"m%d","note":"ok","v":%d,"ts":%d}`, i%4, i, t0+int64(i)*1000)
}

// TestHostileInput: every bad input of the issue ends up where it belongs,
// with the exact dead-letter count per reason, and every Parquet file the
// real sink writes, the dead letters' included, is readable by DuckDB.
func TestHostileInput(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	out := t.TempDir()

	strict := &hostileInput{dead: map[string]int{}}
	strict.add(20, "", good)
	strict.add(3, "invalid_utf8", func(i int) string { return fmt.Sprintf("{\"key\":\"k\xff\xfe%d\",\"ts\":%d}", i, t0) })
	strict.add(2, "invalid_utf8", func(i int) string { return fmt.Sprintf("{\"key\":\"m1\",\"note\":\"caf\xc3\",\"ts\":%d}", t0) })
	strict.add(1, "invalid_utf8", func(i int) string { return fmt.Sprintf("{\"key\":\"\xed\xa0\x80\",\"ts\":%d}", t0) })
	strict.add(2, "key_too_large", func(i int) string { return fmt.Sprintf(`{"key":"%s","ts":%d}`, strings.Repeat("k", 5000+i), t0) })
	strict.add(1, "record_too_large", func(i int) string {
		return fmt.Sprintf(`{"key":"%s","ts":%d}`, strings.Repeat("k", 5<<20), t0) // the 5 MB key
	})
	strict.add(4, "empty", func(i int) string { return []string{"", "   ", "\r", "\t"}[i] })
	strict.add(2, "invalid_json", func(i int) string { return []string{`{"key":"m1"`, "\xff\xfe{"}[i] })
	strict.add(5, "", func(i int) string { return good(100 + i) })
	strict.write(t, filepath.Join(out, "strict.jsonl"))

	lenient := &hostileInput{dead: map[string]int{}}
	lenient.add(10, "", good)
	lenient.add(3, "fixed", func(i int) string { return fmt.Sprintf("{\"key\":\"k\xff\xfe\",\"note\":\"n%d\",\"ts\":%d}", i, t0) })
	lenient.add(2, "empty_record", func(i int) string { return "" })
	lenient.write(t, filepath.Join(out, "lenient.jsonl"))
	lenient.empty = 2 // counted as empty and dead-lettered

	cfg, err := pipeline.Parse([]byte(hostilePipeline), func(k string) (string, bool) { return out, k == "OUT" })
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	job, err := pipeline.Build(cfg, pipeline.Options{Registry: reg})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, rt.Run(ctx))

	// Metrics: dead letters by source and reason, empty and repaired records.
	for src, in := range map[string]*hostileInput{"strict": strict, "lenient": lenient} {
		for _, reason := range []string{"invalid_utf8", "key_too_large", "record_too_large", "invalid_json", "empty_record"} {
			got := gauge(t, reg, "streamd_deadletter_records_total", map[string]string{"source": src, "reason": reason})
			require.Equal(t, float64(in.dead[reason]), got, "%s dead letters with reason %s", src, reason)
		}
		require.Equal(t, float64(in.empty), gauge(t, reg, "streamd_empty_records_total", map[string]string{"source": src}), "%s empty records", src)
		require.Equal(t, float64(in.fixed), gauge(t, reg, "streamd_repaired_records_total", map[string]string{"source": src, "reason": "invalid_utf8"}), "%s repaired", src)
	}

	// Every Parquet file reads back in DuckDB, which refuses a whole file
	// with one invalid string ("Invalid string encoding").
	glob := func(dir string) string { return filepath.Join(out, dir, "**", "*.parquet") }
	rows := duckdb.Query(t, fmt.Sprintf(`SELECT count(*) AS n, count(*) FILTER (WHERE key LIKE '%%'||chr(65533)||'%%') AS fixed FROM read_parquet('%s')`, glob("strict")))
	require.Equal(t, float64(strict.rows), rows[0]["n"])
	require.Equal(t, float64(0), rows[0]["fixed"])
	rows = duckdb.Query(t, fmt.Sprintf(`SELECT count(*) AS n, count(*) FILTER (WHERE key = 'k'||chr(65533)) AS fixed FROM read_parquet('%s')`, glob("lenient")))
	require.Equal(t, float64(lenient.rows), rows[0]["n"])
	require.Equal(t, float64(lenient.fixed), rows[0]["fixed"])
	rows = duckdb.Query(t, fmt.Sprintf(`SELECT sum(n) AS n FROM read_parquet('%s')`, glob("windows")))
	require.Equal(t, float64(strict.rows), rows[0]["n"], "every kept record is counted in a window")

	rows = duckdb.Query(t, fmt.Sprintf(`SELECT source, reason, count(*) AS n, max(length(raw)) AS longest FROM read_parquet('%s') GROUP BY ALL ORDER BY ALL`, glob("deadletters")))
	got := map[string]float64{}
	for _, r := range rows {
		got[r["source"].(string)+"/"+r["reason"].(string)] = r["n"].(float64)
	}
	want := map[string]float64{}
	for src, in := range map[string]*hostileInput{"strict": strict, "lenient": lenient} {
		for reason, n := range in.dead {
			want[src+"/"+reason] = float64(n)
		}
	}
	require.Equal(t, want, got)
}

// gauge reads the sample of a counter or gauge family with labels; absent is 0.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
