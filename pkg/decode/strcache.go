package decode

import "encoding/binary"

// strCache hands out one string per distinct short text a field keeps
// repeating: machine ids, tags, status words, country codes. Such a field
// costs an arena copy per record, and the arena a collection per batch; a
// hit here costs a hash and a compare, and the string is shared by every
// row that has it. The cache starts small and grows while a probe of
// probeLen lookups misses more than once in 32, up to maxEntries; a field
// whose values then still hit less than three times in four (ids, URLs,
// free text) stops using it and is probed again every reprobe records.
type strCache struct {
	// entries are sets of two, the one used last first; nil while off.
	entries []string
	size    int // entries once on
	// left counts down the lookups of the current probe (on) or the
	// records until the next one (off); hits counts the probe's hits.
	left, hits int
}

const (
	minEntries = 256
	maxEntries = 4096
	// cacheMaxLen bounds the texts cached: longer ones are rarely repeated.
	cacheMaxLen = 64
	probeLen    = 4096
	// fewMisses and minHits are shares of a probe's lookups, in
	// 1/1024ths: hits above fewMisses leave the cache as it is; at
	// maxEntries, hits below minHits turn it off.
	fewMisses = 992
	minHits   = 768
	reprobe   = 1 << 16
)

func newStrCache() *strCache {
	return &strCache{entries: make([]string, minEntries), size: minEntries, left: probeLen}
}

// get returns p as a string: the cached one when p was seen, a copy
// otherwise; ok is false when the cache is off (the caller interns).
func (c *strCache) get(p []byte) (s string, ok bool) {
	if c.entries == nil {
		c.left--
		if c.left <= 0 {
			c.entries, c.left, c.hits = make([]string, c.size), probeLen, 0
		}
		return "", false
	}
	if len(p) > cacheMaxLen {
		c.account(false)
		return "", false
	}
	i := strHash(p) & uint64(len(c.entries)/2-1) * 2
	set := c.entries[i : i+2 : i+2]
	hit := true
	switch {
	case set[0] == string(p):
	case set[1] == string(p):
		set[0], set[1] = set[1], set[0]
	default:
		// Two values sharing a set both stay; a third replaces the one
		// used longer ago.
		hit = false
		set[1], set[0] = set[0], string(p)
	}
	s = set[0]
	c.account(hit) // may replace the entries: s is kept
	return s, true
}

func (c *strCache) account(hit bool) {
	if hit {
		c.hits++
	}
	c.left--
	if c.left > 0 {
		return
	}
	hits := c.hits * 1024 / probeLen
	c.left, c.hits = probeLen, 0
	switch {
	case hits >= fewMisses:
	case c.size < maxEntries:
		// Values sharing sets, or more of them than entries.
		c.size *= 4
		c.entries = make([]string, c.size)
	case hits >= minHits:
	default:
		c.entries, c.left = nil, reprobe // let the strings go
	}
}

// strHash is a quick hash of a short text for the cache's index: a
// multiply-xorshift over its 8-byte words (the last one overlapping), the
// length mixed in.
func strHash(p []byte) uint64 {
	const m = 0xbf58476d1ce4e5b9
	h := uint64(len(p)) * 0x9e3779b97f4a7c15
	switch {
	case len(p) >= 8:
		for i := 0; i+8 < len(p); i += 8 {
			h = (h ^ binary.LittleEndian.Uint64(p[i:])) * m
			h ^= h >> 31
		}
		h = (h ^ binary.LittleEndian.Uint64(p[len(p)-8:])) * m // overlapping
	case len(p) >= 4:
		w := uint64(binary.LittleEndian.Uint32(p))<<32 | uint64(binary.LittleEndian.Uint32(p[len(p)-4:]))
		h = (h ^ w) * m
	case len(p) > 0:
		w := uint64(p[0])<<16 | uint64(p[len(p)/2])<<8 | uint64(p[len(p)-1])
		h = (h ^ w) * m
	}
	h ^= h >> 29
	return h*m>>32 ^ h
}
