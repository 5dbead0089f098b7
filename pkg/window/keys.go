package window

import (
	"math/bits"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// KeyHash is the hash of a key: the keyBy exchange computes it to choose
// the key group and sends it with the row (record.Batch.Hashes), and the
// operator finds the key's state by it without hashing the key again.
func KeyHash(key string) uint64 { return xxhash.Sum64String(key) }

// keyTable indexes the operator's keys by their hash: open addressing with
// linear probing over a power-of-two array of 8-byte slots, each the high
// 32 bits of a key's hash (which also choose the home slot) and the key's
// id in the key slab plus one; 0 is an empty slot. A key costs a slot and
// a quarter or more of one, against some 40 bytes in a map[string]*T, and
// the garbage collector has no pointers to follow in it. Lookups compare
// the key itself after the hash bits match, so colliding hashes are only
// slower, never wrong. Keys are never deleted one by one: the sweep that
// drops expired keys rebuilds the table.
type keyTable struct {
	slots []uint64
	// shift turns a hash's high 32 bits into a home slot.
	shift uint
	n     int
}

const minTableSlots = 8

// slot returns the first slot to probe for hash tag.
func (t *keyTable) home(tag uint32) int { return int(tag >> t.shift) }

// insert adds key id with hash tag; the caller knows the key is not there.
func (t *keyTable) insert(tag, id uint32) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.resize(max(minTableSlots, 2*len(t.slots)))
	}
	t.place(uint64(tag)<<32 | uint64(id+1))
	t.n++
}

func (t *keyTable) place(s uint64) {
	mask := len(t.slots) - 1
	i := t.home(uint32(s >> 32))
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = s
}

// resize rehashes into n slots (a power of two) from the tags alone.
func (t *keyTable) resize(n int) {
	old := t.slots
	t.slots = make([]uint64, n)
	t.shift = uint(32 - bits.TrailingZeros(uint(n)))
	for _, s := range old {
		if s != 0 {
			t.place(s)
		}
	}
}

// reset empties the table, sized for n keys.
func (t *keyTable) reset(n int) {
	size := minTableSlots
	for n*4 > size*3 {
		size *= 2
	}
	if size == len(t.slots) {
		clear(t.slots)
	} else {
		t.slots = make([]uint64, size)
		t.shift = uint(32 - bits.TrailingZeros(uint(size)))
	}
	t.n = 0
}

// lookup returns the state of key (hash h), or nil.
func (o *Operator) lookup(h uint64, key string) *keyState {
	t := &o.table
	if len(t.slots) == 0 {
		return nil
	}
	tag := uint32(h >> 32)
	mask := len(t.slots) - 1
	for i := t.home(tag); ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return nil
		}
		if uint32(s>>32) == tag {
			if ks := o.slab.at(uint32(s) - 1); ks.key == key {
				return ks
			}
		}
	}
}

// keySlab holds every keyState in chunks that never move, so a key's
// state has a fixed address and a small id; ids of dropped keys are
// reused. Chunks double from 32 states up to slabChunk, so a stage with a
// few keys stays small.
type keySlab struct {
	chunks [][]keyState
	n      uint32 // ids handed out
	free   []uint32
}

const (
	slabFirstBits = 5  // the first chunk holds 32 states
	slabChunkBits = 10 // later chunks hold up to 1024
	slabChunk     = 1 << slabChunkBits
	// slabDoubling is the number of ids in the doubling chunks 32…1024.
	slabDoubling = 1<<(slabChunkBits+1) - 1<<slabFirstBits
)

// locate returns the chunk of id, its offset there and the chunk's size.
func locate(id uint32) (chunk int, off uint32, size uint32) {
	if id < slabDoubling {
		// Chunk c holds 32<<c ids starting at 32*(2^c - 1).
		c := bits.Len32(id>>slabFirstBits+1) - 1
		start := uint32(1<<slabFirstBits) * (1<<c - 1)
		return c, id - start, 1 << (slabFirstBits + c)
	}
	id -= slabDoubling
	return slabChunkBits - slabFirstBits + 1 + int(id>>slabChunkBits), id & (slabChunk - 1), slabChunk
}

// at returns the state of id.
func (s *keySlab) at(id uint32) *keyState {
	c, off, _ := locate(id)
	return &s.chunks[c][off]
}

// alloc returns a zeroed state and its id; reuse says whether a dropped
// key's id may be taken (not while a snapshot walks the ids).
func (s *keySlab) alloc(reuse bool) (uint32, *keyState) {
	if n := len(s.free); reuse && n > 0 {
		id := s.free[n-1]
		s.free = s.free[:n-1]
		return id, s.at(id)
	}
	id := s.n
	c, _, size := locate(id)
	if c == len(s.chunks) {
		s.chunks = append(s.chunks, make([]keyState, size))
	}
	s.n++
	return id, s.at(id)
}

// release zeroes the state of id (so the collector can take what it held)
// and keeps the id for reuse.
func (s *keySlab) release(id uint32) {
	*s.at(id) = keyState{}
	s.free = append(s.free, id)
}

// keyArena stores key text: many keys per allocation instead of one
// each. A chunk is freed by the collector once no key in it is left.
type keyArena struct{ buf []byte }

const keyArenaChunk = 64 << 10

func (a *keyArena) intern(s string) string {
	if len(s) == 0 {
		return ""
	}
	if len(s) > keyArenaChunk/8 {
		return string([]byte(s))
	}
	if cap(a.buf)-len(a.buf) < len(s) {
		a.buf = make([]byte, 0, keyArenaChunk)
	}
	start := len(a.buf)
	a.buf = append(a.buf, s...)
	b := a.buf[start:len(a.buf):len(a.buf)]
	return unsafe.String(unsafe.SliceData(b), len(b))
}
