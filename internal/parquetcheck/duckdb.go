package parquetcheck

import (
	"fmt"
	"strings"
	"testing"
)

// ReadDuckDB reads files with DuckDB: the footer with parquet_metadata and
// parquet_schema, the values with read_parquet, and for every column chunk
// the min, max and null count that SQL computes over the values of its row
// group (Chunk.WantMin, WantMax, WantNulls), formatted as DuckDB formats
// the statistics, so the two can be compared as text.
func ReadDuckDB(t testing.TB, files []string, cols []Column) []File {
	t.Helper()
	list := sqlList(files)
	out := make([]File, len(files))
	index := make(map[string]int, len(files))
	for i, f := range files {
		out[i] = File{Path: f}
		index[f] = i
	}
	fileOf := func(row map[string]any, col string) *File {
		name, _ := row[col].(string)
		i, ok := index[name]
		if !ok {
			t.Fatalf("duckdb: result names unknown file %q", name)
		}
		return &out[i]
	}

	for _, r := range duckQuery(t, `SELECT file_name, name, type, duckdb_type FROM parquet_schema(`+list+`)
		WHERE num_children IS NULL ORDER BY file_name, column_id`) {
		f := fileOf(r, "file_name")
		f.Schema = append(f.Schema, Leaf{Name: str(r["name"]), Physical: str(r["type"]), DuckDB: str(r["duckdb_type"])})
	}

	for _, r := range duckQuery(t, `SELECT file_name, row_group_id, row_group_num_rows, column_id, path_in_schema,
		type, encodings, compression, num_values, stats_min_value, stats_max_value, stats_null_count
		FROM parquet_metadata(`+list+`) ORDER BY file_name, row_group_id, column_id`) {
		f := fileOf(r, "file_name")
		rg := int(num(r["row_group_id"]))
		for len(f.RowGroups) <= rg {
			f.RowGroups = append(f.RowGroups, RowGroup{})
		}
		g := &f.RowGroups[rg]
		g.NumRows = num(r["row_group_num_rows"])
		ch := Chunk{
			Path:      strings.Split(str(r["path_in_schema"]), ", "),
			Physical:  str(r["type"]),
			Encodings: strings.Split(str(r["encodings"]), ", "),
			Codec:     str(r["compression"]),
			NumValues: num(r["num_values"]),
			Min:       optStr(r["stats_min_value"]),
			Max:       optStr(r["stats_max_value"]),
		}
		if r["stats_null_count"] != nil {
			n := num(r["stats_null_count"])
			ch.NullCount = &n
		}
		g.Columns = append(g.Columns, ch)
	}
	for i := range out {
		var n int64
		for _, rg := range out[i].RowGroups {
			n += rg.NumRows
		}
		out[i].NumRows = n
	}

	// Values, each row placed in its row group by its row number.
	names := make([]string, len(cols))
	for j, c := range cols {
		names[j] = quoteIdent(c.Name)
	}
	src := `read_parquet(` + list + `, filename=true, file_row_number=true, hive_partitioning=false)`
	for _, r := range duckQuery(t, `SET TimeZone='UTC'; SELECT filename, file_row_number, `+strings.Join(names, ", ")+
		` FROM `+src+` ORDER BY filename, file_row_number`) {
		f := fileOf(r, "filename")
		g := rowGroupOf(t, f, num(r["file_row_number"]))
		row := make([]*string, len(cols))
		for j, c := range cols {
			v, err := duckValue(c.Kind, r[c.Name])
			if err != nil {
				t.Fatalf("duckdb: %s column %s: %v", f.Path, c.Name, err)
			}
			row[j] = v
		}
		g.Rows = append(g.Rows, row)
	}

	// Statistics as SQL computes them from the values.
	var parts []string
	for j, c := range cols {
		col := quoteIdent(c.Name)
		mn, mx := "min("+col+")::VARCHAR", "max("+col+")::VARCHAR"
		if c.Kind == Float {
			// NaN is not a bound; DuckDB shows an infinite bound as NULL.
			f := " FILTER (WHERE NOT isnan(" + col + "))"
			mn = "CASE WHEN isinf(min(" + col + ")" + f + ") THEN NULL ELSE (min(" + col + ")" + f + ")::VARCHAR END"
			mx = "CASE WHEN isinf(max(" + col + ")" + f + ") THEN NULL ELSE (max(" + col + ")" + f + ")::VARCHAR END"
		}
		parts = append(parts, fmt.Sprintf(`SELECT d.filename, b.row_group_id, %d AS column_id,
			%s AS mn, %s AS mx, count(*) - count(%s) AS nulls
			FROM d JOIN b ON d.filename = b.file_name AND d.file_row_number >= b.lo AND d.file_row_number < b.hi
			GROUP BY d.filename, b.row_group_id`, j, mn, mx, col))
	}
	sql := `SET TimeZone='UTC';
		WITH d AS (SELECT * FROM ` + src + `),
		g AS (SELECT DISTINCT file_name, row_group_id, row_group_num_rows FROM parquet_metadata(` + list + `)),
		b AS (SELECT file_name, row_group_id,
			sum(row_group_num_rows) OVER (PARTITION BY file_name ORDER BY row_group_id) AS hi,
			sum(row_group_num_rows) OVER (PARTITION BY file_name ORDER BY row_group_id) - row_group_num_rows AS lo FROM g)
		` + strings.Join(parts, "\nUNION ALL\n")
	for _, r := range duckQuery(t, sql) {
		f := fileOf(r, "filename")
		rg, j := int(num(r["row_group_id"])), int(num(r["column_id"]))
		if rg >= len(f.RowGroups) || j >= len(f.RowGroups[rg].Columns) {
			t.Fatalf("duckdb: %s has no row group %d column %d", f.Path, rg, j)
		}
		ch := &f.RowGroups[rg].Columns[j]
		ch.WantMin, ch.WantMax, ch.WantNulls = optStr(r["mn"]), optStr(r["mx"]), num(r["nulls"])
	}
	return out
}

func rowGroupOf(t testing.TB, f *File, row int64) *RowGroup {
	var lo int64
	for i := range f.RowGroups {
		if row < lo+f.RowGroups[i].NumRows {
			return &f.RowGroups[i]
		}
		lo += f.RowGroups[i].NumRows
	}
	t.Fatalf("duckdb: %s row %d is past its row groups", f.Path, row)
	return nil
}

func sqlList(files []string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = "'" + strings.ReplaceAll(f, "'", "''") + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func str(v any) string {
	s, _ := v.(string)
	return s
}

func optStr(v any) *string {
	if v == nil {
		return nil
	}
	s := fmt.Sprint(v)
	return &s
}

// num reads an integer the harness printed as a JSON number or, past
// 2^53, as a decimal string.
func num(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case string:
		var x int64
		_, _ = fmt.Sscan(n, &x)
		return x
	}
	return 0
}
