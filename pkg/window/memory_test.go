package window

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/streamd/streamd/pkg/record"
)

// BenchmarkStateMemory reports what keyed window state costs in memory: a
// 1-minute tumbling window with count, avg and max per key, for 1,000,000
// keys (as BenchmarkSnapshotRestore). bytes/key is the live heap the
// operator holds per key after a GC, rss-MB the process's resident set
// once the state is built, checkpoint-bytes/key what a snapshot takes per
// key with event times of today and the watermark in the window.
// Set STREAMD_BENCH_10M=1 to run 10,000,000 keys too (it needs several GB
// and a few minutes).
func BenchmarkStateMemory(b *testing.B) {
	sizes := []int{1_000_000}
	if os.Getenv("STREAMD_BENCH_10M") != "" {
		sizes = append(sizes, 10_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			var perKey, rss, ckpt float64
			for b.Loop() {
				perKey, rss, ckpt = measureState(b, n)
			}
			b.ReportMetric(perKey, "bytes/key")
			b.ReportMetric(rss, "rss-MB")
			b.ReportMetric(ckpt, "checkpoint-bytes/key")
		})
	}
}

// measureState builds state for n keys and returns the live heap it holds
// per key, the process's RSS in MB and the snapshot bytes per key.
func measureState(b *testing.B, n int) (perKey, rssMB, ckpt float64) {
	b.Helper()
	before := liveHeap()
	op := bigOperator(b, n, 1_700_000_000_000)
	after := liveHeap()
	rss := residentMB()
	if op.Keys() != n {
		b.Fatalf("operator holds %d keys, want %d", op.Keys(), n)
	}
	op.SetWatermark(1_700_000_030_000)
	var size int
	for _, data := range op.Snapshot() {
		size += len(data)
	}
	runtime.KeepAlive(op)
	return float64(after-before) / float64(n), rss, float64(size) / float64(n)
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// residentMB reads VmRSS from /proc (0 where there is none).
func residentMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// The state estimate behind streamd_state_bytes and state budgets follows
// the live heap the state takes: within a third for the shapes that
// matter — tumbling, sliding and session windows, one key field or two,
// word state and Acc state.
func TestStateBytesEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 200,000 keys")
	}
	input := record.MustSchema(
		record.Field{Name: "key", Type: record.TypeString},
		record.Field{Name: "tag", Type: record.TypeString},
		record.Field{Name: "value", Type: record.TypeFloat},
	)
	for _, tc := range []struct {
		name string
		a    Assigner
		keys []string
		aggs []Spec
	}{
		{"tumbling count avg max", Assigner{Kind: Tumbling, Size: 60_000, Slide: 60_000}, []string{"key"}, []Spec{{Fn: "count"}, {Fn: "avg", Field: "value"}, {Fn: "max", Field: "value"}}},
		{"tumbling two key fields", Assigner{Kind: Tumbling, Size: 60_000, Slide: 60_000}, []string{"key", "tag"}, []Spec{{Fn: "sum", Field: "value"}}},
		{"sliding", Assigner{Kind: Sliding, Size: 60_000, Slide: 20_000}, []string{"key"}, []Spec{{Fn: "count"}, {Fn: "min", Field: "value"}}},
		{"session", Assigner{Kind: Session, Gap: 30_000}, []string{"key"}, []Spec{{Fn: "avg", Field: "value"}}},
		{"acc state", Assigner{Kind: Tumbling, Size: 60_000, Slide: 60_000}, []string{"key"}, []Spec{{Fn: "last", Field: "tag"}, {Fn: "max", Field: "tag"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 200_000
			var aggs []Aggregate
			for _, s := range tc.aggs {
				agg, err := NewAggregate(s, input)
				if err != nil {
					t.Fatal(err)
				}
				aggs = append(aggs, agg)
			}
			before := liveHeap()
			op, err := NewOperator(Config{Assigner: tc.a, Input: input, KeyFields: tc.keys, Aggregates: aggs})
			if err != nil {
				t.Fatal(err)
			}
			out := &Output{Results: record.NewBatch(op.ResultSchema().Len(), 64)}
			for off := 0; off < n; off += 10_000 {
				b := record.NewBatch(input.Len(), 10_000)
				for i := off; i < off+10_000; i++ {
					k := fmt.Sprintf("machine-%07d", i)
					row := b.AppendRow(1_700_000_000_000 + int64(i%50_000))
					row[0], row[1], row[2] = record.String(k), record.String("temperature"), record.Float(float64(i%977))
					if len(tc.keys) == 2 {
						k += "\x1ftemperature"
					}
					b.Keys = append(b.Keys, k)
					b.KeyGroups = append(b.KeyGroups, uint16(i%128))
				}
				op.Process(b, out)
			}
			live := float64(liveHeap() - before)
			est := float64(op.StateBytes())
			t.Logf("%s: estimate %.0f bytes/key, live heap %.0f bytes/key", tc.name, est/n, live/n)
			if est < live*2/3 || est > live*4/3 {
				t.Errorf("estimate %.0f bytes is not within a third of the live heap %.0f bytes", est, live)
			}
			runtime.KeepAlive(op)
		})
	}
}

// BenchmarkTumblingCountAvgMax is the record path of a window stage with
// word state: a 1-minute tumbling count, avg and max over 10,000 keys,
// watermarks advancing with every batch so windows fire and go.
func BenchmarkTumblingCountAvgMax(b *testing.B) {
	var aggs []Aggregate
	for _, s := range []Spec{{Fn: "count"}, {Fn: "avg", Field: "value"}, {Fn: "max", Field: "value"}} {
		agg, err := NewAggregate(s, snapInput)
		if err != nil {
			b.Fatal(err)
		}
		aggs = append(aggs, agg)
	}
	op, err := NewOperator(Config{Assigner: Assigner{Kind: Tumbling, Size: 60_000, Slide: 60_000}, Input: snapInput, KeyFields: []string{"key"}, Aggregates: aggs})
	if err != nil {
		b.Fatal(err)
	}
	const nKeys, size = 10_000, 1024
	keys := make([]string, nKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("machine-%05d/water_temperature", i)
	}
	batches := make([]*record.Batch, 256)
	t, n := int64(1_700_000_000_000), 0
	for i := range batches {
		bt := record.NewBatch(2, size)
		for range size {
			row := bt.AppendRow(t)
			row[0], row[1] = record.String(keys[n%nKeys]), record.Float(float64(n%100))
			bt.Keys = append(bt.Keys, keys[n%nKeys])
			bt.KeyGroups = append(bt.KeyGroups, uint16(n%128))
			t++
			n++
		}
		batches[i] = bt
	}
	span := int64(len(batches) * size)
	out := &Output{Results: record.NewBatch(op.ResultSchema().Len(), 1024)}
	b.ReportAllocs()
	records := 0
	cpu0 := cpuSeconds()
	for i := 0; b.Loop(); i++ {
		in := batches[i%len(batches)]
		if i > 0 && i%len(batches) == 0 {
			for _, bt := range batches {
				for j := range bt.Times {
					bt.Times[j] += span
				}
			}
		}
		op.Process(in, out)
		op.Advance(in.Times[len(in.Times)-1]-1, out)
		out.Results.Reset()
		records += in.Len()
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(records)/(cpuSeconds()-cpu0), "records/cpu-s")
}

// cpuSeconds is the CPU time (user and system) the process has used: on a
// shared machine, records per CPU-second is the steadier per-core figure,
// garbage collection included.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
