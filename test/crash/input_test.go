package crash_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Shape of the generated input. Event times advance by a fixed step per
// record within a partition, each shifted back by up to inputJitter, which
// stays well inside the pipeline's maxOutOfOrderness: no record is ever
// late, so the window results do not depend on how reading is interleaved
// or interrupted.
const (
	inputJitter       = 2 * time.Second
	maxOutOfOrderness = 5 * time.Second
	windowSize        = time.Minute
	machinesPerSplit  = 8
	tagsPerMachine    = 4
	// sentinelAhead puts each partition's last record this far after its
	// data, so the watermark passes the end of every data window.
	sentinelAhead = time.Hour
	sentinelKey   = "sentinel"
)

// inputStart is the event time of the first record.
var inputStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// point is one sensor record.
type point struct {
	ts      int64 // epoch ms
	machine string
	tag     string
	// quarters is the value in units of 0.25, so every sum is exact in
	// float64 whatever the order of addition.
	quarters int64
}

func (p point) json() []byte {
	b := make([]byte, 0, 96)
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, p.ts, 10)
	b = append(b, `,"machine":"`...)
	b = append(b, p.machine...)
	b = append(b, `","tag":"`...)
	b = append(b, p.tag...)
	b = append(b, `","value":`...)
	b = strconv.AppendFloat(b, float64(p.quarters)/4, 'f', -1, 64)
	return append(b, '}')
}

// input is the fixed input set: one ordered list of records per split.
type input struct {
	splits [][]point
}

// newInput generates perSplit data records, step apart in event time, for
// each of splits splits, plus
// a sentinel at the end of each. Machines belong to one split each, as
// sensors keyed by machine id would in a partitioned topic.
func newInput(splits, perSplit int, step time.Duration) *input {
	in := &input{splits: make([][]point, splits)}
	for s := range splits {
		rng := rand.New(rand.NewPCG(uint64(s)+1, 0x5eed))
		pts := make([]point, 0, perSplit+1)
		var newest int64
		for i := range perSplit {
			base := inputStart.Add(time.Duration(i) * step).UnixMilli()
			ts := base - rng.Int64N(inputJitter.Milliseconds())
			m := rng.IntN(machinesPerSplit)
			pts = append(pts, point{
				ts:       ts,
				machine:  fmt.Sprintf("m%02d", s*machinesPerSplit+m),
				tag:      fmt.Sprintf("t%d", rng.IntN(tagsPerMachine)),
				quarters: rng.Int64N(400),
			})
			newest = max(newest, ts)
		}
		pts = append(pts, point{ts: newest + sentinelAhead.Milliseconds(), machine: sentinelKey, tag: sentinelKey})
		in.splits[s] = pts
	}
	return in
}

// records is the number of records, sentinels included.
func (in *input) records() int {
	n := 0
	for _, s := range in.splits {
		n += len(s)
	}
	return n
}

// doneWatermark is the end of the last window that holds data: once every
// subtask's watermark has reached it, every data window has fired.
func (in *input) doneWatermark() time.Time {
	var newest int64
	for _, s := range in.splits {
		for _, p := range s[:len(s)-1] {
			newest = max(newest, p.ts)
		}
	}
	w := windowSize.Milliseconds()
	return time.UnixMilli((newest/w + 1) * w).UTC()
}

// expected computes the window results the pipeline must publish: one row
// per machine, tag and 1-minute window holding data, revision 0. The
// sentinels' windows never close, so they are not expected.
func (in *input) expected() map[resultRow]int {
	type acc struct{ n, sum, lo, hi int64 }
	type wkey struct {
		machine, tag string
		start        int64
	}
	w := windowSize.Milliseconds()
	accs := make(map[wkey]*acc)
	for _, s := range in.splits {
		for _, p := range s[:len(s)-1] {
			k := wkey{p.machine, p.tag, p.ts / w * w}
			a := accs[k]
			if a == nil {
				a = &acc{lo: p.quarters, hi: p.quarters}
				accs[k] = a
			}
			a.n++
			a.sum += p.quarters
			a.lo, a.hi = min(a.lo, p.quarters), max(a.hi, p.quarters)
		}
	}
	out := make(map[resultRow]int, len(accs))
	for k, a := range accs {
		out[resultRow{
			Machine: k.machine, Tag: k.tag, WindowStart: k.start, WindowEnd: k.start + w,
			Count: a.n, Sum: float64(a.sum) / 4, Min: float64(a.lo) / 4, Max: float64(a.hi) / 4,
		}]++
	}
	return out
}

// chunks cuts every split into n consecutive pieces; chunk i of every
// split is fed during the i-th run of the crash test.
func (in *input) chunks(n int) [][][]point {
	out := make([][][]point, n)
	for i := range n {
		out[i] = make([][]point, len(in.splits))
		for s, pts := range in.splits {
			out[i][s] = pts[i*len(pts)/n : (i+1)*len(pts)/n]
		}
	}
	return out
}
