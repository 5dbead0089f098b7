package window

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// testSchema covers every type an aggregate accepts; "n" is a float column
// that tests fill with nulls.
var testSchema = record.MustSchema(
	record.Field{Name: "i", Type: record.TypeInt},
	record.Field{Name: "f", Type: record.TypeFloat},
	record.Field{Name: "s", Type: record.TypeString},
	record.Field{Name: "ts", Type: record.TypeTimestamp},
	record.Field{Name: "b", Type: record.TypeBool},
	record.Field{Name: "n", Type: record.TypeFloat},
	record.Field{Name: "u", Type: record.TypeNull},
)

// timedRow is an input row with its event time.
type timedRow struct {
	t   int64
	row record.Row
}

// row builds a testSchema row; nil means null.
func row(t int64, i, f, s, ts any) timedRow {
	r := make(record.Row, testSchema.Len())
	if i != nil {
		r[0] = record.Int(int64(i.(int)))
	}
	if f != nil {
		r[1] = record.Float(f.(float64))
	}
	if s != nil {
		r[2] = record.String(s.(string))
	}
	if ts != nil {
		r[3] = record.Timestamp(int64(ts.(int)))
	}
	return timedRow{t: t, row: r}
}

func mustAggregate(t testing.TB, spec Spec) Aggregate {
	t.Helper()
	agg, err := NewAggregate(spec, testSchema)
	require.NoError(t, err)
	return agg
}

func addAll(agg Aggregate, a *Acc, rows []timedRow) {
	for _, r := range rows {
		agg.Add(a, r.row, r.t)
	}
}

