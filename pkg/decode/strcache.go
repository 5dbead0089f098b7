package decode

import "github.com/cespare/xxhash/v2"

// strCache hands out one string per distinct short text a field keeps
// repeating: machine ids, tags, status words, country codes. Such a field
// costs an arena copy per record, and the arena a collection per batch; a
// hit here costs a hash and a compare, and the string is shared by every
// row that has it. A field whose values mostly differ (ids, URLs, free
// text) stops using the cache after a probe of probeLen lookups, and is
// probed again every reprobe records.
type strCache struct {
	// entries are sets of two, the one used last first.
	entries [cacheSize]string
	on      bool
	// left counts down the lookups of the current probe (on) or the
	// records until the next one (off); hits counts the probe's hits.
	left, hits int
}

const (
	cacheSize = 1024 // entries, in sets of two
	// cacheMaxLen bounds the texts cached: longer ones are rarely repeated.
	cacheMaxLen = 64
	probeLen    = 4096
	// minHits is the share of a probe's lookups that must hit (in
	// 1/1024ths) for the cache to stay on: three in four.
	minHits = 768
	reprobe = 1 << 16
)

func newStrCache() *strCache {
	return &strCache{on: true, left: probeLen}
}

// get returns p as a string: the cached one when p was seen, a copy
// otherwise; ok is false when the cache is off (the caller interns).
func (c *strCache) get(p []byte) (s string, ok bool) {
	if !c.on {
		c.left--
		if c.left <= 0 {
			c.on, c.left, c.hits = true, probeLen, 0
		}
		return "", false
	}
	if len(p) > cacheMaxLen {
		c.account(false)
		return "", false
	}
	set := c.entries[xxhash.Sum64(p)%(cacheSize/2)*2:][:2]
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
	c.account(hit) // may empty the cache: s is kept
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
	if c.hits*1024 >= minHits*probeLen {
		c.left, c.hits = probeLen, 0
		return
	}
	c.on, c.left = false, reprobe
	clear(c.entries[:]) // let the strings go
}
