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

// snapshotVersion is the first byte of every key-group snapshot.
// Versions 1 (before retractions) and 2 (before aggregate state sized by
// function) are still read.
const (
	snapshotVersion   = 3
	snapshotVersionV2 = 2
	snapshotVersionV1 = 1
)

// Pane flags in a snapshot of version 2 or later.
const (
	paneFlagPending = 1 << iota
	paneFlagLive
)

// Key flags in a version 3 snapshot: which optional parts follow.
const (
	keyFlagIsValue  = 1 << iota // the key is its one string value: no values follow
	keyFlagFiredEnd             // a sliding key's firedEnd follows
	keyFlagFired                // a sliding key's fired windows follow
	keyFlagLastEnd              // lastEnd follows (it is not the newest pane's end)
)

// Snapshot encodes the operator's keyed state per key group: the unit of
// restore and rescaling. Empty keys kept for reuse are not part of it. The
// watermark is not either: on restore it is rebuilt from the splits.
func (o *Operator) Snapshot() map[uint16][]byte {
	groups := make(map[uint16][]*keyState)
	o.eachKey(func(ks *keyState) {
		if len(ks.panes) > 0 {
			groups[ks.kg] = append(groups[ks.kg], ks)
		}
	})
	base := o.snapshotBase()
	out := make(map[uint16][]byte, len(groups))
	for kg, keys := range groups {
		buf := make([]byte, 0, 24+len(keys)*(16+len(keys[0].key)+8*o.nWords+40*o.nAccs))
		buf = o.appendHeader(buf, base, uint64(len(keys)))
		for _, ks := range keys {
			buf = o.appendKey(buf, ks, base)
		}
		out[kg] = buf
	}
	return out
}

// snapshotBase is what pane starts are written relative to: the
// watermark, near which most windows start, so they take a few bytes.
func (o *Operator) snapshotBase() int64 {
	if o.wm == MinWatermark || o.wm == MaxWatermark {
		return 0
	}
	return o.wm
}

