package window

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

func wordSpecs() []Spec {
	return []Spec{
		{Fn: "count"},
		{Fn: "count", Field: "f"},
		{Fn: "sum", Field: "i"},
		{Fn: "sum", Field: "f"},
		{Fn: "avg", Field: "f"},
		{Fn: "avg", Field: "i"},
		{Fn: "min", Field: "f"},
		{Fn: "max", Field: "f"},
		{Fn: "min", Field: "i"},
		{Fn: "max", Field: "i"},
		{Fn: "min", Field: "ts"},
		{Fn: "max", Field: "ts"},
		{Fn: "min", Field: "b"},
		{Fn: "max", Field: "b"},
	}
}

// Aggregate state in words is a second implementation of the same
// functions: on random rows (nulls, ties, NaN, signed zeros, extremes),
// split at random and merged, it gives exactly what the Acc path gives,
// converts to and from an Acc without loss and survives its snapshot
// encoding.
func TestWordStateEqualsAcc(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	special := []timedRow{
		row(1, math.MaxInt64, math.Copysign(0, -1), nil, math.MaxInt64),
		row(2, math.MinInt64, 0.0, nil, math.MinInt64),
		row(3, nil, math.NaN(), nil, nil),
		row(4, -1, math.Inf(1), nil, 0),
		row(5, 1, math.Inf(-1), nil, -1),
	}
	for i := range special {
		special[i].row[4] = record.Bool(i%2 == 0)
	}
	for _, spec := range wordSpecs() {
		agg := mustAggregate(t, spec)
		wa, ok := asWords(agg)
		require.True(t, ok, "%s keeps its state in words", agg.Name())
		t.Run(agg.Name(), func(t *testing.T) {
			n := wa.words()
			for trial := range 200 {
				rows := randomRows(r, r.IntN(30))
				for i := range rows {
					if r.IntN(3) == 0 {
						rows[i].row[4] = record.Bool(r.IntN(2) == 0)
					}
				}
				if trial%4 == 0 {
					rows = append(rows, special[r.IntN(len(special))])
				}
				cut := r.IntN(len(rows) + 1)
				var all, a, b Acc
				addAll(agg, &all, rows)
				addAll(agg, &a, rows[:cut])
				addAll(agg, &b, rows[cut:])
				agg.Merge(&a, &b)

				wAll, wa1, wb := make([]uint64, n), make([]uint64, n), make([]uint64, n)
				for _, x := range rows {
					wa.addW(wAll, x.row, x.t)
				}
				for _, x := range rows[:cut] {
					wa.addW(wa1, x.row, x.t)
				}
				for _, x := range rows[cut:] {
					wa.addW(wb, x.row, x.t)
				}
				wa.mergeW(wa1, wb)
				want := agg.Result(&all)
				requireSameValue(t, want, wa.resultW(wAll), "trial %d", trial)
				requireSameValue(t, agg.Result(&a), wa.resultW(wa1), "merged, trial %d", trial)

				// Acc ↔ words, both ways.
				var conv Acc
				wa.toAcc(wAll, &conv)
				requireSameValue(t, want, agg.Result(&conv), "toAcc, trial %d", trial)
				back := make([]uint64, n)
				wa.fromAcc(&all, back)
				requireSameValue(t, want, wa.resultW(back), "fromAcc, trial %d", trial)

				// Snapshot encoding round trip, with trailing bytes kept.
				enc := wa.appendW(nil, wAll)
				got := make([]uint64, n)
				rest, err := wa.readW(append(enc, 0xAB), got)
				require.NoError(t, err)
				require.Equal(t, []byte{0xAB}, rest)
				require.Equal(t, wAll, got)
			}
		})
	}
}

// requireSameValue compares values bit for bit (NaN and -0 included).
func requireSameValue(t *testing.T, want, got record.Value, msg string, args ...any) {
	t.Helper()
	ctx := append([]any{msg}, args...)
	require.Equal(t, want.T, got.T, ctx...)
	require.Equal(t, want.N, got.N, ctx...)
	require.Equal(t, want.S, got.S, ctx...)
}

// Aggregates that need strings or sketches keep an Acc.
func TestAccAggregatesHaveNoWords(t *testing.T) {
	for _, spec := range []Spec{{Fn: "min", Field: "s"}, {Fn: "first", Field: "f"}, {Fn: "last", Field: "s"}, {Fn: "count_distinct", Field: "i"}, {Fn: "quantile", Field: "f", Q: 0.5}, {Fn: "max_by", Field: "s", By: "i"}} {
		_, ok := asWords(mustAggregate(t, spec))
		require.False(t, ok, spec.Fn)
	}
}

// Decoding word state never panics and rejects what no writer produces.
func FuzzReadWords(f *testing.F) {
	specs := wordSpecs()
	for i, spec := range specs {
		wa, _ := asWords(mustAggregate(f, spec))
		w := make([]uint64, wa.words())
		wa.addW(w, row(1, 5, 2.5, nil, 7).row, 1)
		f.Add(uint8(i), wa.appendW(nil, w))
	}
	f.Add(uint8(7), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xf8, 0, 0})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		wa, _ := asWords(mustAggregate(t, specs[int(which)%len(specs)]))
		w := make([]uint64, wa.words())
		if _, err := wa.readW(data, w); err != nil {
			return
		}
		_ = wa.resultW(w)
		_ = wa.appendW(nil, w)
	})
}
