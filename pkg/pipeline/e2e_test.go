package pipeline_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
	"github.com/streamd/streamd/pkg/source/generator"
)

const e2ePipeline = `
name: e2e
parallelism: 2
batchSize: 256
http: {listen: "off"}
checkpoint: {dir: "${OUT}/checkpoints", interval: 200ms}
sources:
  - name: points
    type: generator
    generator:
      seed: 7
      count: 4000
      splits: 3
      machines: 6
      tags: 3
      startTime: "2026-01-01T05:58:00Z"
      step: 50ms
      outOfOrderness: 2s
      lateFraction: 0.01
      lateBy: 3m
      malformedFraction: 0.01
    decode:
      fields:
        - {name: equipmentId, type: string, required: true}
        - {name: tag, type: string, required: true}
        - {name: value, type: float, required: true}
        - {name: quality, type: string}
        - {name: ts, path: timestamp, type: timestamp, format: epoch_ms, required: true}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 3s}
steps:
  - filter: 'quality == "Ok"'
stages:
  - name: per-machine
    keyBy: [equipmentId, tag]
    window: {type: tumbling, size: 1m}
    allowedLateness: 10m
    aggregates:
      - {fn: count, as: n}
      - {fn: avg, field: value, as: avg_value}
      - {fn: max, field: value, as: max_value}
    alerts:
      - {name: hot, when: 'tag == "water_temperature" && max_value > 16', severity: warning}
sinks:
  - name: windows
    input: per-machine
    type: parquet
    parquet: {path: "${OUT}/windows", partition: "dt={date}/hour={hour}/tag={tag}"}
  - name: deadletters
    input: deadletters
    type: file
    file: {path: "${OUT}/deadletters.jsonl"}
  - name: late
    input: late
    type: file
    file: {path: "${OUT}/late.jsonl"}
  - name: alerts
    input: alerts
    type: file
    file: {path: "${OUT}/alerts.jsonl"}
`

type winKey struct {
	equipment, tag string
	start          int64
}

type winVal struct {
	n        int64
	sum, max float64
}

// TestEndToEnd runs a generator → decode → filter → keyed windows →
// Parquet pipeline and checks every window value read back by DuckDB
// against results computed directly from the generator's records.
func TestEndToEnd(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	out := t.TempDir()
	cfg, err := pipeline.Parse([]byte(e2ePipeline), func(k string) (string, bool) {
		if k == "OUT" {
			return out, true
		}
		return "", false
	})
	require.NoError(t, err)
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, rt.Run(ctx))

	// Expected results straight from the generator.
	start, _ := time.Parse(time.RFC3339, "2026-01-01T05:58:00Z")
	gen, err := generator.New(generator.Config{Seed: 7, Count: 4000, Splits: 3, Machines: 6, Tags: 3, StartTime: start,
		Step: 50 * time.Millisecond, OutOfOrderness: 2 * time.Second, LateFraction: 0.01, LateBy: 3 * time.Minute, MalformedFraction: 0.01})
	require.NoError(t, err)
	want := map[winKey]*winVal{}
	malformed := map[string]int{}
	late := 0
	for s := 0; s < 3; s++ {
		for n := int64(0); n < 4000; n++ {
			p := gen.Point(s, n)
			if p.Malformed != generator.WellFormed {
				malformed[p.Malformed.String()]++
				continue
			}
			if p.Late {
				late++
			}
			if p.Quality != "Ok" {
				continue
			}
			k := winKey{p.EquipmentID, p.Tag, p.Timestamp - ((p.Timestamp%60000)+60000)%60000}
			v := want[k]
			if v == nil {
				v = &winVal{max: math.Inf(-1)}
				want[k] = v
			}
			v.n++
			v.sum += p.Value
			v.max = math.Max(v.max, p.Value)
		}
	}
	require.Greater(t, late, 0, "the input must contain late records")

	// Late records within the allowed lateness re-emit their window with a
	// higher revision: the newest revision of each window is its result.
	rows := duckdb.Query(t, fmt.Sprintf(`
		SELECT equipmentId, tag, epoch_ms(window_start) AS start, n, avg_value, max_value, dt, hour
		FROM read_parquet('%s/windows/**/*.parquet', hive_partitioning = true, hive_types = {'hour': VARCHAR})
		QUALIFY revision = max(revision) OVER (PARTITION BY equipmentId, tag, window_start)`, out))
	require.Len(t, rows, len(want), "one result per window and key")
	for _, r := range rows {
		k := winKey{r["equipmentId"].(string), r["tag"].(string), int64(r["start"].(float64))}
		v, ok := want[k]
		require.True(t, ok, "unexpected window %+v", k)
		require.EqualValues(t, v.n, r["n"], "count of %+v", k)
		require.InDelta(t, v.sum/float64(v.n), r["avg_value"], 1e-9, "avg of %+v", k)
		require.InDelta(t, v.max, r["max_value"], 1e-9, "max of %+v", k)
		ts := time.UnixMilli(k.start).UTC()
		require.Equal(t, ts.Format("2006-01-02"), r["dt"], "dt partition of %+v", k)
		require.Equal(t, ts.Format("15"), r["hour"], "hour partition of %+v", k)
	}
	hours := duckdb.Query(t, fmt.Sprintf(`SELECT DISTINCT hour FROM read_parquet('%s/windows/**/*.parquet', hive_partitioning = true, hive_types = {'hour': VARCHAR}) ORDER BY hour`, out))
	require.Equal(t, []map[string]any{{"hour": "05"}, {"hour": "06"}}, hours, "zero-padded hour partitions")

	// Every malformed record is a dead letter with its reason and position.
	reasons := map[string]int{}
	for _, dl := range readJSONLines(t, filepath.Join(out, "deadletters.jsonl")) {
		reasons[dl["reason"].(string)]++
		require.NotEmpty(t, dl["position"])
		require.NotEmpty(t, dl["raw"])
	}
	require.Equal(t, map[string]int{
		"invalid_json":     malformed["truncated"],
		"missing_field":    malformed["missing_equipment_id"],
		"type_mismatch":    malformed["value_as_string"],
		"future_timestamp": malformed["far_future"],
	}, reasons)
	require.Empty(t, readJSONLines(t, filepath.Join(out, "late.jsonl")), "all late records are within the allowed lateness")

	alerts := readJSONLines(t, filepath.Join(out, "alerts.jsonl"))
	hot := 0
	for k, v := range want {
		if k.tag == "water_temperature" && v.max > 16 {
			hot++
		}
	}
	require.Positive(t, hot)
	ids := map[string]bool{}
	first := 0
	for _, a := range alerts {
		require.False(t, ids[a["alert_id"].(string)], "alert ids are unique")
		ids[a["alert_id"].(string)] = true
		if a["revision"].(float64) == 0 {
			first++
		}
	}
	require.LessOrEqual(t, first, hot)
	require.GreaterOrEqual(t, len(alerts), 1)
}

