package window

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// The state TTL only decides how long a key without windows is kept for
// reuse: whatever it is, every result is the same, for every window kind,
// with late data within and beyond the lateness.
func TestStateTTLNeverChangesResults(t *testing.T) {
	for _, a := range []Assigner{
		{Kind: Tumbling, Size: 1000, Slide: 1000},
		{Kind: Sliding, Size: 3000, Slide: 1000},
		{Kind: Session, Gap: 400},
	} {
		t.Run(a.Kind.String(), func(t *testing.T) {
			var want []string
			for _, ttl := range []int64{0, 1, 50, 100_000} {
				rng := rand.New(rand.NewPCG(7, 8))
				op := snapOperator(t, a, 500)
				op.ttl = op.defaultRetention()
				if ttl > 0 {
					op.ttl = ttl
				}
				out := &Output{Results: record.NewBatch(op.ResultSchema().Len(), 64), Late: record.NewBatch(op.LateSchema().Len(), 64)}
				t0 := int64(0)
				for range 60 {
					op.Process(snapBatch(rng, 80, 60, t0), out)
					t0 += 900 + rng.Int64N(3000)
					op.Advance(t0-200, out)
				}
				op.Advance(MaxWatermark, out)
				got := resultLines(out, op.ResultSchema())
				require.NotEmpty(t, got)
				if want == nil {
					want = got
					continue
				}
				require.Equal(t, want, got, "state TTL %d", ttl)
			}
		})
	}
}

// Keys without windows stay for the state TTL after their last window
// ended, and go after it (counted); a key that comes back meanwhile keeps
// its state object.
func TestStateTTLDropsEmptyKeys(t *testing.T) {
	agg, err := NewAggregate(Spec{Fn: "count"}, snapInput)
	require.NoError(t, err)
	op, err := NewOperator(Config{Assigner: Assigner{Kind: Tumbling, Size: 1000, Slide: 1000}, Input: snapInput, KeyFields: []string{"key"}, Aggregates: []Aggregate{agg}, StateTTL: 10_000})
	require.NoError(t, err)
	out := &Output{Results: record.NewBatch(op.ResultSchema().Len(), 64)}
	batch := func(t0 int64, keys ...string) *record.Batch {
		b := record.NewBatch(2, len(keys))
		for _, k := range keys {
			row := b.AppendRow(t0)
			row[0], row[1] = record.String(k), record.Float(1)
			b.Keys = append(b.Keys, k)
			b.KeyGroups = append(b.KeyGroups, 0)
		}
		return b
	}
	op.Process(batch(0, "a", "b"), out)
	op.Advance(2000, out)
	require.Equal(t, 0, op.Keys(), "no key holds a window")
	require.Len(t, heldKeys(op), 2, "both are kept for the state TTL")
	full := op.StateBytes()
	op.Advance(9000, out)
	require.Len(t, heldKeys(op), 2, "the TTL runs from the end of the last window (1000)")
	op.Process(batch(9500, "b"), out)
	op.Advance(12_000, out)
	require.Len(t, heldKeys(op), 1, "a went 10s after its window ended")
	require.EqualValues(t, 1, op.ExpiredKeys())
	require.Less(t, op.StateBytes(), full)
	op.Advance(30_000, out)
	require.Empty(t, heldKeys(op))
	require.EqualValues(t, 2, op.ExpiredKeys())
}

// With a state budget, once the estimated state holds it, records of keys
// without state are refused — counted and handed over, never dropped
// silently — while keys with state go on; once windows expire and keys
// go, new keys are taken again.
func TestStateBudgetRefusesNewKeys(t *testing.T) {
	var aggs []Aggregate
	for _, s := range []Spec{{Fn: "count"}, {Fn: "avg", Field: "value"}} {
		agg, err := NewAggregate(s, snapInput)
		require.NoError(t, err)
		aggs = append(aggs, agg)
	}
	const budget = 64 << 10
	op, err := NewOperator(Config{Assigner: Assigner{Kind: Tumbling, Size: 1000, Slide: 1000}, Input: snapInput, KeyFields: []string{"key"}, Aggregates: aggs, MaxStateBytes: budget, StateTTL: 1})
	require.NoError(t, err)
	out := &Output{Results: record.NewBatch(op.ResultSchema().Len(), 1024), Refused: record.NewBatch(snapInput.Len(), 64)}
	b := record.NewBatch(2, 2000)
	for i := range 2000 {
		k := fmt.Sprintf("k%04d", i)
		row := b.AppendRow(int64(i % 500))
		row[0], row[1] = record.String(k), record.Float(2)
		b.Keys = append(b.Keys, k)
		b.KeyGroups = append(b.KeyGroups, 0)
	}
	op.Process(b, out)
	kept := op.Keys()
	require.Positive(t, kept)
	require.Less(t, kept, 2000)
	require.EqualValues(t, 2000-kept, out.RefusedRecords)
	require.Equal(t, 2000-kept, out.Refused.Len(), "every refused record is handed over")
	require.Less(t, op.StateBytes(), int64(budget)+1024, "the budget holds within one key")
	require.GreaterOrEqual(t, op.StateBytes(), int64(budget))
	for i := 0; i < out.Refused.Len(); i++ {
		require.NotContains(t, heldKeys(op), out.Refused.Row(i)[0].S)
	}

	// Keys with state still take records.
	first := b.Row(0)[0].S
	again := record.NewBatch(2, 1)
	row := again.AppendRow(600)
	row[0], row[1] = record.String(first), record.Float(4)
	again.Keys, again.KeyGroups = []string{first}, []uint16{0}
	op.Process(again, out)
	require.EqualValues(t, 2000-kept, out.RefusedRecords)

	// The windows fire and their keys go: room for new keys again.
	op.Advance(5000, out)
	require.Equal(t, kept, out.Results.Len())
	for i := 0; i < out.Results.Len(); i++ {
		r := out.Results.Row(i)
		want := int64(1)
		if r[0].S == first {
			want = 2
		}
		require.Equal(t, want, r[5].Int(), "count of %s", r[0].S)
	}
	require.Zero(t, op.StateBytes())
	refused := out.RefusedRecords
	op.Process(b, out)
	require.Equal(t, refused, out.RefusedRecords, "the expired windows' records are late, not refused")
	for i := range b.Times {
		b.Times[i] += 10_000
	}
	op.Process(b, out)
	require.Equal(t, kept, op.Keys(), "new keys are taken again up to the budget")
}

// heldKeys lists the keys the operator holds state for, empty ones kept
// for the TTL included.
func heldKeys(op *Operator) []string {
	var keys []string
	op.eachKey(func(ks *keyState) { keys = append(keys, ks.key) })
	return keys
}
