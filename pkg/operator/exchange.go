package operator

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/window"
)

// event is what travels on a subtask's input channel: an optional batch and
// the sender's watermark after it. Watermarks are in-band, so a subtask
// never sees a watermark before the records that preceded it.
type event struct {
	from  int
	batch *record.Batch
	wm    int64
	idle  bool
	done  bool
	// left, with done, is a producer that stopped without ending its
	// input (a revoked split): it no longer holds event time back, but
	// its end does not end event time either.
	left bool
	join bool
	// after is, on a join, the last marker injected before the producer
	// started: it will deliver only later ones.
	after int64
	// marker is an in-band control element (see Marker).
	marker *Marker
}

// keyer computes keys, key groups and subtasks for rows of one stream.
type keyer struct {
	idx         []int
	keyGroups   int
	parallelism int
	buf         []byte
}

// KeyGroup maps a key to its key group: its hash (window.KeyHash, which
// the exchange sends along with the row) modulo the number of key groups.
func KeyGroup(key string, keyGroups int) int {
	return int(window.KeyHash(key) % uint64(keyGroups))
}

// SubtaskFor maps a key group to the subtask that owns it: contiguous
// ranges, as in Flink, so rescaling moves whole ranges.
func SubtaskFor(keyGroup, keyGroups, parallelism int) int {
	return keyGroup * parallelism / keyGroups
}

// key builds the key of a row. A single string field is used as is; other
// keys are the fields' text joined by 0x1f.
func (k *keyer) key(row record.Row) (string, bool) {
	if len(k.idx) == 1 && row[k.idx[0]].T == record.TypeString {
		return row[k.idx[0]].S, false
	}
	k.buf = k.buf[:0]
	for j, i := range k.idx {
		if j > 0 {
			k.buf = append(k.buf, 0x1f)
		}
		k.buf = row[i].AppendText(k.buf)
	}
	return "", true
}

// group returns the key group send routes a row to. Rule engines take it
// as their key-group function, so a rule key's state is filed under the
// key group its records are routed by.
func (k *keyer) group(row record.Row) int {
	s, built := k.key(row)
	var h uint64
	if built {
		h = xxhash.Sum64(k.buf)
	} else {
		h = xxhash.Sum64String(s)
	}
	return int(h % uint64(k.keyGroups))
}

// exchangeOut is one producer's side of a keyBy exchange into a stage.
type exchangeOut struct {
	stage *stageRT
	id    int
	keyer keyer
	bufs  []*record.Batch
	// sentWM/sentIdle avoid re-sending unchanged watermarks.
	sentWM   []int64
	sentIdle []bool
	// gate is, per subtask, the marker this producer has passed and the
	// subtask may still be aligning: events after it wait (see awaitGate).
	gate  []int64
	width int
	// bp accounts the time the producer waits for the stage.
	bp *backpressure
}

// inputCapacity is the capacity of a subtask's input channel, in events.
const inputCapacity = 16

// alignBudget is how many events of inputs past a marker a subtask queues
// while it aligns; beyond it, those inputs wait — they are blocked, as in
// Flink, rather than buffered without bound. A few batches keep a short
// alignment from stalling anyone.
const alignBudget = 32

// alignSignal is a subtask's alignment progress as its producers see it.
type alignSignal struct {
	aligned atomic.Int64 // the last marker the subtask handled
	queued  atomic.Int64 // events it holds back now
	mu      sync.Mutex
	changed chan struct{} // closed and replaced when aligned moves
}

func newAlignSignal() *alignSignal { return &alignSignal{changed: make(chan struct{})} }

// publish records that the subtask handled marker id.
func (a *alignSignal) publish(id int64) {
	a.aligned.Store(id)
	a.mu.Lock()
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
}

// open reports whether a producer past marker gate may send now.
func (a *alignSignal) open(gate int64) bool {
	return a.aligned.Load() >= gate || a.queued.Load() < alignBudget
}

// await blocks until open(gate).
func (a *alignSignal) await(gate int64) {
	for {
		a.mu.Lock()
		ch := a.changed
		a.mu.Unlock()
		if a.open(gate) {
			return
		}
		<-ch
	}
}

