// Package nexmark_test runs the Nexmark queries of this directory over
// generated events and checks every result row against DuckDB SQL over the
// same events, and measures them (bench_test.go).
package nexmark_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
	"github.com/streamd/streamd/pkg/source/nexmark"
)

// row is one result row as JSON decodes it: numbers are float64,
// timestamps RFC 3339 strings with microseconds, in both the pipeline's
// JSON lines and the DuckDB harness's output.
type row = map[string]any

// dataset is a generated input. Queries run over two: dense events (200 per
// second of event time) give 10-second windows and sessions of many bids,
// sparse ones (one every 8 s, about 2.3 days) give several daily windows
// and every hour of the day.
type dataset struct {
	name   string
	events int64
	rate   float64
}

var datasets = []dataset{
	{name: "dense", events: 40_000, rate: 200},
	{name: "sparse", events: 25_000, rate: 1.0 / 8},
}

// benchSeed is the seed of every generated input.
const benchSeed = 42

// writeEvents writes the dataset's events to one JSON-lines file, the input
// of both the pipeline and DuckDB.
func writeEvents(t testing.TB, ds dataset, dir string) string {
	t.Helper()
	g, err := nexmark.New(nexmark.Config{Seed: benchSeed, Events: ds.events, Rate: ds.rate})
	require.NoError(t, err)
	paths, err := g.WriteFiles(dir)
	require.NoError(t, err)
	require.Len(t, paths, 1)
	return paths[0]
}

// bids and the other tables are SQL over the input file; {input} is
// replaced by its path.
const (
	events = `(SELECT * FROM read_json('{input}', format = 'newline_delimited', columns = {
		event_type: 'BIGINT', dateTime: 'BIGINT',
		bid: 'STRUCT(auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, extra VARCHAR)'}))`
	bids = `(SELECT event_type, dateTime AS ms, epoch_ms(dateTime) AS dateTime, bid.auction AS auction, bid.bidder AS bidder,
		bid.price AS price, bid.channel AS channel, bid.url AS url, bid.extra AS extra
		FROM ` + events + ` WHERE event_type = 2)`
	// ranks adds the price ranks of q15–q17.
	ranks = `(SELECT *, price < 10000 AS r1, price >= 10000 AND price < 1000000 AS r2, price >= 1000000 AS r3 FROM ` + bids + `)`
	day   = `86400000`
)

// A check says how a query's rows are compared with the SQL's.
type check struct {
	query string
	sql   string
	// key identifies a row among the results; empty means the rows are
	// compared as a multiset, every column exactly.
	key []string
	// approx: columns compared with this relative tolerance (HyperLogLog
	// estimates).
	approx map[string]float64
	// oneOf: a column whose value must be one of the comma-separated
	// values of the SQL column named (ties the query may break either way).
	oneOf map[string]string
	// unique: SQL columns that must be 1 (no tie the SQL order and the
	// query could break differently), dropped before comparing.
	unique []string
	// denseOnly: the query says nothing new on the sparse input.
	denseOnly bool
	// parquet is the sink output directory under NEXMARK_OUT of a query
	// whose Parquet sink is part of what it does (q10): the query runs with
	// that sink, and DuckDB reads its files back with their hive partition
	// columns, instead of the sink being replaced by JSON lines.
	parquet string
}

