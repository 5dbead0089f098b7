package crash_test

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
)

// resultRow is one published window result.
type resultRow struct {
	Machine     string
	Tag         string
	WindowStart int64 // epoch ms
	WindowEnd   int64
	Revision    int64
	Count       int64
	Sum         float64
	Min         float64
	Max         float64
}

func (r resultRow) String() string {
	return fmt.Sprintf("%s/%s [%s, %s) rev %d: n=%d sum=%g min=%g max=%g", r.Machine, r.Tag,
		time.UnixMilli(r.WindowStart).UTC().Format("2006-01-02T15:04"), time.UnixMilli(r.WindowEnd).UTC().Format("15:04"),
		r.Revision, r.Count, r.Sum, r.Min, r.Max)
}

// window identifies a result up to its values.
type window struct {
	Machine, Tag string
	WindowStart  int64
	Revision     int64
}

func (r resultRow) window() window { return window{r.Machine, r.Tag, r.WindowStart, r.Revision} }

// readResults reads every published Parquet file under dir with DuckDB and
// returns the multiset of rows. Hidden in-progress files (".part-…") do not
// match the glob; published files are "part-*.parquet".
func readResults(t *testing.T, dir string) (rows map[resultRow]int, files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name := d.Name(); !d.IsDir() && strings.HasPrefix(name, "part-") && strings.HasSuffix(name, ".parquet") {
			files++
		}
		return nil
	})
	require.NoError(t, err, "walk %s", dir)
	rows = make(map[resultRow]int)
	if files == 0 {
		return rows, 0
	}
	glob := strings.ReplaceAll(filepath.ToSlash(dir), "'", "''") + "/**/part-*.parquet"
	res := duckdb.Query(t, `SELECT machine, tag, epoch_ms(window_start) AS ws, epoch_ms(window_end) AS we,
		revision, n, total, lo, hi FROM read_parquet('`+glob+`', hive_partitioning = true)`)
	for _, m := range res {
		r := resultRow{
			Machine: str(m["machine"]), Tag: str(m["tag"]), WindowStart: int64(num(t, m["ws"])), WindowEnd: int64(num(t, m["we"])),
			Revision: int64(num(t, m["revision"])), Count: int64(num(t, m["n"])), Sum: num(t, m["total"]), Min: num(t, m["lo"]), Max: num(t, m["hi"]),
		}
		rows[r]++
	}
	return rows, files
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(t *testing.T, v any) float64 {
	t.Helper()
	f, ok := v.(float64)
	require.True(t, ok, "duckdb returned %T %v for a number", v, v)
	return f
}

// diff describes how a run's published results differ from the wanted ones.
type diff struct {
	Rows, WantRows int
	// Duplicates counts rows published more than once (extra copies).
	Duplicates int
	// Missing are windows wanted but absent; Extra are windows published but
	// not wanted; Changed are windows present in both with other values.
	Missing, Extra, Changed []resultRow
	// Revisions counts published rows per revision.
	Revisions map[int64]int
	// DuplicateSamples are a few duplicated rows with their multiplicity.
	DuplicateSamples []string
}

func (d diff) ok() bool {
	return d.Duplicates == 0 && len(d.Missing) == 0 && len(d.Extra) == 0 && len(d.Changed) == 0 && d.Rows == d.WantRows
}

// String is the report printed when results differ.
func (d diff) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rows %d (want %d), duplicate copies %d, missing windows %d, extra windows %d, windows with other values %d, rows per revision %v",
		d.Rows, d.WantRows, d.Duplicates, len(d.Missing), len(d.Extra), len(d.Changed), d.Revisions)
	sample := func(title string, rows []resultRow) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n  %s (first %d of %d):", title, min(5, len(rows)), len(rows))
		for _, r := range rows[:min(5, len(rows))] {
			fmt.Fprintf(&b, "\n    %s", r)
		}
	}
	if len(d.DuplicateSamples) > 0 {
		fmt.Fprintf(&b, "\n  duplicated (first %d):", len(d.DuplicateSamples))
		for _, s := range d.DuplicateSamples {
			fmt.Fprintf(&b, "\n    %s", s)
		}
	}
	sample("missing", d.Missing)
	sample("extra", d.Extra)
	sample("other values (published)", d.Changed)
	return b.String()
}

