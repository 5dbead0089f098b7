package window

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

var snapInput = record.MustSchema(
	record.Field{Name: "key", Type: record.TypeString},
	record.Field{Name: "value", Type: record.TypeFloat},
)

func snapOperator(t testing.TB, a Assigner, lateness int64) *Operator {
	t.Helper()
	var aggs []Aggregate
	for _, s := range []Spec{{Fn: "count"}, {Fn: "avg", Field: "value"}, {Fn: "max", Field: "value"}, {Fn: "quantile", Field: "value", Q: 0.9}, {Fn: "count_distinct", Field: "value"}, {Fn: "last", Field: "key"}} {
		agg, err := NewAggregate(s, snapInput)
		require.NoError(t, err)
		aggs = append(aggs, agg)
	}
	op, err := NewOperator(Config{Assigner: a, AllowedLateness: lateness, Input: snapInput, KeyFields: []string{"key"}, Aggregates: aggs})
	require.NoError(t, err)
	return op
}

func snapBatch(rng *rand.Rand, keys, n int, t0 int64) *record.Batch {
	b := record.NewBatch(2, n)
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("k%03d", rng.IntN(keys))
		row := b.AppendRow(t0 + int64(i)*7 + int64(rng.IntN(50)))
		row[0], row[1] = record.String(k), record.Float(float64(rng.IntN(1000))/10)
		b.Keys = append(b.Keys, k)
		b.KeyGroups = append(b.KeyGroups, uint16(len(k)+int(k[len(k)-1]))%8)
	}
	return b
}

func resultLines(out *Output, s *record.Schema) []string {
	var lines []string
	for i := 0; i < out.Results.Len(); i++ {
		lines = append(lines, string(record.AppendJSON(nil, s, out.Results.Row(i))))
	}
	// Keys firing at the same watermark come out in no particular order.
	sort.Strings(lines)
	return lines
}

// A restored operator must produce exactly what the original would have:
// snapshot mid-stream, restore per key group into a fresh operator, feed
// both the same remaining input and compare every result.
func TestSnapshotRestoreEquivalence(t *testing.T) {
	for _, a := range []Assigner{
		{Kind: Tumbling, Size: 1000, Slide: 1000},
		{Kind: Sliding, Size: 3000, Slide: 1000},
		{Kind: Session, Gap: 400},
	} {
		t.Run(a.Kind.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			orig := snapOperator(t, a, 500)
			out := &Output{Results: record.NewBatch(orig.ResultSchema().Len(), 64), Late: record.NewBatch(orig.LateSchema().Len(), 64)}
			t0 := int64(0)
			for i := 0; i < 20; i++ {
				orig.Process(snapBatch(rng, 50, 100, t0), out)
				t0 += 700
				orig.Advance(t0-200, out)
			}
			snap := orig.Snapshot()
			require.NotEmpty(t, snap)
			restored := snapOperator(t, a, 500)
			for kg, data := range snap {
				require.NoError(t, restored.Restore(kg, data))
			}
			restored.SetWatermark(orig.Watermark())
			require.Equal(t, orig.Keys(), restored.Keys())
			// Not compared byte for byte: HyperLogLog encodings depend on
			// insertion order. Equivalence is checked on results below.

			o1 := &Output{Results: record.NewBatch(orig.ResultSchema().Len(), 64), Late: record.NewBatch(orig.LateSchema().Len(), 64)}
			o2 := &Output{Results: record.NewBatch(orig.ResultSchema().Len(), 64), Late: record.NewBatch(orig.LateSchema().Len(), 64)}
			for i := 0; i < 10; i++ {
				b := snapBatch(rng, 50, 100, t0-300)
				orig.Process(b, o1)
				restored.Process(b, o2)
				t0 += 700
				orig.Advance(t0-200, o1)
				restored.Advance(t0-200, o2)
			}
			orig.Advance(MaxWatermark, o1)
			restored.Advance(MaxWatermark, o2)
			require.NotEmpty(t, resultLines(o1, orig.ResultSchema()))
			require.Equal(t, resultLines(o1, orig.ResultSchema()), resultLines(o2, restored.ResultSchema()))
			require.Equal(t, o1.LateRecords, o2.LateRecords)
		})
	}
}

func FuzzRestore(f *testing.F) {
	op := snapOperator(f, Assigner{Kind: Tumbling, Size: 1000, Slide: 1000}, 0)
	out := &Output{Results: record.NewBatch(op.ResultSchema().Len(), 64)}
	op.Process(snapBatch(rand.New(rand.NewPCG(3, 4)), 5, 20, 0), out)
	for _, data := range op.Snapshot() {
		f.Add(data)
	}
	f.Add([]byte{1, 200, 1})
	// Key groups written by version 2 (see TestRestoreVersion2Snapshots).
	if data, err := os.ReadFile(filepath.Join("testdata", "snapshot-v2", "tumbling.bin")); err == nil {
		for len(data) >= 6 {
			n := binary.LittleEndian.Uint32(data[2:])
			f.Add(data[6 : 6+n])
			data = data[6+n:]
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fresh := snapOperator(t, Assigner{Kind: Tumbling, Size: 1000, Slide: 1000}, 0)
		if err := fresh.Restore(0, data); err != nil {
			return
		}
		o := &Output{Results: record.NewBatch(fresh.ResultSchema().Len(), 8), Late: record.NewBatch(fresh.LateSchema().Len(), 8)}
		fresh.Advance(MaxWatermark, o)
	})
}