var checks = []check{
	{query: "q0", sql: `SELECT event_type, dateTime, auction, bidder, price, extra FROM ` + bids},
	{query: "q1", sql: `SELECT event_type, dateTime, auction, bidder, price::DOUBLE * 0.908::DOUBLE AS price, extra FROM ` + bids},
	{
		// Every bid, in the file of its date and minute of event time.
		query: "q10",
		sql: `SELECT auction, bidder, price, dateTime, extra, strftime(dateTime, '%Y-%m-%d') AS dt,
				strftime(dateTime, '%H-%M') AS hm FROM ` + bids,
		parquet: "q10/bids",
		// Sparse events make a directory per minute for 2.3 days, and say
		// nothing the dense ones do not.
		denseOnly: true,
	},
	{query: "q2", sql: `SELECT event_type, dateTime, auction, price FROM ` + bids + ` WHERE auction % 123 = 0`},
	{
		// Per sliding window (10 s every 2 s): the largest bid count of an
		// auction, and the auctions that have it.
		query: "q5",
		sql: `WITH w AS (SELECT auction, (ms // 2000 - k) * 2000 AS ws FROM ` + bids + `, range(0, 5) AS r(k)),
			c AS (SELECT auction, ws, count(*) AS num FROM w GROUP BY auction, ws),
			m AS (SELECT ws, max(num) AS num FROM c GROUP BY ws)
			SELECT epoch_ms(ws + 8000) AS window_start, epoch_ms(ws + 10000) AS window_end, num,
				string_agg(auction::VARCHAR, ',' ORDER BY auction) AS hot
			FROM m JOIN c USING (ws, num) GROUP BY ws, num`,
		key:   []string{"window_start"},
		oneOf: map[string]string{"auction": "hot"},
		// Sparse windows hold one or two bids: ties everywhere.
		denseOnly: true,
	},
	{
		// The highest bid of each 10-second window; of equal prices the
		// earliest bid (max_by's rule), which the SQL must not leave to a
		// tie in time as well.
		query: "q7",
		sql: `SELECT epoch_ms(w * 10000) AS window_start, epoch_ms(w * 10000 + 10000) AS window_end,
				max(price) AS price, arg_max(auction, (price, -ms)) AS auction, arg_max(bidder, (price, -ms)) AS bidder,
				arg_max(dateTime, (price, -ms)) AS bid_time, arg_max(extra, (price, -ms)) AS extra,
				count(*) FILTER (WHERE price = top AND ms = top_ms) AS ties
			FROM (SELECT *, min(ms) FILTER (WHERE price = top) OVER (PARTITION BY w) AS top_ms
				FROM (SELECT *, ms // 10000 AS w, max(price) OVER (PARTITION BY ms // 10000) AS top FROM ` + bids + `)) GROUP BY w`,
		key:    []string{"window_start"},
		unique: []string{"ties"},
	},
	{
		// A bidder's session goes on while bids are at most 10 s apart
		// (sessions that touch merge) and ends 10 s after its last bid.
		query: "q11",
		sql: `WITH s AS (SELECT bidder, ms, CASE WHEN ms - lag(ms) OVER (PARTITION BY bidder ORDER BY ms) <= 10000 THEN 0 ELSE 1 END AS new FROM ` + bids + `),
			g AS (SELECT bidder, ms, sum(new) OVER (PARTITION BY bidder ORDER BY ms ROWS UNBOUNDED PRECEDING) AS sid FROM s)
			SELECT bidder, epoch_ms(min(ms)) AS window_start, epoch_ms(max(ms) + 10000) AS window_end, count(*) AS bid_count
			FROM g GROUP BY bidder, sid`,
		key: []string{"bidder", "window_start"},
	},
	{
		query: "q12",
		sql: `SELECT bidder, epoch_ms(ms // 10000 * 10000) AS window_start, epoch_ms(ms // 10000 * 10000 + 10000) AS window_end,
				count(*) AS bid_count FROM ` + bids + ` GROUP BY bidder, ms // 10000`,
		key: []string{"bidder", "window_start"},
	},
	{
		query: "q14",
		sql: `SELECT auction, bidder, price::DOUBLE * 0.908::DOUBLE AS price,
				CASE WHEN hour(dateTime) BETWEEN 8 AND 18 THEN 'dayTime'
					WHEN hour(dateTime) <= 6 OR hour(dateTime) >= 20 THEN 'nightTime'
					ELSE 'otherTime' END AS bidTimeType,
				dateTime, extra, len(regexp_extract_all(extra, 'c')) AS c_counts
			FROM ` + bids + ` WHERE price::DOUBLE * 0.908::DOUBLE > 1000000 AND price::DOUBLE * 0.908::DOUBLE < 50000000`,
	},
	{
		query: "q15",
		sql: `SELECT epoch_ms(ms // ` + day + ` * ` + day + `) AS window_start, epoch_ms(ms // ` + day + ` * ` + day + ` + ` + day + `) AS window_end,
				count(*) AS total_bids, count(*) FILTER (WHERE r1) AS rank1_bids, count(*) FILTER (WHERE r2) AS rank2_bids,
				count(*) FILTER (WHERE r3) AS rank3_bids,
				count(DISTINCT bidder) AS total_bidders, count(DISTINCT bidder) FILTER (WHERE r1) AS rank1_bidders,
				count(DISTINCT bidder) FILTER (WHERE r2) AS rank2_bidders, count(DISTINCT bidder) FILTER (WHERE r3) AS rank3_bidders,
				count(DISTINCT auction) AS total_auctions, count(DISTINCT auction) FILTER (WHERE r1) AS rank1_auctions,
				count(DISTINCT auction) FILTER (WHERE r2) AS rank2_auctions, count(DISTINCT auction) FILTER (WHERE r3) AS rank3_auctions
			FROM ` + ranks + ` GROUP BY ms // ` + day,
		key:    []string{"window_start"},
		approx: distinctColumns,
	},
	{
		query: "q16",
		sql: `SELECT channel, epoch_ms(ms // ` + day + ` * ` + day + `) AS window_start, epoch_ms(ms // ` + day + ` * ` + day + ` + ` + day + `) AS window_end,
				max(dateTime) AS last_bid,
				count(*) AS total_bids, count(*) FILTER (WHERE r1) AS rank1_bids, count(*) FILTER (WHERE r2) AS rank2_bids,
				count(*) FILTER (WHERE r3) AS rank3_bids,
				count(DISTINCT bidder) AS total_bidders, count(DISTINCT bidder) FILTER (WHERE r1) AS rank1_bidders,
				count(DISTINCT bidder) FILTER (WHERE r2) AS rank2_bidders, count(DISTINCT bidder) FILTER (WHERE r3) AS rank3_bidders,
				count(DISTINCT auction) AS total_auctions, count(DISTINCT auction) FILTER (WHERE r1) AS rank1_auctions,
				count(DISTINCT auction) FILTER (WHERE r2) AS rank2_auctions, count(DISTINCT auction) FILTER (WHERE r3) AS rank3_auctions
			FROM ` + ranks + ` GROUP BY channel, ms // ` + day,
		key:    []string{"channel", "window_start"},
		approx: distinctColumns,
	},
	{
		query: "q17",
		sql: `SELECT auction, epoch_ms(ms // ` + day + ` * ` + day + `) AS window_start, epoch_ms(ms // ` + day + ` * ` + day + ` + ` + day + `) AS window_end,
				count(*) AS total_bids, count(*) FILTER (WHERE r1) AS rank1_bids, count(*) FILTER (WHERE r2) AS rank2_bids,
				count(*) FILTER (WHERE r3) AS rank3_bids,
				min(price) AS min_price, max(price) AS max_price, sum(price)::DOUBLE / count(*) AS avg_price, sum(price) AS sum_price
			FROM ` + ranks + ` GROUP BY auction, ms // ` + day,
		key: []string{"auction", "window_start"},
	},
	{
		query: "q21",
		sql: `SELECT * FROM (SELECT auction, bidder, price, channel,
				CASE WHEN lower(channel) = 'apple' THEN '0' WHEN lower(channel) = 'google' THEN '1'
					WHEN lower(channel) = 'facebook' THEN '2' WHEN lower(channel) = 'baidu' THEN '3'
					ELSE nullif(regexp_extract(url, '(&|^)channel_id=([^&]*)', 2), '') END AS channel_id
			FROM ` + bids + `) WHERE channel_id IS NOT NULL`,
	},
	{
		query: "q22",
		sql: `SELECT auction, bidder, price, channel, split_part(url, '/', 4) AS dir1, split_part(url, '/', 5) AS dir2,
				split_part(url, '/', 6) AS dir3 FROM ` + bids,
	},
}