func newExchangeOut(st *stageRT, id int, width int, after int64) *exchangeOut {
	p := len(st.inputs)
	x := &exchangeOut{
		stage:    st,
		id:       id,
		keyer:    keyer{idx: st.keyIdx, keyGroups: st.keyGroups, parallelism: p},
		bufs:     make([]*record.Batch, p),
		sentWM:   make([]int64, p),
		sentIdle: make([]bool, p),
		gate:     make([]int64, p),
		width:    width,
	}
	for i := range x.sentWM {
		x.sentWM[i] = minWM
		// A producer that joins after marker `after` is past it.
		x.gate[i] = after
	}
	return x
}

// awaitGate waits, before an event to subtask sub, until the subtask has
// aligned the marker this producer passed or has room to queue the event.
func (x *exchangeOut) awaitGate(sub int) {
	g := x.gate[sub]
	if g == 0 {
		return
	}
	sig := x.stage.align[sub]
	if sig.aligned.Load() >= g {
		x.gate[sub] = 0
		return
	}
	if sig.open(g) {
		return
	}
	start := time.Now()
	sig.await(g)
	x.bp.addOn(x.stage.waitName, time.Since(start))
}

// put sends ev to subtask sub, accounting a wait for room as backpressure.
func (x *exchangeOut) put(in chan event, ev event) {
	select {
	case in <- ev:
		return
	default:
	}
	start := time.Now()
	in <- ev
	x.bp.addOn(x.stage.waitName, time.Since(start))
}

// send partitions b by key and forwards each part with the watermark.
func (x *exchangeOut) send(b *record.Batch, wm int64, idle bool) {
	if b != nil {
		for i := 0; i < b.Len(); i++ {
			row := b.Row(i)
			// As keyer.group computes it, inlined on the record path.
			s, built := x.keyer.key(row)
			var h uint64
			if built {
				h = xxhash.Sum64(x.keyer.buf)
			} else {
				h = xxhash.Sum64String(s)
			}
			kg := int(h % uint64(x.keyer.keyGroups))
			sub := SubtaskFor(kg, x.keyer.keyGroups, x.keyer.parallelism)
			out := x.bufs[sub]
			if out == nil {
				out = x.stage.getBatch(x.width, max(64, b.Len()/x.keyer.parallelism*2))
				x.bufs[sub] = out
			}
			// Appended directly: AppendRow would clear the row first.
			out.Values = append(out.Values, row...)
			out.Times = append(out.Times, b.Times[i])
			if built {
				s = out.Intern(x.keyer.buf)
			}
			out.Keys = append(out.Keys, s)
			// The hash travels with the row: keyed state looks the key up
			// by it instead of hashing the key again.
			out.Hashes = append(out.Hashes, h)
			out.KeyGroups = append(out.KeyGroups, uint16(kg))
		}
	}
	for sub, in := range x.stage.inputs {
		out := x.bufs[sub]
		if out == nil && x.sentWM[sub] == wm && x.sentIdle[sub] == idle {
			continue
		}
		x.bufs[sub] = nil
		x.sentWM[sub], x.sentIdle[sub] = wm, idle
		x.awaitGate(sub)
		x.put(in, event{from: x.id, batch: out, wm: wm, idle: idle})
	}
}

// sendMarker forwards a marker to every subtask, after everything sent
// before it. Markers are never held at a gate: alignment waits for them.
func (x *exchangeOut) sendMarker(m *Marker) {
	for sub, in := range x.stage.inputs {
		in <- event{from: x.id, marker: m}
		x.gate[sub] = m.ID
	}
}

// finish tells every subtask this producer is done.
func (x *exchangeOut) finish() {
	for _, in := range x.stage.inputs {
		in <- event{from: x.id, wm: maxWM, done: true}
	}
}

// leave tells every subtask this producer stopped without ending its input.
func (x *exchangeOut) leave() {
	for sub, in := range x.stage.inputs {
		in <- event{from: x.id, wm: x.sentWM[sub], done: true, left: true}
	}
}

func subtaskName(stage string, i int) string { return stage + "-" + strconv.Itoa(i) }
