package operator

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/window"
)

// benchInput is the schema of pre-decoded benchmark records.
var benchInput = record.MustSchema(
	record.Field{Name: "key", Type: record.TypeString},
	record.Field{Name: "value", Type: record.TypeFloat},
	record.Field{Name: "sender", Type: record.TypeString},
)

// preDecoded builds batches of rows {key, value} for nKeys keys whose event
// time advances 1ms per record, as a keyed stage receives them.
func preDecoded(nKeys, batches, size int) []*record.Batch {
	schema := benchInput
	keys := make([]string, nKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("machine-%05d/water_temperature", i)
	}
	out := make([]*record.Batch, batches)
	t := int64(1_700_000_000_000)
	n := 0
	for b := range out {
		batch := record.NewBatch(schema.Len(), size)
		for i := 0; i < size; i++ {
			row := batch.AppendRow(t)
			row[0] = record.String(keys[n%nKeys])
			row[1] = record.Float(float64(n % 100))
			t++
			n++
		}
		out[b] = batch
	}
	return out
}

// BenchmarkKeyedTumblingCount measures one core doing a keyed stage's whole
// job on pre-decoded records: keyBy (hash, key group, subtask partitioning)
// and a 1-minute tumbling count over 10,000 keys, watermarks advancing every
// batch so windows fire and state is dropped as in production.
func BenchmarkKeyedTumblingCount(b *testing.B) {
	const nKeys, size = 10_000, 1024
	batches := preDecoded(nKeys, 256, size)
	agg, err := window.NewAggregate(window.Spec{Fn: "count"}, benchInput)
	if err != nil {
		b.Fatal(err)
	}
	op, err := window.NewOperator(window.Config{
		Assigner: window.Assigner{Kind: window.Tumbling, Size: 60_000, Slide: 60_000},
		Input:    benchInput, KeyFields: []string{"key"}, Aggregates: []window.Aggregate{agg},
	})
	if err != nil {
		b.Fatal(err)
	}
	st := &stageRT{keyIdx: []int{0}, keyGroups: 128, inputs: []chan event{make(chan event, 1)}, batches: newBatchPool(4)}
	x := newExchangeOut(st, 0, benchInput.Len(), 0)
	out := window.Output{Results: record.NewBatch(op.ResultSchema().Len(), 1024)}
	span := int64(len(batches) * size)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuSeconds()
	records := 0
	for i := 0; b.Loop(); i++ {
		in := batches[i%len(batches)]
		shift := int64(i/len(batches)) * span
		if shift != 0 {
			for j := range in.Times {
				in.Times[j] += span
			}
		}
		x.send(in, in.Times[len(in.Times)-1]+shift*0-1, false)
		ev := <-st.inputs[0]
		op.Process(ev.batch, &out)
		st.putBatch(ev.batch)
		op.Advance(ev.wm, &out)
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
