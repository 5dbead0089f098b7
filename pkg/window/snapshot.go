package window

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"unsafe"

	"github.com/streamd/streamd/internal/binread"
	"github.com/streamd/streamd/pkg/record"
)

// snapshotVersion is the first byte of every key-group snapshot. Version 1
// (before retractions) is still read.
const (
	snapshotVersion   = 2
	snapshotVersionV1 = 1
)

// Pane flags in a version 2 snapshot.
const (
	paneFlagPending = 1 << iota
	paneFlagLive
)

// Snapshot encodes the operator's keyed state per key group: the unit of
// restore and rescaling. Empty keys kept for reuse are not part of it. The
// watermark is not either: on restore it is rebuilt from the splits.
func (o *Operator) Snapshot() map[uint16][]byte {
	groups := make(map[uint16][]*keyState)
	for _, ks := range o.keys {
		if len(ks.panes) > 0 {
			groups[ks.kg] = append(groups[ks.kg], ks)
		}
	}
	out := make(map[uint16][]byte, len(groups))
	for kg, keys := range groups {
		buf := make([]byte, 0, 16+len(keys)*(48+len(keys[0].key)+40*o.aggCount))
		buf = append(buf, snapshotVersion)
		buf = binary.AppendUvarint(buf, uint64(len(keys)))
		for _, ks := range keys {
			buf = o.appendKey(buf, ks)
		}
		out[kg] = buf
	}
	return out
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendKey encodes one key (version 2):
//
//	key, values, firedEnd, lastEnd,
//	fired windows: count, then end, next revision, live (byte) each,
//	panes: count, then start, end, next revision, flags, and either the
//	accumulators or, for a changelog input, count then identity, time and
//	row values of every current row.
func (o *Operator) appendKey(buf []byte, ks *keyState) []byte {
	buf = appendString(buf, ks.key)
	buf = binary.AppendUvarint(buf, uint64(len(ks.vals)))
	for _, v := range ks.vals {
		buf = AppendValue(buf, v)
	}
	buf = binary.AppendVarint(buf, ks.firedEnd)
	buf = binary.AppendVarint(buf, ks.lastEnd)
	buf = binary.AppendUvarint(buf, uint64(len(ks.fired)))
	for _, fw := range ks.fired {
		buf = binary.AppendVarint(buf, fw.end)
		buf = binary.AppendVarint(buf, int64(fw.next))
		buf = append(buf, boolByte(fw.live))
	}
	buf = binary.AppendUvarint(buf, uint64(len(ks.panes)))
	for j := range ks.panes {
		p := &ks.panes[j]
		buf = binary.AppendVarint(buf, p.start)
		buf = binary.AppendVarint(buf, p.end)
		buf = binary.AppendVarint(buf, int64(p.next))
		var flags byte
		if p.pending {
			flags |= paneFlagPending
		}
		if p.live {
			flags |= paneFlagLive
		}
		buf = append(buf, flags)
		if o.clog != nil {
			buf = binary.AppendUvarint(buf, uint64(len(p.contrib)))
			for id, c := range p.contrib {
				buf = appendString(buf, id)
				buf = binary.AppendVarint(buf, c.t)
				buf = binary.AppendUvarint(buf, uint64(len(c.row)))
				for _, v := range c.row {
					buf = AppendValue(buf, v)
				}
			}
			continue
		}
		for k := range p.accs {
			buf = AppendAcc(buf, &p.accs[k])
		}
	}
	return buf
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// snapReader reads a key-group snapshot; counts are also bounded by what
// the caller expects.
type snapReader struct{ binread.Reader }

func (r *snapReader) count(max int) int {
	n := r.Uvarint()
	if n > uint64(max) || n > uint64(len(r.B)) {
		r.Fail(fmt.Errorf("window snapshot: count %d exceeds the data", n))
		return 0
	}
	return int(n)
}

// slabString copies the next string into a shared slab: one allocation for
// many keys instead of one each.
func (r *snapReader) slabString(slab *[]byte) string {
	n := r.count(len(r.B))
	if r.Err != nil || n == 0 {
		return ""
	}
	if cap(*slab)-len(*slab) < n {
		*slab = make([]byte, 0, max(n, 64<<10))
	}
	start := len(*slab)
	*slab = append(*slab, r.B[:n]...)
	r.B = r.B[n:]
	b := (*slab)[start:len(*slab):len(*slab)]
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Restore adds the keys of one key group's snapshot to the operator. It
// is used on a new operator before any record is processed; a key group
// is restored at most once.
func (o *Operator) Restore(kg uint16, data []byte) error {
	if len(data) == 0 || (data[0] != snapshotVersion && data[0] != snapshotVersionV1) {
		return fmt.Errorf("restore key group %d: unknown snapshot version", kg)
	}
	v1 := data[0] == snapshotVersionV1
	if v1 && o.clog != nil {
		return fmt.Errorf("restore key group %d: the snapshot predates changelog inputs; restore it with the upstream stage's emit mode it was taken with", kg)
	}
	r := &snapReader{binread.Reader{B: data[1:]}}
	n := r.count(len(r.B))
	// Slabs: one allocation per key group instead of several per key.
	slab := make([]keyState, n)
	vals := make([]record.Value, n*len(o.keyIdx))
	if o.keys == nil || len(o.keys) == 0 {
		o.keys = make(map[string]*keyState, n*2)
	}
	var keyBytes []byte
	var paneSlab []pane
	var accSlab []Acc
	for i := 0; i < n && r.Err == nil; i++ {
		ks := &slab[i]
		ks.kg, ks.timer = kg, noTimer
		ks.key = r.slabString(&keyBytes)
		nv := r.count(len(o.keyIdx))
		if r.Err == nil && nv != len(o.keyIdx) {
			r.Err = fmt.Errorf("key %q has %d key values, the stage keys by %d fields", ks.key, nv, len(o.keyIdx))
		}
		ks.vals = vals[i*len(o.keyIdx) : (i+1)*len(o.keyIdx) : (i+1)*len(o.keyIdx)]
		for j := 0; j < nv && r.Err == nil; j++ {
			ks.vals[j], r.B, r.Err = ReadValue(r.B)
		}
		ks.firedEnd = r.Varint()
		ks.lastEnd = r.Varint()
		var revs map[int64]int32
		if nf := r.count(len(r.B)); nf > 0 {
			if v1 {
				revs = make(map[int64]int32, nf)
			} else {
				ks.fired = make([]firedWindow, 0, nf)
			}
			for j := 0; j < nf && r.Err == nil; j++ {
				end, next := r.Varint(), int32(r.Varint())
				if v1 {
					revs[end] = next
					continue
				}
				ks.fired = append(ks.fired, firedWindow{end: end, next: next, live: r.Byte() == 1})
			}
		}
		np := r.count(len(r.B))
		if cap(paneSlab)-len(paneSlab) < np {
			paneSlab = make([]pane, 0, max(np, 4096))
		}
		ks.panes = paneSlab[len(paneSlab) : len(paneSlab) : len(paneSlab)+np]
		paneSlab = paneSlab[:len(paneSlab)+np]
		if cap(accSlab)-len(accSlab) < np*o.aggCount {
			accSlab = make([]Acc, 0, max(np*o.aggCount, 4096))
		}
		accs := accSlab[len(accSlab) : len(accSlab)+np*o.aggCount : len(accSlab)+np*o.aggCount]
		accSlab = accSlab[:len(accSlab)+np*o.aggCount]
		for j := 0; j < np && r.Err == nil; j++ {
			p := pane{start: r.Varint(), end: r.Varint(), next: int32(r.Varint()), accs: accs[j*o.aggCount : (j+1)*o.aggCount : (j+1)*o.aggCount]}
			flags := r.Byte()
			if v1 {
				p.pending, p.live = flags == 1, p.next > 0
			} else {
				p.pending, p.live = flags&paneFlagPending != 0, flags&paneFlagLive != 0
			}
			if o.clog != nil {
				r.readContrib(&p, o.cfg.Input.Len())
			} else {
				for k := range p.accs {
					if r.Err == nil {
						r.B, r.Err = ReadAcc(r.B, &p.accs[k])
					}
				}
			}
			ks.panes = append(ks.panes, p)
		}
		if r.Err != nil {
			break
		}
		if v1 && o.kind == Sliding {
			o.firedFromV1(ks, revs)
		}
		if _, dup := o.keys[ks.key]; dup {
			return fmt.Errorf("restore key group %d: key %q restored twice", kg, ks.key)
		}
		o.keys[ks.key] = ks
		o.all = append(o.all, ks)
		o.schedule(ks)
	}
	if r.Err == nil && len(r.B) != 0 {
		r.Err = fmt.Errorf("%d bytes after the last key", len(r.B))
	}
	if r.Err != nil {
		return fmt.Errorf("restore key group %d: %w", kg, r.Err)
	}
	return nil
}

// readContrib reads the current rows of a changelog pane.
func (r *snapReader) readContrib(p *pane, width int) {
	nc := r.count(len(r.B))
	if r.Err != nil {
		return
	}
	p.contrib = make(map[string]contribution, nc)
	p.dirty = true
	for j := 0; j < nc && r.Err == nil; j++ {
		id := string(r.bytes())
		c := contribution{t: r.Varint()}
		nv := r.count(width)
		if r.Err == nil && nv != width {
			r.Fail(fmt.Errorf("changelog row of %d values, the input has %d", nv, width))
		}
		c.row = make([]record.Value, nv)
		for k := 0; k < nv && r.Err == nil; k++ {
			c.row[k], r.B, r.Err = ReadValue(r.B)
		}
		p.contrib[id] = c
	}
}

// bytes returns the next length-prefixed byte string (a view of the input).
func (r *snapReader) bytes() []byte {
	n := r.count(len(r.B))
	if r.Err != nil {
		return nil
	}
	b := r.B[:n]
	r.B = r.B[n:]
	return b
}

// firedFromV1 rebuilds the fired-window list of a sliding key from a version
// 1 snapshot, which kept only the revisions of updated windows: every
// window up to firedEnd that holds data was emitted when it fired.
func (o *Operator) firedFromV1(ks *keyState, revs map[int64]int32) {
	if ks.firedEnd == MinWatermark || o.final {
		return
	}
	seen := make(map[int64]bool)
	for j := range ks.panes {
		for _, w := range o.cfg.Assigner.WindowsOf(ks.panes[j].start, o.winBuf[:0]) {
			if w[1] <= ks.firedEnd && !seen[w[1]] {
				seen[w[1]] = true
				ks.fired = append(ks.fired, firedWindow{end: w[1], next: revs[w[1]] + 1, live: true})
			}
		}
	}
	slices.SortFunc(ks.fired, func(a, b firedWindow) int { return cmp.Compare(a.end, b.end) })
}

// SetWatermark sets the operator's event time without firing timers; used
// after a restore, before processing resumes.
func (o *Operator) SetWatermark(wm int64) { o.wm = wm }
