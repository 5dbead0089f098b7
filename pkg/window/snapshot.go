package window

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/streamd/streamd/internal/binread"
	"github.com/streamd/streamd/pkg/record"
)

// snapshotVersion is the first byte of every key-group snapshot.
const snapshotVersion = 1

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

func (o *Operator) appendKey(buf []byte, ks *keyState) []byte {
	buf = appendString(buf, ks.key)
	buf = binary.AppendUvarint(buf, uint64(len(ks.vals)))
	for _, v := range ks.vals {
		buf = AppendValue(buf, v)
	}
	buf = binary.AppendVarint(buf, ks.firedEnd)
	buf = binary.AppendVarint(buf, ks.lastEnd)
	buf = binary.AppendUvarint(buf, uint64(len(ks.revs)))
	for end, rev := range ks.revs {
		buf = binary.AppendVarint(buf, end)
		buf = binary.AppendVarint(buf, int64(rev))
	}
	buf = binary.AppendUvarint(buf, uint64(len(ks.panes)))
	for j := range ks.panes {
		p := &ks.panes[j]
		buf = binary.AppendVarint(buf, p.start)
		buf = binary.AppendVarint(buf, p.end)
		buf = binary.AppendVarint(buf, int64(p.emitted))
		if p.pending {
			buf = append(buf, 1)
		} else {
			buf = append(buf, 0)
		}
		for k := range p.accs {
			buf = AppendAcc(buf, &p.accs[k])
		}
	}
	return buf
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
	if len(data) == 0 || data[0] != snapshotVersion {
		return fmt.Errorf("restore key group %d: unknown snapshot version", kg)
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
		if nr := r.count(len(r.B)); nr > 0 {
			ks.revs = make(map[int64]int32, nr)
			for j := 0; j < nr && r.Err == nil; j++ {
				end := r.Varint()
				ks.revs[end] = int32(r.Varint())
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
			p := pane{start: r.Varint(), end: r.Varint(), emitted: int32(r.Varint()), accs: accs[j*o.aggCount : (j+1)*o.aggCount : (j+1)*o.aggCount]}
			p.pending = r.Byte() == 1
			for k := range p.accs {
				if r.Err == nil {
					r.B, r.Err = ReadAcc(r.B, &p.accs[k])
				}
			}
			ks.panes = append(ks.panes, p)
		}
		if r.Err != nil {
			break
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

// SetWatermark sets the operator's event time without firing timers; used
// after a restore, before processing resumes.
func (o *Operator) SetWatermark(wm int64) { o.wm = wm }