func TestNewAggregateErrors(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"missing fn", Spec{}, `aggregate: fn is required (want count, sum, min, max, avg, first, last, count_distinct, quantile, max_by, min_by)`},
		{"unknown fn", Spec{Fn: "median", Field: "f"}, `aggregate: unknown function "median" (want count, sum, min, max, avg, first, last, count_distinct, quantile, max_by, min_by)`},
		{"missing field", Spec{Fn: "sum"}, `aggregate sum: field is required`},
		{"unknown field", Spec{Fn: "sum", Field: "x"}, `aggregate sum: field "x" is not in the input (fields: i, f, s, ts, b, n, u)`},
		{"count unknown field", Spec{Fn: "count", Field: "x"}, `aggregate count: field "x" is not in the input (fields: i, f, s, ts, b, n, u)`},
		{"sum of string", Spec{Fn: "sum", Field: "s"}, `aggregate sum: field "s" is string, want int or float`},
		{"avg of timestamp", Spec{Fn: "avg", Field: "ts"}, `aggregate avg: field "ts" is timestamp, want int or float`},
		{"quantile of string", Spec{Fn: "quantile", Field: "s", Q: 0.5}, `aggregate quantile: field "s" is string, want int or float`},
		{"quantile q zero", Spec{Fn: "quantile", Field: "f"}, `aggregate quantile: q must be in (0,1), got 0`},
		{"quantile q one", Spec{Fn: "quantile", Field: "f", Q: 1}, `aggregate quantile: q must be in (0,1), got 1`},
		{"quantile q NaN", Spec{Fn: "quantile", Field: "f", Q: math.NaN()}, `aggregate quantile: q must be in (0,1), got NaN`},
		{"q on sum", Spec{Fn: "sum", Field: "f", Q: 0.5}, `aggregate sum: q is only used by quantile`},
		{"by on max", Spec{Fn: "max", Field: "f", By: "i"}, `aggregate max: by is only used by max_by and min_by`},
		{"max_by without by", Spec{Fn: "max_by", Field: "s"}, `aggregate max_by: by is required`},
		{"max_by unknown by", Spec{Fn: "max_by", Field: "s", By: "x"}, `aggregate max_by: by "x" is not in the input (fields: i, f, s, ts, b, n, u)`},
		{"min of untyped", Spec{Fn: "min", Field: "u"}, `aggregate min: field "u" has no concrete type (null)`},
		{"min_by untyped by", Spec{Fn: "min_by", Field: "s", By: "u"}, `aggregate min_by: field "u" has no concrete type (null)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAggregate(tt.spec, testSchema)
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestNewAggregateNameAndType(t *testing.T) {
	tests := []struct {
		spec     Spec
		wantName string
		wantType record.Type
	}{
		{Spec{Fn: "count"}, "count", record.TypeInt},
		{Spec{Fn: "count", Field: "s"}, "count_s", record.TypeInt},
		{Spec{Fn: "sum", Field: "i"}, "sum_i", record.TypeInt},
		{Spec{Fn: "sum", Field: "f"}, "sum_f", record.TypeFloat},
		{Spec{Fn: "min", Field: "s"}, "min_s", record.TypeString},
		{Spec{Fn: "max", Field: "ts"}, "max_ts", record.TypeTimestamp},
		{Spec{Fn: "avg", Field: "i"}, "avg_i", record.TypeFloat},
		{Spec{Fn: "first", Field: "s"}, "first_s", record.TypeString},
		{Spec{Fn: "last", Field: "b"}, "last_b", record.TypeBool},
		{Spec{Fn: "count_distinct", Field: "s"}, "count_distinct_s", record.TypeInt},
		{Spec{Fn: "count_distinct", Field: "u"}, "count_distinct_u", record.TypeInt},
		{Spec{Fn: "quantile", Field: "f", Q: 0.99}, "p99_f", record.TypeFloat},
		{Spec{Fn: "quantile", Field: "f", Q: 0.5}, "p50_f", record.TypeFloat},
		{Spec{Fn: "quantile", Field: "f", Q: 0.999}, "p999_f", record.TypeFloat},
		{Spec{Fn: "quantile", Field: "f", Q: 0.05}, "p05_f", record.TypeFloat},
		{Spec{Fn: "max_by", Field: "s", By: "f"}, "max_by_s", record.TypeString},
		{Spec{Fn: "min_by", Field: "i", By: "ts"}, "min_by_i", record.TypeInt},
		{Spec{Fn: "sum", Field: "f", As: "total"}, "total", record.TypeFloat},
	}
	for _, tt := range tests {
		t.Run(tt.wantName, func(t *testing.T) {
			agg := mustAggregate(t, tt.spec)
			require.Equal(t, tt.wantName, agg.Name())
			require.Equal(t, tt.wantType, agg.Type())
		})
	}
}

func TestAggregateResults(t *testing.T) {
	rows := []timedRow{
		row(20, 5, 2.5, "m", 300),
		row(10, nil, nil, nil, nil),
		row(10, -3, 7.0, "z", 100),
		row(30, 4, -1.0, "a", 200),
		row(10, 9, 7.0, "q", 400),   // ties t=10 with the third row
		row(30, nil, 1.0, "b", nil), // ties t=30 with the fourth row
	}
	tests := []struct {
		spec Spec
		want record.Value
	}{
		{Spec{Fn: "count"}, record.Int(6)},
		{Spec{Fn: "count", Field: "i"}, record.Int(4)},
		{Spec{Fn: "sum", Field: "i"}, record.Int(15)},
		{Spec{Fn: "sum", Field: "f"}, record.Float(16.5)},
		{Spec{Fn: "avg", Field: "i"}, record.Float(3.75)},
		{Spec{Fn: "avg", Field: "f"}, record.Float(3.3)},
		{Spec{Fn: "min", Field: "i"}, record.Int(-3)},
		{Spec{Fn: "max", Field: "f"}, record.Float(7)},
		{Spec{Fn: "min", Field: "s"}, record.String("a")},
		{Spec{Fn: "max", Field: "s"}, record.String("z")},
		{Spec{Fn: "max", Field: "ts"}, record.Timestamp(400)},
		{Spec{Fn: "first", Field: "s"}, record.String("z")}, // earliest t, earliest arrival
		{Spec{Fn: "last", Field: "s"}, record.String("b")},  // latest t, latest arrival
		{Spec{Fn: "first", Field: "ts"}, record.Timestamp(100)},
		{Spec{Fn: "last", Field: "i"}, record.Int(4)}, // the later t=30 row has a null i
		{Spec{Fn: "count_distinct", Field: "f"}, record.Int(4)},
		{Spec{Fn: "count_distinct", Field: "s"}, record.Int(5)},
		{Spec{Fn: "max_by", Field: "s", By: "f"}, record.String("z")}, // tie on 7: first arrival
		{Spec{Fn: "min_by", Field: "s", By: "f"}, record.String("a")},
		{Spec{Fn: "max_by", Field: "i", By: "ts"}, record.Int(9)},
		{Spec{Fn: "min_by", Field: "f", By: "s"}, record.Float(-1)},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s(%s,%s)", tt.spec.Fn, tt.spec.Field, tt.spec.By)
		t.Run(name, func(t *testing.T) {
			agg := mustAggregate(t, tt.spec)
			var a Acc
			addAll(agg, &a, rows)
			require.Equal(t, tt.want, agg.Result(&a))
		})
	}
}

func TestAggregateQuantileAccuracy(t *testing.T) {
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99} {
		t.Run(quantilePrefix(q), func(t *testing.T) {
			agg := mustAggregate(t, Spec{Fn: "quantile", Field: "i", Q: q})
			var a Acc
			for v := 1; v <= 10000; v++ {
				agg.Add(&a, row(0, v, nil, nil, nil).row, 0)
			}
			want := q * 10000
			got := agg.Result(&a).Float()
			require.InEpsilon(t, want, got, 0.02)
		})
	}
}

func TestAggregateCountDistinctLarge(t *testing.T) {
	agg := mustAggregate(t, Spec{Fn: "count_distinct", Field: "i"})
	var a Acc
	for v := range 100000 {
		agg.Add(&a, row(0, v%50000, nil, nil, nil).row, 0)
	}
	require.InEpsilon(t, 50000, float64(agg.Result(&a).Int()), 0.02)
}

func TestAggregateNullsAndEmpty(t *testing.T) {
	nulls := []timedRow{row(1, nil, nil, nil, nil), row(2, nil, nil, nil, nil)}
	for _, spec := range allSpecs() {
		t.Run(spec.Fn, func(t *testing.T) {
			agg := mustAggregate(t, spec)
			want := record.Null
			switch {
			case spec.Fn == FnCount && spec.Field == "":
				want = record.Int(2)
			case spec.Fn == FnCount || spec.Fn == FnCountDistinct:
				want = record.Int(0)
			}
			var a Acc
			addAll(agg, &a, nulls)
			require.Equal(t, want, agg.Result(&a), "all nulls")
			if spec.Fn == FnCount && spec.Field == "" {
				want = record.Int(0)
			}
			require.Equal(t, want, agg.Result(&Acc{}), "empty")
		})
	}
}

func TestAggregateNaNSkippedByExtremes(t *testing.T) {
	rows := []timedRow{row(1, 1, math.NaN(), "x", nil), row(2, 2, 3.0, "y", nil), row(3, 3, math.NaN(), "z", nil)}
	for _, tt := range []struct {
		spec Spec
		want record.Value
	}{
		{Spec{Fn: "max", Field: "f"}, record.Float(3)},
		{Spec{Fn: "min", Field: "f"}, record.Float(3)},
		{Spec{Fn: "max_by", Field: "s", By: "f"}, record.String("y")},
		{Spec{Fn: "quantile", Field: "f", Q: 0.5}, record.Float(3)},
	} {
		t.Run(tt.spec.Fn, func(t *testing.T) {
			agg := mustAggregate(t, tt.spec)
			var a Acc
			addAll(agg, &a, rows)
			got := agg.Result(&a)
			if tt.spec.Fn == FnQuantile {
				require.InEpsilon(t, tt.want.Float(), got.Float(), 0.01)
				return
			}
			require.Equal(t, tt.want, got)
		})
	}
}

// allSpecs returns one spec per function (two for count), over fields that
// the random rows fill with nulls, ties and repeats.
func allSpecs() []Spec {
	return []Spec{
		{Fn: "count"},
		{Fn: "count", Field: "f"},
		{Fn: "sum", Field: "i"},
		{Fn: "sum", Field: "f"},
		{Fn: "avg", Field: "f"},
		{Fn: "min", Field: "f"},
		{Fn: "max", Field: "i"},
		{Fn: "min", Field: "s"},
		{Fn: "max", Field: "s"},
		{Fn: "first", Field: "s"},
		{Fn: "last", Field: "s"},
		{Fn: "count_distinct", Field: "s"},
		{Fn: "quantile", Field: "f", Q: 0.9},
		{Fn: "max_by", Field: "s", By: "i"},
		{Fn: "min_by", Field: "s", By: "f"},
	}
}

// randomRows draws rows with about 20% nulls per field, few distinct times
// and values (so ties are common), and small integers so float sums are exact
// regardless of order.
func randomRows(r *rand.Rand, n int) []timedRow {
	rows := make([]timedRow, n)
	maybe := func(v any) any {
		if r.IntN(5) == 0 {
			return nil
		}
		return v
	}
	for k := range rows {
		rows[k] = row(int64(r.IntN(8)),
			maybe(r.IntN(20)-10),
			maybe(float64(r.IntN(40)-20)),
			maybe(fmt.Sprintf("s%02d", r.IntN(30))),
			maybe(r.IntN(1000)))
	}
	return rows
}

func TestAggregateMergeEqualsAddAll(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, spec := range allSpecs() {
		t.Run(spec.Fn+"_"+spec.Field, func(t *testing.T) {
			agg := mustAggregate(t, spec)
			for trial := range 50 {
				rows := randomRows(r, r.IntN(40))
				cut := 0
				if len(rows) > 0 {
					cut = r.IntN(len(rows) + 1)
				}
				var all, a, b Acc
				addAll(agg, &all, rows)
				addAll(agg, &a, rows[:cut])
				addAll(agg, &b, rows[cut:])
				bBefore := agg.Result(&b)

				agg.Merge(&a, &b)
				require.Equal(t, agg.Result(&all), agg.Result(&a), "trial %d cut %d/%d", trial, cut, len(rows))
				require.Equal(t, all.N, a.N)

				// src stays usable: a slice is merged into several windows.
				addAll(agg, &a, rows)
				require.Equal(t, bBefore, agg.Result(&b), "merge must not alias src")

				// Merging into an empty accumulator copies.
				var empty Acc
				agg.Merge(&empty, &all)
				require.Equal(t, agg.Result(&all), agg.Result(&empty))
				agg.Merge(&all, &Acc{})
				require.Equal(t, agg.Result(&empty), agg.Result(&all))
			}
		})
	}
}

// arenaRow returns a row whose string lives in buf, as batch strings live in
// the batch arena.
func arenaRow(buf []byte) record.Row {
	r := make(record.Row, testSchema.Len())
	r[1] = record.Float(float64(buf[0]))
	r[2] = record.String(unsafe.String(unsafe.SliceData(buf), len(buf)))
	return r
}

func TestAggregateStringsOutliveBatch(t *testing.T) {
	for _, spec := range []Spec{
		{Fn: "min", Field: "s"},
		{Fn: "max", Field: "s"},
		{Fn: "first", Field: "s"},
		{Fn: "last", Field: "s"},
		{Fn: "max_by", Field: "s", By: "f"},
		{Fn: "min_by", Field: "f", By: "s"},
	} {
		t.Run(spec.Fn, func(t *testing.T) {
			agg := mustAggregate(t, spec)
			buf := []byte("mmm")
			var a Acc
			agg.Add(&a, arenaRow(buf), 1)
			want := agg.Result(&a).Clone()
			copy(buf, "zzz") // the arena is reused by the next batch
			require.Equal(t, want, agg.Result(&a))
		})
	}
}

func TestAggregateRepeatedStringDoesNotAllocate(t *testing.T) {
	agg := mustAggregate(t, Spec{Fn: "last", Field: "s"})
	buf := []byte("steady")
	rw := arenaRow(buf)
	var a Acc
	agg.Add(&a, rw, 0)
	ts := int64(0)
	allocs := testing.AllocsPerRun(100, func() {
		ts++
		agg.Add(&a, rw, ts)
	})
	require.Zero(t, allocs)
	require.Equal(t, record.String("steady"), agg.Result(&a))
}

func TestAggregateAddZeroAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	rows := make([]record.Row, 256)
	for k := range rows {
		rows[k] = row(0, nil, r.Float64()*100, nil, nil).row
	}
	for _, spec := range []Spec{
		{Fn: "count"},
		{Fn: "sum", Field: "f"},
		{Fn: "avg", Field: "f"},
		{Fn: "min", Field: "f"},
		{Fn: "max", Field: "f"},
	} {
		t.Run(spec.Fn, func(t *testing.T) {
			agg := mustAggregate(t, spec)
			var a, b Acc
			k := 0
			allocs := testing.AllocsPerRun(1000, func() {
				agg.Add(&a, rows[k%len(rows)], int64(k))
				agg.Merge(&b, &a)
				_ = agg.Result(&b)
				k++
			})
			require.Zero(t, allocs)
		})
	}
}

func BenchmarkAggregateAdd(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	rows := make([]record.Row, 1024)
	for k := range rows {
		rows[k] = row(0, r.IntN(100000), r.ExpFloat64()*100, fmt.Sprintf("user-%d", r.IntN(5000)), nil).row
	}
	for _, spec := range []Spec{
		{Fn: "count"},
		{Fn: "sum", Field: "f"},
		{Fn: "avg", Field: "f"},
		{Fn: "max", Field: "f"},
		{Fn: "max", Field: "s"},
		{Fn: "last", Field: "s"},
		{Fn: "quantile", Field: "f", Q: 0.99},
		{Fn: "count_distinct", Field: "i"},
		{Fn: "count_distinct", Field: "s"},
	} {
		agg := mustAggregate(b, spec)
		b.Run(agg.Name(), func(b *testing.B) {
			var a Acc
			b.ReportAllocs()
			k := 0
			for b.Loop() {
				agg.Add(&a, rows[k&1023], int64(k))
				k++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func BenchmarkAggregateMerge(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, spec := range []Spec{
		{Fn: "avg", Field: "f"},
		{Fn: "quantile", Field: "f", Q: 0.99},
		{Fn: "count_distinct", Field: "i"},
	} {
		agg := mustAggregate(b, spec)
		var slice Acc
		for range 1000 {
			agg.Add(&slice, row(0, r.IntN(100000), r.ExpFloat64()*100, nil, nil).row, 0)
		}
		b.Run(agg.Name(), func(b *testing.B) {
			var win Acc
			agg.Merge(&win, &slice)
			b.ReportAllocs()
			for b.Loop() {
				agg.Merge(&win, &slice)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "merges/s")
		})
	}
}

// TestCountDistinctAcrossDensify checks the estimate of count_distinct
// against the exact count of what was drawn, around the insertion count at
// which its sketch turns dense, with values repeated in a random order, and
// that a dense and a sparse sketch merge into the estimate of the union in
// either order.
func TestCountDistinctAcrossDensify(t *testing.T) {
	agg := mustAggregate(t, Spec{Fn: "count_distinct", Field: "i"})
	r := rand.New(rand.NewPCG(9, 10))
	build := func(lo, distinct, inserts int) (*Acc, int) {
		var a Acc
		seen := map[int]bool{}
		for range inserts {
			v := lo + r.IntN(distinct)
			seen[v] = true
			agg.Add(&a, row(0, v, nil, nil, nil).row, 0)
		}
		return &a, len(seen)
	}
	within := func(t *testing.T, a *Acc, want int) {
		t.Helper()
		got := agg.Result(a).Int()
		require.InDelta(t, want, got, 0.02*float64(want)+1, "estimate %d of %d distinct values", got, want)
	}
	for _, tc := range []struct{ distinct, inserts int }{
		{100, denseAfter - 1}, {100, denseAfter + 1}, {3000, denseAfter + 500},
		{20_000, 3 * denseAfter}, {200_000, 2_000_000},
	} {
		t.Run(fmt.Sprintf("%d/%d", tc.distinct, tc.inserts), func(t *testing.T) {
			a, want := build(0, tc.distinct, tc.inserts)
			within(t, a, want)
		})
	}
	// A dense sketch (many insertions) and a sparse one (few) over
	// disjoint values merge into their union's count.
	dense, nd := build(0, 1000, 4*denseAfter)
	sparse, ns := build(1_000_000, 300, 1000)
	within(t, sparse, ns)
	var x, y Acc
	agg.Merge(&x, dense)
	agg.Merge(&x, sparse)
	agg.Merge(&y, sparse)
	agg.Merge(&y, dense)
	within(t, &x, nd+ns)
	within(t, &y, nd+ns)
}

// Few distinct values are counted exactly, on either side of the switch
// from a set of hashes to a sketch, and every pairing of the two forms
// merges into the count of the union; a snapshot keeps the count.
func TestCountDistinctSmallSets(t *testing.T) {
	agg := mustAggregate(t, Spec{Fn: "count_distinct", Field: "i"})
	build := func(lo, n, repeats int) *Acc {
		var a Acc
		for range repeats {
			for v := lo; v < lo+n; v++ {
				agg.Add(&a, row(0, v, nil, nil, nil).row, 0)
			}
		}
		return &a
	}
	check := func(t *testing.T, a *Acc, want int) {
		t.Helper()
		got := agg.Result(a).Int()
		if want <= smallDistinctMax {
			require.Equal(t, int64(want), got)
		} else {
			require.InDelta(t, want, got, 0.02*float64(want)+1)
		}
		var back Acc
		_, err := ReadAcc(AppendAcc(nil, a), &back)
		require.NoError(t, err)
		require.Equal(t, got, agg.Result(&back).Int(), "after a snapshot")
	}
	sizes := []int{1, 7, smallDistinctMax, smallDistinctMax + 1, 300, 5000}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			check(t, build(0, n, 3), n)
		})
	}
	for _, n := range sizes {
		for _, m := range sizes {
			t.Run(fmt.Sprintf("merge %d+%d", n, m), func(t *testing.T) {
				// The second set overlaps the first by half its size.
				a, b := build(0, n, 1), build(n-n/2, m, 1)
				union := max(n, n-n/2+m)
				var x Acc
				agg.Merge(&x, a)
				agg.Merge(&x, b)
				check(t, &x, union)
				// The merged-in sets are unchanged (slices merge into
				// several windows).
				check(t, a, n)
				check(t, b, m)
			})
		}
	}
}
