package record

import "testing"

// Rows appended after Grow(n) land in the room it made: the backing
// arrays are not reallocated, and rows written before Grow keep their
// values.
func TestBatchGrowKeepsRows(t *testing.T) {
	b := NewBatch(2, 1)
	r := b.AppendRow(7)
	r[0], r[1] = Int(1), String("a")
	b.Grow(100)
	vals, times := &b.Values[:1][0], &b.Times[:1][0]
	for i := range 100 {
		r := b.AppendRow(int64(i))
		r[0] = Int(int64(i))
	}
	if &b.Values[0] != vals || &b.Times[0] != times {
		t.Fatal("appending the rows Grow made room for reallocated the batch")
	}
	if b.Len() != 101 || b.Row(0)[0].Int() != 1 || b.Row(0)[1].S != "a" || b.Times[0] != 7 || b.Row(100)[0].Int() != 99 {
		t.Fatalf("rows changed across Grow: len %d, first %v at %d, last %v", b.Len(), b.Row(0), b.Times[0], b.Row(100))
	}
}

// A recycled batch reuses its arena: interning the same amount of text
// again allocates nothing, while Reset keeps handed-out strings intact.
func TestBatchRecycleReusesArena(t *testing.T) {
	b := NewBatch(1, 4)
	s := b.Intern([]byte("kept"))
	b.Reset()
	_ = b.Intern([]byte("next"))
	if s != "kept" {
		t.Fatalf("Reset overwrote an interned string: %q", s)
	}
	b.Recycle()
	// Three chunks' worth of keys per round, every chunk reused.
	allocs := testing.AllocsPerRun(100, func() {
		b.Recycle()
		for range 2500 {
			_ = b.Intern([]byte("machine-0042|tag-07"))
		}
	})
	if allocs != 0 {
		t.Fatalf("interning into a recycled arena allocated %.1f times per batch", allocs)
	}
}