// distinctColumns are the count_distinct results of q15 and q16:
// HyperLogLog estimates, within 2% of the exact count at these sizes.
var distinctColumns = map[string]float64{
	"total_bidders": 0.02, "rank1_bidders": 0.02, "rank2_bidders": 0.02, "rank3_bidders": 0.02,
	"total_auctions": 0.02, "rank1_auctions": 0.02, "rank2_auctions": 0.02, "rank3_auctions": 0.02,
}

// TestQueriesMatchSQL runs every query file over both datasets and compares
// its rows with DuckDB's answer to the query's SQL over the same file.
func TestQueriesMatchSQL(t *testing.T) {
	files, err := filepath.Glob("q*.yaml")
	require.NoError(t, err)
	checked := map[string]bool{}
	for _, c := range checks {
		checked[c.query+".yaml"] = true
	}
	for _, f := range files {
		require.True(t, checked[f], "%s has no check against SQL", f)
	}
	for _, ds := range datasets {
		t.Run(ds.name, func(t *testing.T) {
			input := writeEvents(t, ds, t.TempDir())
			for _, c := range checks {
				if c.denseOnly && ds.name != "dense" {
					continue
				}
				t.Run(c.query, func(t *testing.T) {
					var got []row
					if c.parquet != "" {
						got = runParquetQuery(t, c.query+".yaml", input, c.parquet)
					} else {
						got = runQuery(t, c.query+".yaml", input)
					}
					want := duckdb.Query(t, strings.ReplaceAll(c.sql, "{input}", input))
					require.NotEmpty(t, want, "the SQL finds rows")
					compare(t, c, got, want)
				})
			}
		})
	}
}

