package binread

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReader(t *testing.T) {
	var b []byte
	b = binary.AppendUvarint(b, 7)
	b = binary.AppendVarint(b, -3)
	b = append(b, 9)
	b = binary.AppendUvarint(b, 2)
	b = append(b, "hi"...)
	b = binary.AppendUvarint(b, 1) // count of 1 item
	r := Reader{B: b}
	require.Equal(t, uint64(7), r.Uvarint())
	require.Equal(t, int64(-3), r.Varint())
	require.Equal(t, byte(9), r.Byte())
	require.Equal(t, "hi", r.Str())
	require.Zero(t, r.Count(1), "a count larger than the bytes left is refused")
	require.Error(t, r.Err)
	require.Zero(t, r.Uvarint(), "reads after an error return zero")

	r = Reader{B: binary.AppendUvarint(nil, 1000)}
	require.Nil(t, r.Bytes())
	require.ErrorContains(t, r.Err, "exceeds")
}

func FuzzReader(f *testing.F) {
	f.Add([]byte{3, 'a', 'b', 'c', 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := Reader{B: data}
		for r.Err == nil && len(r.B) > 0 {
			_ = r.Bytes()
			_ = r.Count(4)
			_ = r.Int64()
		}
	})
}
