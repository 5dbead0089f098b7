package decode

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/streamd/streamd/pkg/record"
)

// A field repeating a few values hands out one string per value, and every
// row still has its own value; a field of unique values stops using the
// cache after its probe and keeps decoding right.
func TestStringCacheSharesRepeatedValues(t *testing.T) {
	d, err := NewJSON(Config{Fields: []Field{
		{Name: "tag", Type: record.TypeString},
		{Name: "id", Type: record.TypeString},
	}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5 * probeLen
	b := record.NewBatch(2, n)
	for i := range n {
		msg := fmt.Sprintf(`{"tag":"tag-%02d","id":"id-%07d"}`, i%40, i)
		if err := d.Decode([]byte(msg), 1, b); err != nil {
			t.Fatal(err)
		}
	}
	last := map[string]*byte{}
	copies := 0
	for i := range n {
		row := b.Row(i)
		tag, id := fmt.Sprintf("tag-%02d", i%40), fmt.Sprintf("id-%07d", i)
		if row[0].S != tag || row[1].S != id {
			t.Fatalf("row %d: got %q %q, want %q %q", i, row[0].S, row[1].S, tag, id)
		}
		p := unsafe.StringData(row[0].S)
		if q, ok := last[tag]; ok && q != p {
			copies++ // two tags sharing an entry replace each other
		}
		last[tag] = p
	}
	if copies > n/10 {
		t.Errorf("%d of %d rows have a new copy of a tag seen before", copies, n)
	}
	tagCache, idCache := d.slots[0].cache, d.slots[1].cache
	if tagCache.entries == nil {
		t.Error("the cache of a 40-value field was turned off")
	}
	if idCache.entries != nil {
		t.Error("the cache of a field of unique values is still on after its probes")
	}
}

// Texts that map to the same entry replace each other and are never
// confused: a lookup compares the text, not only its hash.
func TestStringCacheCollisions(t *testing.T) {
	c := newStrCache()
	for i := range 10 * maxEntries {
		want := fmt.Sprintf("v%d", i%(2*maxEntries))
		got, ok := c.get([]byte(want))
		if ok && got != want {
			t.Fatalf("lookup %d: got %q for %q", i, got, want)
		}
	}
}
