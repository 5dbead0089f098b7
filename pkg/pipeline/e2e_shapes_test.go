package pipeline_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

// The window shapes that need more than adding records — sliding windows
// whose slide does not divide their size, sessions merged by late records,
// and a stage reading the updates of a stage with allowed lateness — run
// through the whole pipeline into Parquet and JSON lines. DuckDB reads the
// decoded input back and computes every expected window with SQL; the
// output, read with the documented reader contract (the row with the
// highest revision of each window, unless it is a retraction), must match
// it row for row.
const shapesPipeline = `
name: shapes
parallelism: 3
batchSize: 64
http: {listen: "off"}
checkpoint: {dir: "${OUT}/checkpoints"}
sources:
  - name: points
    type: generator
    generator:
      seed: 11
      count: 2500
      splits: 3
      machines: 5
      tags: 2
      startTime: "2026-01-01T05:50:00Z"
      step: 200ms
      outOfOrderness: 2s
      lateFraction: 0.03
      lateBy: 90s
    decode:
      fields:
        - {name: equipmentId, type: string, required: true}
        - {name: tag, type: string, required: true}
        - {name: value, type: float, required: true}
        - {name: ts, path: timestamp, type: timestamp, format: epoch_ms, required: true}
    eventTime: {field: ts}
    watermark: {maxOutOfOrderness: 3s}
stages:
  - name: sliding
    input: points
    keyBy: [equipmentId, tag]
    window: {type: sliding, size: 5m, slide: 2m}
    allowedLateness: 5m
    aggregates:
      - {fn: count, as: n}
      - {fn: sum, field: value, as: total}
      - {fn: max, field: value, as: top}
  - name: sessions
    input: points
    keyBy: [equipmentId, tag]
    window: {type: session, gap: 1500ms}
    allowedLateness: 5m
    aggregates:
      - {fn: count, as: n}
      - {fn: sum, field: value, as: total}
  - name: per-machine
    input: points
    keyBy: [equipmentId, tag]
    window: {type: tumbling, size: 1m}
    allowedLateness: 5m
    aggregates:
      - {fn: count, as: n}
  - name: per-tag
    input: per-machine
    keyBy: [tag]
    window: {type: tumbling, size: 1m}
    aggregates:
      - {fn: count, as: machines}
      - {fn: sum, field: n, as: records}
sinks:
  - {name: input, input: points, type: parquet, parquet: {path: "${OUT}/input"}}
  - {name: sliding, input: sliding, type: parquet, parquet: {path: "${OUT}/sliding", partition: "dt={date}"}}
  - {name: sessions, input: sessions, type: parquet, parquet: {path: "${OUT}/sessions"}}
  - {name: sessions-json, input: sessions, type: file, file: {path: "${OUT}/sessions.jsonl"}}
  - {name: per-tag, input: per-tag, type: parquet, parquet: {path: "${OUT}/per-tag"}}
  - {name: late, input: late, type: file, file: {path: "${OUT}/late.jsonl"}}
`