// BenchmarkSnapshotRestore measures checkpointing 1,000,000 keys of
// tumbling-window state (count, avg, max): snapshot time (the processing
// pause of a subtask), restore time and bytes per key.
func BenchmarkSnapshotRestore(b *testing.B) {
	var aggs []Aggregate
	for _, s := range []Spec{{Fn: "count"}, {Fn: "avg", Field: "value"}, {Fn: "max", Field: "value"}} {
		agg, _ := NewAggregate(s, snapInput)
		aggs = append(aggs, agg)
	}
	newOp := func() *Operator {
		op, _ := NewOperator(Config{Assigner: Assigner{Kind: Tumbling, Size: 60_000, Slide: 60_000}, Input: snapInput, KeyFields: []string{"key"}, Aggregates: aggs})
		return op
	}
	const keys = 1_000_000
	op := bigOperator(b, keys, 0)
	var snapNS, restoreNS, bytes int64
	for b.Loop() {
		t0 := nanotime()
		snap := op.Snapshot()
		t1 := nanotime()
		fresh := newOp()
		bytes = 0
		for kg, data := range snap {
			bytes += int64(len(data))
			if err := fresh.Restore(kg, data); err != nil {
				b.Fatal(err)
			}
		}
		t2 := nanotime()
		snapNS += t1 - t0
		restoreNS += t2 - t1
	}
	n := float64(b.N)
	b.ReportMetric(float64(snapNS)/n/1e6, "snapshot-ms")
	b.ReportMetric(float64(restoreNS)/n/1e6, "restore-ms")
	b.ReportMetric(float64(bytes)/keys, "bytes/key")
}

// bigOperator returns a tumbling-window operator (count, avg, max) holding
// state for n keys spread over 128 key groups, with event times from t0.
func bigOperator(b *testing.B, n int, t0 int64) *Operator {
	var aggs []Aggregate
	for _, s := range []Spec{{Fn: "count"}, {Fn: "avg", Field: "value"}, {Fn: "max", Field: "value"}} {
		agg, _ := NewAggregate(s, snapInput)
		aggs = append(aggs, agg)
	}
	op, _ := NewOperator(Config{Assigner: Assigner{Kind: Tumbling, Size: 60_000, Slide: 60_000}, Input: snapInput, KeyFields: []string{"key"}, Aggregates: aggs})
	out := &Output{Results: record.NewBatch(op.ResultSchema().Len(), 64)}
	for off := 0; off < n; off += 10_000 {
		bt := record.NewBatch(2, 10_000)
		for i := off; i < off+10_000; i++ {
			k := fmt.Sprintf("machine-%07d/temperature", i)
			row := bt.AppendRow(t0 + int64(i%50_000))
			row[0], row[1] = record.String(k), record.Float(float64(i%977))
			bt.Keys = append(bt.Keys, k)
			bt.KeyGroups = append(bt.KeyGroups, uint16(i%128))
		}
		op.Process(bt, out)
	}
	return op
}

func nanotime() int64 { return time.Now().UnixNano() }

// Snapshots written before aggregate state was sized by function (version
// 2, testdata/snapshot-v2, taken by that version from the input below)
// restore: the restored operator goes on exactly as one that read the
// same input without stopping.
func TestRestoreVersion2Snapshots(t *testing.T) {
	for _, a := range []Assigner{
		{Kind: Tumbling, Size: 1000, Slide: 1000},
		{Kind: Sliding, Size: 3000, Slide: 1000},
		{Kind: Session, Gap: 400},
	} {
		t.Run(a.Kind.String(), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "snapshot-v2", a.Kind.String()+".bin"))
			require.NoError(t, err)
			restored := snapOperator(t, a, 500)
			for len(data) > 0 {
				require.GreaterOrEqual(t, len(data), 6)
				kg, n := binary.LittleEndian.Uint16(data), binary.LittleEndian.Uint32(data[2:])
				group := data[6 : 6+n]
				require.Equal(t, byte(snapshotVersionV2), group[0])
				require.NoError(t, restored.Restore(kg, group))
				data = data[6+n:]
			}

			// The reference reads the input the snapshot was taken from.
			rng := rand.New(rand.NewPCG(1, 2))
			ref := snapOperator(t, a, 500)
			out := &Output{Results: record.NewBatch(ref.ResultSchema().Len(), 64), Late: record.NewBatch(ref.LateSchema().Len(), 64)}
			t0 := int64(0)
			for i := 0; i < 20; i++ {
				ref.Process(snapBatch(rng, 50, 100, t0), out)
				t0 += 700
				ref.Advance(t0-200, out)
			}
			restored.SetWatermark(ref.Watermark())
			require.Equal(t, ref.Keys(), restored.Keys())
			o1 := &Output{Results: record.NewBatch(ref.ResultSchema().Len(), 64), Late: record.NewBatch(ref.LateSchema().Len(), 64)}
			o2 := &Output{Results: record.NewBatch(ref.ResultSchema().Len(), 64), Late: record.NewBatch(ref.LateSchema().Len(), 64)}
			for i := 0; i < 10; i++ {
				b := snapBatch(rng, 50, 100, t0-300)
				ref.Process(b, o1)
				restored.Process(b, o2)
				t0 += 700
				ref.Advance(t0-200, o1)
				restored.Advance(t0-200, o2)
			}
			ref.Advance(MaxWatermark, o1)
			restored.Advance(MaxWatermark, o2)
			require.NotEmpty(t, resultLines(o1, ref.ResultSchema()))
			require.Equal(t, resultLines(o1, ref.ResultSchema()), resultLines(o2, restored.ResultSchema()))
			require.Equal(t, o1.LateRecords, o2.LateRecords)
			require.Equal(t, ref.StateBytes(), restored.StateBytes(), "state estimate")
		})
	}
}