// runQuery runs a query file over input with its sink replaced by JSON
// lines, and returns the rows. Window rows must be final (revision 0, not
// retracted): the input is in order and nothing is late.
func runQuery(t testing.TB, file, input string) []row {
	t.Helper()
	dir := t.TempDir()
	cfg, err := pipeline.Load(file, func(k string) (string, bool) {
		switch k {
		case "NEXMARK_INPUT":
			return input, true
		case "NEXMARK_OUT":
			return dir, true
		}
		return "", false
	})
	require.NoError(t, err)
	require.Len(t, cfg.Sinks, 1)
	out := filepath.Join(dir, "results.jsonl")
	cfg.Sinks[0].Type = "file"
	cfg.Sinks[0].File = &pipeline.JSONFileConfig{Path: out}
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Run(context.Background()))
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	var rows []row
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var r row
		require.NoError(t, dec.Decode(&r))
		if rev, ok := r["revision"]; ok {
			require.Equal(t, 0.0, rev, "%v", r)
			require.Equal(t, false, r["retract"], "%v", r)
			delete(r, "revision")
			delete(r, "retract")
		}
		rows = append(rows, r)
	}
	return rows
}

// runParquetQuery runs a query file over input as it is, with its Parquet
// sink writing under a temporary NEXMARK_OUT, and returns the rows DuckDB
// reads back from the files below out, the hive partition columns
// included (as strings, as the directory names spell them).
func runParquetQuery(t testing.TB, file, input, out string) []row {
	t.Helper()
	dir := t.TempDir()
	cfg, err := pipeline.Load(file, func(k string) (string, bool) {
		switch k {
		case "NEXMARK_INPUT":
			return input, true
		case "NEXMARK_OUT":
			return dir, true
		}
		return "", false
	})
	require.NoError(t, err)
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	require.NoError(t, rt.Run(context.Background()))
	files, err := filepath.Glob(filepath.Join(dir, out, "*", "*", "*.parquet"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "the query published Parquet files")
	return duckdb.Query(t, `SELECT * FROM read_parquet('`+filepath.Join(dir, out)+`/*/*/*.parquet',
		hive_partitioning = true, hive_types = {'dt': VARCHAR, 'hm': VARCHAR})`)
}

func compare(t *testing.T, c check, got, want []row) {
	t.Helper()
	for _, w := range want {
		for _, col := range c.unique {
			require.Equal(t, 1.0, w[col], "the SQL's result is decided by a tie: %v", w)
			delete(w, col)
		}
	}
	if len(c.key) == 0 {
		require.Equal(t, canonical(t, want), canonical(t, got))
		return
	}
	byKey := func(rows []row) map[string]row {
		m := make(map[string]row, len(rows))
		for _, r := range rows {
			k := fmt.Sprint(keyOf(r, c.key))
			if _, dup := m[k]; dup {
				require.Failf(t, "duplicate key", "two rows for key %s", k)
			}
			m[k] = r
		}
		return m
	}
	g, w := byKey(got), byKey(want)
	require.Equal(t, slices.Sorted(maps.Keys(w)), slices.Sorted(maps.Keys(g)), "the same windows")
	for k, wr := range w {
		gr := g[k]
		for col, list := range c.oneOf {
			require.Contains(t, strings.Split(wr[list].(string), ","), fmt.Sprint(gr[col]), "%s: %s", k, col)
			delete(wr, list)
			wr[col] = gr[col]
		}
		for col, tol := range c.approx {
			wv, gv := wr[col].(float64), gr[col].(float64)
			require.LessOrEqual(t, math.Abs(gv-wv), tol*wv+1, "%s: %s = %v, SQL says %v", k, col, gv, wv)
			wr[col] = gr[col]
		}
		require.Equal(t, wr, gr, "row %s", k)
	}
}

func keyOf(r row, key []string) []any {
	out := make([]any, len(key))
	for i, k := range key {
		out[i] = r[k]
	}
	return out
}

// canonical is the rows as sorted JSON texts (encoding/json sorts keys).
func canonical(t *testing.T, rows []row) []string {
	t.Helper()
	out := make([]string, len(rows))
	for i, r := range rows {
		b, err := json.Marshal(r)
		require.NoError(t, err)
		out[i] = string(b)
	}
	slices.Sort(out)
	return out
}

// TestQueryFilesValidate checks every query file as `streamd validate`
// does, with no environment variables set, so the defaults in the files are
// what is checked.
func TestQueryFilesValidate(t *testing.T) {
	files, err := filepath.Glob("q*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			cfg, err := pipeline.Load(f, func(string) (string, bool) { return "", false })
			require.NoError(t, err)
			require.Empty(t, pipeline.Check(cfg))
		})
	}
}
