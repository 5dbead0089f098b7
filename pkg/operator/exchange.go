package operator

import (
	"strconv"

	"github.com/cespare/xxhash/v2"

	"github.com/streamd/streamd/pkg/record"
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

// KeyGroup maps a key to its key group.
func KeyGroup(key string, keyGroups int) int {
	return int(xxhash.Sum64String(key) % uint64(keyGroups))
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

// exchangeOut is one producer's side of a keyBy exchange into a stage.
type exchangeOut struct {
	stage *stageRT
	id    int
	keyer keyer
	bufs  []*record.Batch
	// sentWM/sentIdle avoid re-sending unchanged watermarks.
	sentWM   []int64
	sentIdle []bool
	width    int
}

func newExchangeOut(st *stageRT, id int, width int) *exchangeOut {
	p := len(st.inputs)
	x := &exchangeOut{
		stage:    st,
		id:       id,
		keyer:    keyer{idx: st.keyIdx, keyGroups: st.keyGroups, parallelism: p},
		bufs:     make([]*record.Batch, p),
		sentWM:   make([]int64, p),
		sentIdle: make([]bool, p),
		width:    width,
	}
	for i := range x.sentWM {
		x.sentWM[i] = minWM
	}
	return x
}

// send partitions b by key and forwards each part with the watermark.
func (x *exchangeOut) send(b *record.Batch, wm int64, idle bool) {
	if b != nil {
		for i := 0; i < b.Len(); i++ {
			row := b.Row(i)
			s, built := x.keyer.key(row)
			var kg int
			if built {
				kg = int(xxhash.Sum64(x.keyer.buf) % uint64(x.keyer.keyGroups))
			} else {
				kg = KeyGroup(s, x.keyer.keyGroups)
			}
			sub := SubtaskFor(kg, x.keyer.keyGroups, x.keyer.parallelism)
			out := x.bufs[sub]
			if out == nil {
				out = x.stage.getBatch(x.width, max(64, b.Len()/x.keyer.parallelism*2))
				x.bufs[sub] = out
			}
			copy(out.AppendRow(b.Times[i]), row)
			if built {
				s = out.Intern(x.keyer.buf)
			}
			out.Keys = append(out.Keys, s)
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
		in <- event{from: x.id, batch: out, wm: wm, idle: idle}
	}
}

// sendMarker forwards a marker to every subtask, after everything sent before it.
func (x *exchangeOut) sendMarker(m *Marker) {
	for _, in := range x.stage.inputs {
		in <- event{from: x.id, marker: m}
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
