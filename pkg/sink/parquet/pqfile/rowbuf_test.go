package pqfile

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// TestRowBufferKeepsRows appends random rows — byte arrays from empty to
// several arena chunks long, rows from one value to more than a value
// chunk, bad rows that must be dropped whole — and requires the buffer to
// hold exactly the good rows, copied (the caller's bytes are overwritten
// after each append), through resets and after sorting its views.
func TestRowBufferKeepsRows(t *testing.T) {
	const leaves = 4
	rng := rand.New(rand.NewPCG(1, 2))
	b := rowBuffer{leaves: leaves}
	for round := range 4 {
		var want []parquet.Row
		var wantSize int64
		for range 3000 {
			n := 1 + rng.IntN(8)
			if rng.IntN(200) == 0 {
				n = valueChunk + rng.IntN(100)
			}
			row := make(parquet.Row, n)
			for i := range row {
				switch rng.IntN(3) {
				case 0:
					row[i] = parquet.Int64Value(rng.Int64()).Level(0, 0, rng.IntN(leaves))
				case 1:
					row[i] = parquet.NullValue().Level(0, 0, rng.IntN(leaves))
				default:
					size := rng.IntN(40)
					if rng.IntN(300) == 0 {
						size = arenaChunk + rng.IntN(arenaChunk)
					}
					data := make([]byte, size)
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
					row[i] = parquet.ByteArrayValue(data).Level(0, 1, rng.IntN(leaves))
				}
			}
			bad := rng.IntN(50) == 0
			if bad {
				row[rng.IntN(n)] = parquet.Int64Value(1).Level(0, 0, leaves+rng.IntN(3))
			}
			in := row.Clone()
			err := b.append([]parquet.Row{in})
			// Overwrite what the caller passed: the buffer holds copies.
			for _, v := range in {
				if v.Kind() == parquet.ByteArray {
					clear(v.ByteArray())
				}
			}
			if bad {
				if err == nil {
					t.Fatalf("round %d: a value for column ≥ %d was accepted", round, leaves)
				}
				continue
			}
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			want = append(want, row)
			wantSize += int64(len(row)) * valueSize
			for _, v := range row {
				if v.Kind() == parquet.ByteArray {
					wantSize += int64(len(v.ByteArray()))
				}
			}
		}
		got := b.rows()
		if len(got) != len(want) || b.numRows() != int64(len(want)) {
			t.Fatalf("round %d: %d rows (numRows %d), want %d", round, len(got), b.numRows(), len(want))
		}
		if b.size != wantSize {
			t.Fatalf("round %d: size %d, want %d", round, b.size, wantSize)
		}
		for i := range want {
			if !equalRows(got[i], want[i]) {
				t.Fatalf("round %d: row %d is %v, want %v", round, i, got[i], want[i])
			}
		}
		// Sorting the views reorders the buffer without breaking a row.
		rev := make([]parquet.Row, len(got))
		for i := range got {
			rev[len(got)-1-i] = got[i]
		}
		copy(got, rev)
		for i, r := range b.rows() {
			if !equalRows(r, want[len(want)-1-i]) {
				t.Fatalf("round %d: reordered row %d differs", round, i)
			}
		}
		b.reset()
		if b.numRows() != 0 || b.size != 0 {
			t.Fatalf("round %d: reset left %d rows, size %d", round, b.numRows(), b.size)
		}
	}
}

func equalRows(a, b parquet.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Kind() != y.Kind() || x.Column() != y.Column() || x.DefinitionLevel() != y.DefinitionLevel() || x.IsNull() != y.IsNull() {
			return false
		}
		if x.Kind() == parquet.ByteArray {
			if !bytes.Equal(x.ByteArray(), y.ByteArray()) {
				return false
			}
		} else if !x.IsNull() && x.Int64() != y.Int64() {
			return false
		}
	}
	return true
}