func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

// TestCancelDrains stops an unbounded pipeline the way SIGTERM does: the
// sources stop, everything read is drained through the windows (which fire)
// into closed Parquet files, and no goroutine is left behind.
func TestCancelDrains(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	out := t.TempDir()
	doc := `
name: drain
http: {listen: "off"}
# Without checkpoints a stop drains: windows fire, files are published.
checkpoint: {enabled: false}
sources:
  - name: points
    type: generator
    generator: {seed: 3, rate: 20000, splits: 2, machines: 4, tags: 2}
    decode:
      fields:
        - {name: equipmentId, type: string}
        - {name: tag, type: string}
        - {name: value, type: float}
        - {name: ts, path: timestamp, type: timestamp, format: epoch_ms}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 1s}
stages:
  - name: w
    keyBy: [equipmentId]
    window: {type: tumbling, size: 1h}
    aggregates: [{fn: count, as: n}]
sinks:
  - {name: pq, input: w, type: parquet, parquet: {path: "` + out + `"}}
`
	cfg, err := pipeline.Parse([]byte(doc), nil)
	require.NoError(t, err)
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	var read int64
	for read < 5000 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		read = 0
		for _, s := range rt.Status().Splits {
			read += s.Records
		}
	}
	require.GreaterOrEqual(t, read, int64(5000), "the pipeline reads records")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// The hour-long windows were open when the pipeline stopped: draining
	// fired them, so every record read is counted in the output.
	rows := duckdb.Query(t, fmt.Sprintf(`SELECT sum(n) AS n, count(*) AS windows FROM read_parquet('%s/*.parquet')`, out))
	require.GreaterOrEqual(t, rows[0]["n"].(float64), float64(read))
	require.Positive(t, rows[0]["windows"])
}

