package window

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// Keys whose hashes collide — in the bits the key table keeps, or
// entirely — are still distinct keys: the results are those of the same
// input with the true hashes, with and without the hashes sent along,
// for every window kind, through TTL sweeps (which rebuild the table).
func TestKeyHashCollisions(t *testing.T) {
	for _, a := range []Assigner{
		{Kind: Tumbling, Size: 1000, Slide: 1000},
		{Kind: Sliding, Size: 3000, Slide: 1000},
		{Kind: Session, Gap: 400},
	} {
		t.Run(a.Kind.String(), func(t *testing.T) {
			var want []string
			for _, hashes := range []string{"none", "true", "one in four", "all equal"} {
				rng := rand.New(rand.NewPCG(3, 4))
				op := snapOperator(t, a, 500)
				op.ttl = 1 // sweep often
				out := &Output{Results: record.NewBatch(op.ResultSchema().Len(), 64), Late: record.NewBatch(op.LateSchema().Len(), 64)}
				t0 := int64(0)
				for range 40 {
					b := snapBatch(rng, 120, 80, t0)
					for _, k := range b.Keys {
						switch hashes {
						case "true":
							b.Hashes = append(b.Hashes, KeyHash(k))
						case "one in four":
							b.Hashes = append(b.Hashes, KeyHash(k)&(3<<62))
						case "all equal":
							b.Hashes = append(b.Hashes, 42<<32)
						}
					}
					op.Process(b, out)
					t0 += 900 + rng.Int64N(3000)
					op.Advance(t0-200, out)
				}
				op.Advance(MaxWatermark, out)
				got := append(resultLines(out, op.ResultSchema()), fmt.Sprint("late ", out.Late.Len(), " expired ", op.ExpiredKeys()))
				if want == nil {
					want = got
					continue
				}
				require.Equal(t, want, got, "hashes: %s", hashes)
			}
		})
	}
}

// Two real keys whose hashes share the bits the table keeps stay apart,
// in the operator and through a snapshot and restore.
func TestKeyTableTagCollision(t *testing.T) {
	seen := map[uint32]string{}
	var k1, k2 string
	for i := 0; k2 == ""; i++ {
		k := fmt.Sprintf("machine-%d", i)
		tag := uint32(KeyHash(k) >> 32)
		if other, ok := seen[tag]; ok {
			k1, k2 = other, k
		}
		seen[tag] = k
	}
	agg, err := NewAggregate(Spec{Fn: "count"}, snapInput)
	require.NoError(t, err)
	newOp := func() *Operator {
		op, err := NewOperator(Config{Assigner: Assigner{Kind: Tumbling, Size: 1000, Slide: 1000}, Input: snapInput, KeyFields: []string{"key"}, Aggregates: []Aggregate{agg}})
		require.NoError(t, err)
		return op
	}
	b := record.NewBatch(2, 3)
	for _, k := range []string{k1, k2, k2} {
		row := b.AppendRow(10)
		row[0] = record.String(k)
		b.Keys, b.Hashes, b.KeyGroups = append(b.Keys, k), append(b.Hashes, KeyHash(k)), append(b.KeyGroups, 0)
	}
	op := newOp()
	out := &Output{Results: record.NewBatch(op.ResultSchema().Len(), 4)}
	op.Process(b, out)
	require.Equal(t, 2, op.Keys())
	restored := newOp()
	for kg, data := range op.Snapshot() {
		require.NoError(t, restored.Restore(kg, data))
	}
	require.Equal(t, 2, restored.Keys())
	for _, o := range []*Operator{op, restored} {
		out := &Output{Results: record.NewBatch(o.ResultSchema().Len(), 4)}
		o.Advance(MaxWatermark, out)
		require.Equal(t, []string{
			fmt.Sprintf(`{"key":%q,"window_start":"1970-01-01T00:00:00.000000Z","window_end":"1970-01-01T00:00:01.000000Z","revision":0,"retract":false,"count":1}`, k1),
			fmt.Sprintf(`{"key":%q,"window_start":"1970-01-01T00:00:00.000000Z","window_end":"1970-01-01T00:00:01.000000Z","revision":0,"retract":false,"count":2}`, k2),
		}, sortedByKey(resultLines(out, o.ResultSchema()), k1, k2))
	}
}

// sortedByKey puts the line of key a before that of key b.
func sortedByKey(lines []string, a, b string) []string {
	if len(lines) == 2 && !strings.Contains(lines[0], fmt.Sprintf("%q", a)) {
		lines[0], lines[1] = lines[1], lines[0]
	}
	return lines
}

// The slab hands out ids whose states never move and reuses released
// ones, across the doubling chunks and the fixed ones.
func TestKeySlab(t *testing.T) {
	var s keySlab
	addrs := map[uint32]*keyState{}
	for range 5000 {
		id, ks := s.alloc(true)
		require.NotContains(t, addrs, id)
		ks.key = fmt.Sprint(id)
		addrs[id] = ks
	}
	for id, ks := range addrs {
		require.Same(t, ks, s.at(id))
		require.Equal(t, fmt.Sprint(id), ks.key)
	}
	s.release(7)
	s.release(3000)
	require.Empty(t, s.at(3000).key, "a released state is zeroed")
	id, _ := s.alloc(false)
	require.EqualValues(t, 5000, id, "no reuse when not allowed")
	id, _ = s.alloc(true)
	require.EqualValues(t, 3000, id)
	id, _ = s.alloc(true)
	require.EqualValues(t, 7, id)
}
