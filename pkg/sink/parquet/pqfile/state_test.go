package pqfile

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStateRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		state State
	}{
		{name: "empty", state: State{Length: 4}},
		{name: "full", state: State{Length: 1 << 40, Pending: []byte("pend"), RowGroups: []byte{1, 2, 3}, Tail: []byte("PAR1tail"), NumRows: 12345}},
		{name: "tail only", state: State{Length: 4, Tail: []byte("PAR1"), NumRows: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.state.MarshalBinary()
			require.NoError(t, err)
			got, err := UnmarshalState(b)
			require.NoError(t, err)
			require.Equal(t, tt.state, got)
		})
	}
}

func TestUnmarshalStateRejects(t *testing.T) {
	good, err := State{Length: 4, Tail: []byte("x"), NumRows: 1}.MarshalBinary()
	require.NoError(t, err)
	flipped := bytes.Clone(good)
	flipped[2] ^= 1
	version := bytes.Clone(good)
	version[0] = 9
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{name: "empty", in: nil, want: "corrupt"},
		{name: "truncated", in: good[:len(good)-1], want: "checksum"},
		{name: "bit flip", in: flipped, want: "checksum"},
		{name: "unknown version", in: withCRC(version[:len(version)-4]), want: "unknown version"},
		{name: "trailing bytes", in: withCRC(append(bytes.Clone(good[:len(good)-4]), 0)), want: "trailing"},
		{name: "field too long", in: withCRC([]byte{stateVersion, 4, 0, 0, 0, 9, 1}), want: "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := UnmarshalState(tt.in)
			require.ErrorContains(t, err, tt.want)
		})
	}
	_, err = State{Length: -1}.MarshalBinary()
	require.Error(t, err)
}

// withCRC appends a valid checksum to a hand-made body.
func withCRC(body []byte) []byte {
	return appendCRC(bytes.Clone(body))
}

func FuzzUnmarshalState(f *testing.F) {
	for _, s := range []State{
		{Length: 4},
		{Length: 1000, Pending: []byte("p"), RowGroups: []byte{0x19, 0x1c}, Tail: []byte("PAR1"), NumRows: 7},
	} {
		b, err := s.MarshalBinary()
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{stateVersion, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalState(b)
		if err != nil {
			return
		}
		again, err := s.MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, b, again, "a decoded state must encode to the same bytes")
	})
}

// FuzzResume feeds arbitrary lengths, row group lists and row counts to
// Resume, which must reject what does not fit the file instead of
// panicking or allocating without bound. The tail is picked from valid
// ones: its pages are decoded by parquet-go, and State's checksum guards it.
func FuzzResume(f *testing.F) {
	schema := testSchema()
	path := filepath.Join(f.TempDir(), "seed.parquet")
	out, err := CreateLocal(path)
	require.NoError(f, err)
	w, err := New(out, schema, Options{RowGroupRows: 10})
	require.NoError(f, err)
	writeIDs(f, w, newRowBuilder(f, schema), idRange(0, 25))
	st, err := w.Snapshot()
	require.NoError(f, err)
	require.NoError(f, out.Close())
	tails := [][]byte{nil, st.Tail}
	f.Add(st.Length, st.RowGroups, uint8(1), st.NumRows)
	f.Add(st.Length, st.RowGroups, uint8(0), int64(20))
	f.Add(int64(4), []byte(nil), uint8(0), int64(0))
	f.Fuzz(func(t *testing.T, length int64, rowGroups []byte, tail uint8, numRows int64) {
		st := State{Length: length, RowGroups: rowGroups, Tail: tails[int(tail)%len(tails)], NumRows: numRows}
		w, err := Resume(discard{}, schema, Options{}, st)
		if err != nil {
			return
		}
		require.Equal(t, numRows, w.Rows())
		require.NoError(t, w.Close())
	})
}

func TestCheckCompactStruct(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{name: "empty struct", in: []byte{0}},
		{name: "huge list", in: []byte{0x19, 0xfc, 0xff, 0xff, 0xff, 0x07, 0}, want: "list of"},
		{name: "truncated", in: []byte{0x15}, want: "bad varint"},
		{name: "trailing", in: []byte{0, 0}, want: "trailing"},
		{name: "unknown type", in: []byte{0x1e, 0}, want: "unknown type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCompactStruct(tt.in)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}