// TestParquetSinkFilterRoutes routes one stream to two Parquet tables by
// a filter on each sink, next to an unfiltered sink of the same stream:
// the two tables are disjoint, each holds only its rows, and together they
// are the unfiltered table, row for row.
func TestParquetSinkFilterRoutes(t *testing.T) {
	out := t.TempDir()
	doc := `
name: routes
http: {listen: "off"}
checkpoint: {dir: "${OUT}/checkpoints"}
sources:
  - name: points
    type: generator
    generator: {seed: 5, count: 3000, splits: 2, machines: 4, tags: 3, startTime: "2026-01-01T05:58:00Z", step: 50ms}
    decode:
      fields:
        - {name: equipmentId, type: string}
        - {name: tag, type: string}
        - {name: value, type: float}
        - {name: ts, path: timestamp, type: timestamp, format: epoch_ms}
    eventTime: {field: ts}
sinks:
  - {name: all, input: points, type: parquet, parquet: {path: "${OUT}/all"}}
  - name: water
    input: points
    type: parquet
    parquet: {path: "${OUT}/water", filter: 'tag == "water_temperature"', partition: "dt={date}/hour={hour}"}
  - name: other
    input: points
    type: parquet
    parquet: {path: "${OUT}/other", filter: 'tag != "water_temperature"'}
`
	cfg, err := pipeline.Parse([]byte(doc), func(k string) (string, bool) { return out, k == "OUT" })
	require.NoError(t, err)
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Run(context.Background()))

	src := func(dir string) string {
		return fmt.Sprintf("(SELECT equipmentId, tag, value, ts FROM read_parquet('%s/%s/**/*.parquet', hive_partitioning=false))", out, dir)
	}
	rows := duckdb.Query(t, fmt.Sprintf(`SELECT
		(SELECT count(*) FROM %[1]s) AS all_rows,
		(SELECT count(*) FROM %[2]s) AS water_rows,
		(SELECT count(*) FROM %[2]s WHERE tag != 'water_temperature') AS water_wrong,
		(SELECT count(*) FROM %[3]s WHERE tag = 'water_temperature') AS other_wrong,
		(SELECT count(*) FROM (SELECT * FROM %[1]s EXCEPT ALL (SELECT * FROM %[2]s UNION ALL SELECT * FROM %[3]s))) AS missing,
		(SELECT count(*) FROM ((SELECT * FROM %[2]s UNION ALL SELECT * FROM %[3]s) EXCEPT ALL SELECT * FROM %[1]s)) AS extra`,
		src("all"), src("water"), src("other")))
	require.Len(t, rows, 1)
	r := rows[0]
	require.Greater(t, r["all_rows"], 1000.0)
	require.Greater(t, r["water_rows"], 0.0)
	require.Less(t, r["water_rows"], r["all_rows"])
	for _, k := range []string{"water_wrong", "other_wrong", "missing", "extra"} {
		require.Equal(t, 0.0, r[k], k)
	}
}

// TestNestedAndExtraFieldsReachParquet reads JSON lines whose producers
// added fields and nested objects: a json field keeps a nested object
// whole, the extras field keeps every undeclared key, and DuckDB reads
// both back as JSON from the Parquet files.
// TestNestedColumnsFromYAML declares struct, list and map fields in a
// pipeline file: the Parquet sink writes them as groups that DuckDB reads as
// STRUCT, LIST and MAP and queries with SQL, a JSON lines sink writes them as
// JSON objects and arrays, and a message whose nested member has the wrong
// type is a dead letter naming the member.
func TestNestedColumnsFromYAML(t *testing.T) {
	out := t.TempDir()
	in := filepath.Join(out, "in.jsonl")
	var lines []byte
	for i := range 100 {
		lines = fmt.Appendf(lines, `{"ts":%d,"geo":{"lat":%d.5,"city":"c%d"},"tags":["a%d","b"],"attrs":{"k":"v%d"},"spans":[{"name":"s","dur":%d},{}]}`+"\n",
			1767243600000+int64(i), i, i%3, i, i, i)
	}
	lines = append(lines, `{"ts":1767243600000,"geo":{"lat":"north"}}`+"\n"...)
	require.NoError(t, os.WriteFile(in, lines, 0o644))
	doc := `
name: nested-columns
http: {listen: "off"}
checkpoint: {dir: "${OUT}/checkpoints"}
sources:
  - name: lines
    type: file
    file: {paths: ["${OUT}/in.jsonl"]}
    decode:
      fields:
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
        - name: geo
          type: struct
          fields: [{name: lat, type: float}, {name: city, type: string}]
        - {name: tags, type: list, items: {type: string}}
        - {name: attrs, type: map, values: {type: string}}
        - name: spans
          type: list
          items: {type: struct, fields: [{name: name, type: string}, {name: dur, type: int}]}
    eventTime: {field: ts}
sinks:
  - {name: lake, input: lines, type: parquet, parquet: {path: "${OUT}/lake"}}
  - {name: copy, input: lines, type: file, file: {path: "${OUT}/copy.jsonl"}}
  - {name: dead, input: deadletters, type: file, file: {path: "${OUT}/dead.jsonl"}}
`
	cfg, err := pipeline.Parse([]byte(doc), func(k string) (string, bool) { return out, k == "OUT" })
	require.NoError(t, err)
	require.Empty(t, pipeline.Check(cfg))
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Run(context.Background()))

	src := fmt.Sprintf("read_parquet('%s/lake/**/*.parquet', hive_partitioning=false)", out)
	types := duckdb.Query(t, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+src+") ORDER BY column_name")
	require.Equal(t, []map[string]any{
		{"column_name": "attrs", "column_type": "MAP(VARCHAR, VARCHAR)"},
		{"column_name": "geo", "column_type": "STRUCT(lat DOUBLE, city VARCHAR)"},
		{"column_name": "spans", "column_type": `STRUCT("name" VARCHAR, dur BIGINT)[]`},
		{"column_name": "tags", "column_type": "VARCHAR[]"},
		{"column_name": "ts", "column_type": "TIMESTAMP WITH TIME ZONE"},
	}, types)
	rows := duckdb.Query(t, `SELECT geo.lat AS lat, geo.city AS city, tags[1] AS tag, attrs['k'] AS k,
		spans[1].dur AS dur, spans[2].name AS none, len(spans) AS n FROM `+src+` ORDER BY lat`)
	require.Len(t, rows, 100)
	for i, r := range rows {
		require.Equal(t, float64(i)+0.5, r["lat"])
		require.Equal(t, fmt.Sprintf("c%d", i%3), r["city"])
		require.Equal(t, fmt.Sprintf("a%d", i), r["tag"])
		require.Equal(t, fmt.Sprintf("v%d", i), r["k"])
		require.EqualValues(t, i, r["dur"])
		require.Nil(t, r["none"])
		require.EqualValues(t, 2, r["n"])
	}

	copied, err := os.ReadFile(filepath.Join(out, "copy.jsonl"))
	require.NoError(t, err)
	first, _, _ := strings.Cut(string(copied), "\n")
	require.Equal(t, `{"ts":"2026-01-01T05:00:00.000000Z","geo":{"lat":0.5,"city":"c0"},"tags":["a0","b"],"attrs":{"k":"v0"},"spans":[{"name":"s","dur":0},{}]}`, first)
	dead, err := os.ReadFile(filepath.Join(out, "dead.jsonl"))
	require.NoError(t, err)
	require.Contains(t, string(dead), "type_mismatch")
	require.Contains(t, string(dead), `field \"geo.lat\": want float, got string`)
}