// compare diffs the multiset got against want. Every window result must
// appear exactly once with the wanted values.
func compare(want, got map[resultRow]int) diff {
	d := diff{Revisions: make(map[int64]int)}
	wantBy := make(map[window]resultRow)
	for r, n := range want {
		d.WantRows += n
		wantBy[r.window()] = r
	}
	gotBy := make(map[window][]resultRow)
	var dups []resultRow
	for r, n := range got {
		d.Rows += n
		d.Revisions[r.Revision] += n
		gotBy[r.window()] = append(gotBy[r.window()], r)
		if n > 1 {
			d.Duplicates += n - 1
			dups = append(dups, r)
		}
	}
	for w, r := range wantBy {
		rs, ok := gotBy[w]
		switch {
		case !ok:
			d.Missing = append(d.Missing, r)
		case len(rs) > 1 || rs[0] != r:
			for _, x := range rs {
				if x != r {
					d.Changed = append(d.Changed, x)
				}
			}
		}
	}
	for w, rs := range gotBy {
		if _, ok := wantBy[w]; !ok {
			d.Extra = append(d.Extra, rs...)
		}
	}
	sortRows(d.Missing)
	sortRows(d.Extra)
	sortRows(d.Changed)
	sortRows(dups)
	for _, r := range dups[:min(5, len(dups))] {
		d.DuplicateSamples = append(d.DuplicateSamples, fmt.Sprintf("%s ×%d", r, got[r]))
	}
	return d
}

func sortRows(rows []resultRow) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.WindowStart != b.WindowStart {
			return a.WindowStart < b.WindowStart
		}
		if a.Machine != b.Machine {
			return a.Machine < b.Machine
		}
		if a.Tag != b.Tag {
			return a.Tag < b.Tag
		}
		return a.Revision < b.Revision
	})
}

func TestCompare(t *testing.T) {
	r := func(machine string, start, n int64) resultRow {
		return resultRow{Machine: machine, Tag: "t0", WindowStart: start, WindowEnd: start + 60000, Count: n, Sum: float64(n), Min: 1, Max: 1}
	}
	want := map[resultRow]int{r("a", 0, 1): 1, r("b", 0, 2): 1, r("a", 60000, 3): 1}
	tests := []struct {
		name                                       string
		got                                        map[resultRow]int
		ok                                         bool
		duplicates, missing, extra, changed, nrows int
	}{
		{"equal", map[resultRow]int{r("a", 0, 1): 1, r("b", 0, 2): 1, r("a", 60000, 3): 1}, true, 0, 0, 0, 0, 3},
		{"duplicate", map[resultRow]int{r("a", 0, 1): 2, r("b", 0, 2): 1, r("a", 60000, 3): 1}, false, 1, 0, 0, 0, 4},
		{"missing", map[resultRow]int{r("a", 0, 1): 1, r("b", 0, 2): 1}, false, 0, 1, 0, 0, 2},
		{"extra", map[resultRow]int{r("a", 0, 1): 1, r("b", 0, 2): 1, r("a", 60000, 3): 1, r("c", 0, 1): 1}, false, 0, 0, 1, 0, 4},
		{"changed", map[resultRow]int{r("a", 0, 1): 1, r("b", 0, 5): 1, r("a", 60000, 3): 1}, false, 0, 0, 0, 1, 3},
		{"partial and full", map[resultRow]int{r("a", 0, 1): 1, r("b", 0, 1): 1, r("b", 0, 2): 1, r("a", 60000, 3): 1}, false, 0, 0, 0, 1, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := compare(want, tt.got)
			require.Equal(t, tt.ok, d.ok(), d.String())
			require.Equal(t, tt.duplicates, d.Duplicates)
			require.Len(t, d.Missing, tt.missing)
			require.Len(t, d.Extra, tt.extra)
			require.Len(t, d.Changed, tt.changed)
			require.Equal(t, tt.nrows, d.Rows)
			require.Equal(t, 3, d.WantRows)
		})
	}
}
