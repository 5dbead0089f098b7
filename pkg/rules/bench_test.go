package rules

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/streamd/streamd/pkg/record"
)

var benchSchema = record.MustSchema(
	record.Field{Name: "equipmentId", Type: record.TypeString},
	record.Field{Name: "line", Type: record.TypeString},
	record.Field{Name: "tag", Type: record.TypeString},
	record.Field{Name: "value", Type: record.TypeFloat},
)

const benchTags = 20

// benchEngine builds nRules rules, each selecting 2 of the 20 tags and
// keying by equipmentId. scoped rules also select one production line (a
// plant operator's rule covers that plant's machines); unscoped rules see
// every machine.
func benchEngine(b *testing.B, nRules, lines int, scoped bool) *Engine {
	e, err := New(benchSchema, DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	for i := range nRules {
		t1, t2 := (i*7)%benchTags, (i*7+3)%benchTags
		sel := fmt.Sprintf(`tag in ["tag%02d", "tag%02d"]`, t1, t2)
		if scoped {
			sel += fmt.Sprintf(` && line == "L%03d"`, i%lines)
		}
		doc := fmt.Sprintf(`
id: rule-%04d
version: 1
select: '%s'
key: [equipmentId]
signals:
  a: {when: 'tag == "tag%02d"', value: value}
  b: {when: 'tag == "tag%02d"', value: value}
groups:
  - {name: running, state: ACTIVE, conditions: [a > 0]}
  - {name: hot, state: WARNING, weight: 2, conditions: [a > 80, b > 80], for: 5m, clear: a < 75}
`, i, sel, t1, t2)
		r, err := Parse([]byte(doc), FormatYAML)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Apply(Update{Rule: r}); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// benchRows returns one pre-decoded data point per (machine, tag) with
// values that stay mostly below the thresholds, as healthy lines do.
func benchRows(machines, lines int) *record.Batch {
	rng := rand.New(rand.NewPCG(1, 2))
	batch := record.NewBatch(benchSchema.Len(), machines*benchTags)
	for m := range machines {
		id := fmt.Sprintf("84068f2f-%04x-4e4f-9b1c-%012x", m, m)
		line := fmt.Sprintf("L%03d", m%lines)
		for tg := range benchTags {
			row := batch.AppendRow(int64(m*benchTags + tg))
			row[0] = record.String(id)
			row[1] = record.String(line)
			row[2] = record.String(fmt.Sprintf("tag%02d", tg))
			row[3] = record.Float(60 + rng.Float64()*25)
		}
	}
	return batch
}

func runBench(b *testing.B, e *Engine, batch *record.Batch) {
	alerts := 0
	emit := func(Alert) { alerts++ }
	n := batch.Len()
	// Warm up: create every key so the measurement is the steady state.
	for i := range n {
		e.Process(batch.Row(i), batch.Time(i), emit)
	}
	evals := uint64(0)
	for _, s := range e.Stats() {
		evals -= s.Evaluations
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	base, pass := int64(n), 0
	for i := range b.N {
		j := i % n
		if j == 0 {
			base += int64(n)
			pass++
		}
		// Every pass moves each value a little, so every data point
		// changes its signal and forces an evaluation.
		row := batch.Row(j)
		row[3] = record.Float(row[3].Float() + float64(pass%2*2-1)*0.25)
		e.Process(row, base+batch.Time(j), emit)
	}
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	for _, s := range e.Stats() {
		evals += s.Evaluations
	}
	b.ReportMetric(float64(b.N)/elapsed, "points/s")
	b.ReportMetric(float64(evals)/elapsed, "evaluations/s")
}

// BenchmarkProcessScoped: 1000 rules, 10000 machines on 100 lines, 20 tags;
// each rule covers 2 tags of one line, so a data point feeds about one rule
// and the select index finds it without testing the other 999.
func BenchmarkProcessScoped(b *testing.B) {
	e := benchEngine(b, 1000, 100, true)
	runBench(b, e, benchRows(10000, 100))
}

// BenchmarkProcessFanOut: 1000 rules each on 2 of 20 tags for every
// machine, so every data point feeds about 100 rules (100 evaluations per
// point). 200 machines keep the 200k (rule, key) states in memory.
func BenchmarkProcessFanOut(b *testing.B) {
	e := benchEngine(b, 1000, 1, false)
	runBench(b, e, benchRows(200, 1))
}

// BenchmarkSnapshot: 100 rules over 1000 machines (100000 (rule, key)
// states), snapshotted whole and per key group as a subtask owning all of
// 128 key groups does (the rule set written into each); bytes/op is the
// snapshot's size.
func BenchmarkSnapshot(b *testing.B) {
	e := benchEngine(b, 100, 1, false)
	e.opts.KeyGroup = func(row record.Row) int {
		h := fnv.New32a()
		h.Write([]byte(row[0].S))
		return int(h.Sum32() % 128)
	}
	batch := benchRows(1000, 1)
	for i := range batch.Len() {
		e.Process(batch.Row(i), batch.Time(i), func(Alert) {})
	}
	b.Run("whole", func(b *testing.B) {
		var buf bytes.Buffer
		cpu0 := cpuSeconds()
		for range b.N {
			buf.Reset()
			if err := e.Snapshot(&buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric((cpuSeconds()-cpu0)*1000/float64(b.N), "cpu-ms/op")
		b.ReportMetric(float64(buf.Len()), "bytes/op")
	})
	b.Run("keyGroups", func(b *testing.B) {
		owned := make([]int, 0, 128)
		for kg := range 128 {
			owned = append(owned, kg)
		}
		var size int
		cpu0 := cpuSeconds()
		for range b.N {
			blobs, err := e.SnapshotKeyGroups(owned)
			if err != nil {
				b.Fatal(err)
			}
			size = 0
			for _, d := range blobs {
				size += len(d)
			}
		}
		b.ReportMetric((cpuSeconds()-cpu0)*1000/float64(b.N), "cpu-ms/op")
		b.ReportMetric(float64(size), "bytes/op")
	})
}

// cpuSeconds is the CPU time (user and system) the process has used: on a
// shared machine, what a snapshot costs is its CPU time, not wall time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