func TestNestedAndExtraFieldsReachParquet(t *testing.T) {
	out := t.TempDir()
	in := filepath.Join(out, "in.jsonl")
	var lines []byte
	for i := range 200 {
		lines = fmt.Appendf(lines, `{"ts":%d,"svc":"api","meta":{"seq":%d,"tags":["x","y"],"deep":{"z":%d}},"added_%d":{"v":[%d]},"note":"n%d"}`+"\n",
			1767243600000+int64(i), i, i*2, i%3, i, i)
	}
	require.NoError(t, os.WriteFile(in, lines, 0o644))
	doc := `
name: nested
http: {listen: "off"}
checkpoint: {dir: "${OUT}/checkpoints"}
sources:
  - name: lines
    type: file
    file: {paths: ["${OUT}/in.jsonl"]}
    decode:
      fields:
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
        - {name: svc, type: string}
        - {name: meta, type: json}
      extras: extras
    eventTime: {field: ts}
sinks:
  - {name: lake, input: lines, type: parquet, parquet: {path: "${OUT}/lake"}}
`
	cfg, err := pipeline.Parse([]byte(doc), func(k string) (string, bool) { return out, k == "OUT" })
	require.NoError(t, err)
	require.Empty(t, pipeline.Check(cfg))
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Run(context.Background()))

	src := fmt.Sprintf("read_parquet('%s/lake/**/*.parquet')", out)
	types := duckdb.Query(t, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+src+") ORDER BY column_name")
	require.Equal(t, []map[string]any{
		{"column_name": "extras", "column_type": "JSON"},
		{"column_name": "meta", "column_type": "JSON"},
		{"column_name": "svc", "column_type": "VARCHAR"},
		{"column_name": "ts", "column_type": "TIMESTAMP WITH TIME ZONE"},
	}, types)
	rows := duckdb.Query(t, `SELECT CAST(meta->>'$.seq' AS INTEGER) AS seq, meta->>'$.deep.z' AS z, meta->'$.tags' AS tags,
		extras->>'$.note' AS note, json_keys(extras) AS keys FROM `+src+` ORDER BY seq`)
	require.Len(t, rows, 200)
	for i, r := range rows {
		require.EqualValues(t, i, r["seq"])
		require.Equal(t, fmt.Sprint(i*2), r["z"])
		require.Equal(t, `["x","y"]`, r["tags"])
		require.Equal(t, fmt.Sprintf("n%d", i), r["note"])
		require.Equal(t, []any{fmt.Sprintf("added_%d", i%3), "note"}, r["keys"])
	}
}