// appendHeader writes a version 3 key group's header: version, the base
// of pane starts, the pane length ends are written relative to, the key
// count.
func (o *Operator) appendHeader(buf []byte, base int64, keys uint64) []byte {
	buf = append(buf, snapshotVersion)
	buf = binary.AppendVarint(buf, base)
	buf = binary.AppendVarint(buf, o.pane)
	return binary.AppendUvarint(buf, keys)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendKey encodes one key (version 3):
//
//	flags (keyFlag*), key,
//	values (count, then each) unless the key is its one string value,
//	firedEnd, lastEnd and the fired windows (count, then end, next
//	revision, live byte each) when flagged,
//	panes: count, then per pane start − base, end − start − pane length,
//	next revision, flags (paneFlag*), and either each aggregate's state
//	(words in its own compact form, an Acc as AppendAcc writes it) or,
//	for a changelog input, count then identity, time and row values of
//	every current row.
func (o *Operator) appendKey(buf []byte, ks *keyState, base int64) []byte {
	var flags byte
	if ks.vals == nil && len(o.keyIdx) == 1 {
		flags |= keyFlagIsValue
	}
	if sl := ks.sl; sl != nil {
		if sl.firedEnd != MinWatermark {
			flags |= keyFlagFiredEnd
		}
		if len(sl.fired) > 0 {
			flags |= keyFlagFired
		}
	}
	newest := int64(MinWatermark)
	for j := range ks.panes {
		newest = max(newest, ks.panes[j].end)
	}
	if ks.lastEnd != newest {
		flags |= keyFlagLastEnd
	}
	buf = append(buf, flags)
	buf = appendString(buf, ks.key)
	if flags&keyFlagIsValue == 0 {
		vals := o.keyVals(ks)
		buf = binary.AppendUvarint(buf, uint64(len(vals)))
		for _, v := range vals {
			buf = record.AppendValue(buf, v)
		}
	}
	if flags&keyFlagFiredEnd != 0 {
		buf = binary.AppendVarint(buf, ks.sl.firedEnd)
	}
	if flags&keyFlagLastEnd != 0 {
		buf = binary.AppendVarint(buf, ks.lastEnd)
	}
	if flags&keyFlagFired != 0 {
		buf = binary.AppendUvarint(buf, uint64(len(ks.sl.fired)))
		for _, fw := range ks.sl.fired {
			buf = binary.AppendVarint(buf, fw.end)
			buf = binary.AppendVarint(buf, int64(fw.next))
			buf = append(buf, boolByte(fw.live))
		}
	}
	buf = binary.AppendUvarint(buf, uint64(len(ks.panes)))
	for j := range ks.panes {
		p := &ks.panes[j]
		buf = binary.AppendVarint(buf, p.start-base)
		buf = binary.AppendVarint(buf, p.end-p.start-o.pane)
		buf = binary.AppendUvarint(buf, uint64(p.next))
		var pf byte
		if p.pending {
			pf |= paneFlagPending
		}
		if p.live {
			pf |= paneFlagLive
		}
		buf = append(buf, pf)
		if o.clog != nil {
			buf = binary.AppendUvarint(buf, uint64(len(p.x.contrib)))
			for id, c := range p.x.contrib {
				buf = appendString(buf, id)
				buf = binary.AppendVarint(buf, c.t)
				buf = binary.AppendUvarint(buf, uint64(len(c.row)))
				for _, v := range c.row {
					buf = record.AppendValue(buf, v)
				}
			}
			continue
		}
		for _, sl := range o.slots {
			if sl.w != nil {
				buf = sl.w.appendW(buf, o.paneWords(p)[sl.off:])
			} else {
				buf = AppendAcc(buf, &p.x.accs[sl.off])
			}
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

// slab hands out pieces of larger allocations: one allocation per few
// thousand items instead of one each.
type slab[T any] struct{ buf []T }

func (s *slab[T]) take(n int) []T {
	if n == 0 {
		return nil
	}
	if cap(s.buf)-len(s.buf) < n {
		s.buf = make([]T, 0, max(n, 4096))
	}
	out := s.buf[len(s.buf) : len(s.buf)+n : len(s.buf)+n]
	s.buf = s.buf[:len(s.buf)+n]
	return out
}

// Restore adds the keys of one key group's snapshot to the operator. It
// is used on a new operator before any record is processed; a key group
// is restored at most once.
func (o *Operator) Restore(kg uint16, data []byte) error {
	if len(data) == 0 || data[0] < snapshotVersionV1 || data[0] > snapshotVersion {
		return fmt.Errorf("restore key group %d: unknown snapshot version", kg)
	}
	version := data[0]
	if version == snapshotVersionV1 && o.clog != nil {
		return fmt.Errorf("restore key group %d: the snapshot predates changelog inputs; restore it with the upstream stage's emit mode it was taken with", kg)
	}
	r := &snapReader{binread.Reader{B: data[1:]}}
	var base, paneLen int64
	if version >= snapshotVersion {
		base, paneLen = r.Varint(), r.Varint()
	}
	n := r.count(len(r.B))
	// Slabs: one allocation per key group instead of several per key.
	var sliding []slidingKey
	if o.kind == Sliding {
		sliding = make([]slidingKey, n)
	}
	if need := o.table.n + n; need*4 > len(o.table.slots)*3 {
		size := max(minTableSlots, len(o.table.slots))
		for need*4 > size*3 {
			size *= 2
		}
		o.table.resize(size)
	}
	// cur is the id of the key being read, released if it is not kept.
	cur := int64(-1)
	defer func() {
		if cur >= 0 {
			o.slab.release(uint32(cur))
		}
	}()
	var keyBytes []byte
	var vals slab[record.Value]
	var panes slab[pane]
	var words slab[uint64]
	var exts slab[paneExt]
	var accs slab[Acc]
	var acc Acc
	for i := 0; i < n && r.Err == nil; i++ {
		id, ks := o.slab.alloc(true)
		cur = int64(id)
		ks.kg, ks.timer = kg, noTimer
		if sliding != nil {
			ks.sl = &sliding[i]
			ks.sl.firedEnd = MinWatermark
		}
		var flags byte
		if version >= snapshotVersion {
			flags = r.Byte()
			if flags&^(keyFlagIsValue|keyFlagFiredEnd|keyFlagFired|keyFlagLastEnd) != 0 || flags&(keyFlagFiredEnd|keyFlagFired) != 0 && ks.sl == nil {
				r.Fail(fmt.Errorf("key flags %#02x", flags))
				break
			}
		}
		ks.key = r.slabString(&keyBytes)
		if flags&keyFlagIsValue != 0 {
			if len(o.keyIdx) != 1 {
				r.Fail(fmt.Errorf("key %q is one value, the stage keys by %d fields", ks.key, len(o.keyIdx)))
				break
			}
		} else {
			nv := r.count(len(o.keyIdx))
			if r.Err == nil && nv != len(o.keyIdx) {
				r.Fail(fmt.Errorf("key %q has %d key values, the stage keys by %d fields", ks.key, nv, len(o.keyIdx)))
			}
			kv := vals.take(nv)
			for j := 0; j < nv && r.Err == nil; j++ {
				kv[j], r.B, r.Err = record.ReadValue(r.B)
			}
			switch {
			case r.Err != nil, nv == 0:
			case nv == 1 && kv[0].T == record.TypeString && kv[0].S == ks.key:
				// The key is its one string value: nothing more to keep.
			default:
				ks.vals = &kv[0]
			}
		}
		firedEnd, lastEnd, hasLast := int64(MinWatermark), int64(0), false
		var revs map[int64]int32
		switch version {
		case snapshotVersion:
			if flags&keyFlagFiredEnd != 0 {
				firedEnd = r.Varint()
			}
			if flags&keyFlagLastEnd != 0 {
				lastEnd, hasLast = r.Varint(), true
			}
			if flags&keyFlagFired != 0 {
				nf := r.count(len(r.B))
				ks.sl.fired = make([]firedWindow, 0, nf)
				for j := 0; j < nf && r.Err == nil; j++ {
					ks.sl.fired = append(ks.sl.fired, firedWindow{end: r.Varint(), next: int32(r.Varint()), live: r.Byte() == 1})
				}
			}
		default:
			firedEnd, lastEnd, hasLast = r.Varint(), r.Varint(), true
			if nf := r.count(len(r.B)); nf > 0 {
				var fired []firedWindow
				if version == snapshotVersionV1 {
					revs = make(map[int64]int32, nf)
				} else {
					fired = make([]firedWindow, 0, nf)
				}
				for j := 0; j < nf && r.Err == nil; j++ {
					end, next := r.Varint(), int32(r.Varint())
					if version == snapshotVersionV1 {
						revs[end] = next
						continue
					}
					fired = append(fired, firedWindow{end: end, next: next, live: r.Byte() == 1})
				}
				if ks.sl != nil {
					ks.sl.fired = fired
				}
			}
		}
		if ks.sl != nil {
			ks.sl.firedEnd = firedEnd
		}
		np := r.count(len(r.B))
		ks.panes = panes.take(np)[:0]
		for j := 0; j < np && r.Err == nil; j++ {
			var p pane
			if version >= snapshotVersion {
				p.start = base + r.Varint()
				p.end = p.start + paneLen + r.Varint()
				p.next = int32(r.Uvarint())
			} else {
				p.start, p.end, p.next = r.Varint(), r.Varint(), int32(r.Varint())
			}
			pf := r.Byte()
			if version == snapshotVersionV1 {
				p.pending, p.live = pf == 1, p.next > 0
			} else {
				p.pending, p.live = pf&paneFlagPending != 0, pf&paneFlagLive != 0
			}
			if o.needsExt() {
				p.x = &exts.take(1)[0]
				p.x.accs = accs.take(o.nAccs)
				if o.nWords > inlineWords {
					p.x.w = words.take(o.nWords)
				}
			}
			w := o.paneWords(&p)
			if o.clog != nil {
				r.readContrib(o, &p, o.cfg.Input.Len())
			} else {
				for _, sl := range o.slots {
					if r.Err != nil {
						break
					}
					switch {
					case version < snapshotVersion:
						// An Acc per aggregate; word state converts.
						if r.B, r.Err = ReadAcc(r.B, &acc); r.Err == nil {
							if sl.w != nil {
								sl.w.fromAcc(&acc, w[sl.off:])
							} else {
								p.x.accs[sl.off] = acc
							}
						}
					case sl.w != nil:
						r.B, r.Err = sl.w.readW(r.B, w[sl.off:])
					default:
						r.B, r.Err = ReadAcc(r.B, &p.x.accs[sl.off])
					}
				}
			}
			ks.panes = append(ks.panes, p)
			if !hasLast {
				lastEnd = max(lastEnd, p.end)
				if j == 0 {
					lastEnd = p.end
				}
			}
		}
		ks.lastEnd = lastEnd
		if r.Err != nil {
			break
		}
		if version == snapshotVersionV1 && o.kind == Sliding {
			o.firedFromV1(ks, revs)
		}
		h := KeyHash(ks.key)
		if o.lookup(h, ks.key) != nil {
			return fmt.Errorf("restore key group %d: key %q restored twice", kg, ks.key)
		}
		ks.tag, ks.live = uint32(h>>32), true
		o.table.insert(ks.tag, id)
		o.nKeys++
		cur = -1
		o.stats.newKey(ks)
		o.stats.panes += int64(len(ks.panes))
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
func (r *snapReader) readContrib(o *Operator, p *pane, width int) {
	nc := r.count(len(r.B))
	if r.Err != nil {
		return
	}
	p.x.contrib = make(map[string]contribution, nc)
	p.x.dirty = true
	for j := 0; j < nc && r.Err == nil; j++ {
		id := string(r.bytes())
		c := contribution{t: r.Varint()}
		nv := r.count(width)
		if r.Err == nil && nv != width {
			r.Fail(fmt.Errorf("changelog row of %d values, the input has %d", nv, width))
		}
		c.row = make([]record.Value, nv)
		for k := 0; k < nv && r.Err == nil; k++ {
			c.row[k], r.B, r.Err = record.ReadValue(r.B)
		}
		p.x.contrib[id] = c
		o.stats.contrib(p.x, contribBytes(id, c.row))
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
	if ks.sl.firedEnd == MinWatermark || o.final {
		return
	}
	seen := make(map[int64]bool)
	for j := range ks.panes {
		for _, w := range o.cfg.Assigner.WindowsOf(ks.panes[j].start, o.winBuf[:0]) {
			if w[1] <= ks.sl.firedEnd && !seen[w[1]] {
				seen[w[1]] = true
				ks.sl.fired = append(ks.sl.fired, firedWindow{end: w[1], next: revs[w[1]] + 1, live: true})
			}
		}
	}
	slices.SortFunc(ks.sl.fired, func(a, b firedWindow) int { return cmp.Compare(a.end, b.end) })
}

// FinishRestore completes a restore: key groups restore independently,
// so there is nothing left to do.
func (o *Operator) FinishRestore() error { return nil }

// SetWatermark sets the operator's event time without firing timers; used
// after a restore, before processing resumes.
func (o *Operator) SetWatermark(wm int64) { o.wm = wm }