func TestEndToEndWindowShapes(t *testing.T) {
	out := t.TempDir()
	cfg, err := pipeline.Parse([]byte(shapesPipeline), func(k string) (string, bool) {
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
	require.Empty(t, readJSONLines(t, filepath.Join(out, "late.jsonl")), "every late record is within the allowed lateness, so SQL over all input is the expected result")

	input := fmt.Sprintf(`(SELECT equipmentId, tag, value, epoch_ms(ts) AS t FROM read_parquet('%s/input/**/*.parquet'))`, out)
	// current keeps, per window, the row with the highest revision unless it
	// withdraws the window: the reader contract of docs/windows.md.
	current := func(from, identity string) string {
		return fmt.Sprintf(`(SELECT * FROM %s QUALIFY row_number() OVER (PARTITION BY %s ORDER BY revision DESC) = 1) WHERE NOT retract`, from, identity)
	}
	parquet := func(dir string) string {
		return fmt.Sprintf(`read_parquet('%s/%s/**/*.parquet', hive_partitioning = false)`, out, dir)
	}
	// Sums are rounded: floating-point addition in another order differs
	// in the last bits.
	same := func(name, want, got string) {
		t.Helper()
		// Both directions of the difference must be empty, and the counts equal.
		rows := duckdb.Query(t, fmt.Sprintf(`WITH want AS (%s), got AS (%s)
			SELECT (SELECT count(*) FROM want) AS want_rows, (SELECT count(*) FROM got) AS got_rows,
			       (SELECT count(*) FROM (SELECT * FROM want EXCEPT ALL SELECT * FROM got)) AS missing,
			       (SELECT count(*) FROM (SELECT * FROM got EXCEPT ALL SELECT * FROM want)) AS extra`, want, got))
		require.Len(t, rows, 1)
		r := rows[0]
		require.Positive(t, r["want_rows"], name)
		require.Equal(t, r["want_rows"], r["got_rows"], "%s: rows", name)
		require.EqualValues(t, 0, r["missing"], "%s: windows missing or with other values", name)
		require.EqualValues(t, 0, r["extra"], "%s: windows that should not exist", name)
	}

	// Flink's sliding windows: starts at multiples of the slide (2m), so a
	// record at t is in every [s, s+5m) with t-5m < s <= t.
	same("sliding 5m/2m",
		fmt.Sprintf(`SELECT equipmentId, tag, s AS start, s + 300000 AS "end", count(*) AS n, round(sum(value), 6) AS total, max(value) AS top
			FROM %s, LATERAL (SELECT unnest(generate_series(((t - 300000) // 120000 + 1) * 120000, (t // 120000) * 120000, 120000)) AS s)
			GROUP BY ALL`, input),
		fmt.Sprintf(`SELECT equipmentId, tag, epoch_ms(window_start) AS start, epoch_ms(window_end) AS "end", n, round(total, 6) AS total, top FROM %s`,
			current(parquet("sliding"), "equipmentId, tag, window_start")))

	// Sessions: [t, t+gap) per record, merged where they overlap or touch;
	// late records merged sessions, whose replaced rows were withdrawn.
	sessions := fmt.Sprintf(`WITH g AS (SELECT *, CASE WHEN t - lag(t) OVER (PARTITION BY equipmentId, tag ORDER BY t) <= 1500 THEN 0 ELSE 1 END AS brk FROM %s),
		s AS (SELECT *, sum(brk) OVER (PARTITION BY equipmentId, tag ORDER BY t ROWS UNBOUNDED PRECEDING) AS sid FROM g)
		SELECT equipmentId, tag, min(t) AS start, max(t) + 1500 AS "end", count(*) AS n, round(sum(value), 6) AS total FROM s GROUP BY equipmentId, tag, sid`, input)
	same("sessions in Parquet", sessions,
		fmt.Sprintf(`SELECT equipmentId, tag, epoch_ms(window_start) AS start, epoch_ms(window_end) AS "end", n, round(total, 6) AS total FROM %s`,
			current(parquet("sessions"), "equipmentId, tag, window_start, window_end")))
	same("sessions in JSON lines", sessions,
		fmt.Sprintf(`SELECT equipmentId, tag, epoch_ms(window_start::TIMESTAMP) AS start, epoch_ms(window_end::TIMESTAMP) AS "end", n, round(total, 6) AS total FROM %s`,
			current(fmt.Sprintf(`read_json('%s/sessions.jsonl', format = 'newline_delimited')`, out), "equipmentId, tag, window_start, window_end")))
	retracted := duckdb.Query(t, fmt.Sprintf(`SELECT count(*) AS n FROM %s WHERE retract`, parquet("sessions")))
	require.Positive(t, retracted[0]["n"], "late records must have merged sessions, so the test covers retractions")

	// The stage after a stage with allowed lateness: machines per tag and
	// minute, and their records, each window once.
	same("per-tag after per-machine",
		fmt.Sprintf(`SELECT tag, (t // 60000) * 60000 AS start, count(DISTINCT equipmentId) AS machines, count(*) AS records FROM %s GROUP BY ALL`, input),
		fmt.Sprintf(`SELECT tag, epoch_ms(window_start) AS start, machines, records FROM %s`, current(parquet("per-tag"), "tag, window_start")))
	revs := duckdb.Query(t, fmt.Sprintf(`SELECT max(revision) AS rev, bool_or(retract) AS retract FROM %s`, parquet("per-tag")))
	require.EqualValues(t, 0, revs[0]["rev"], "the downstream stage fires once, on complete input")
	require.Equal(t, false, revs[0]["retract"])
}
