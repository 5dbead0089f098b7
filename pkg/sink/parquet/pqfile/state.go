package pqfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/streamd/streamd/internal/binread"
)

// stateVersion is the first byte of an encoded State; a decoder rejects
// versions it does not know instead of misreading them.
const stateVersion = 1

// State is a checkpoint of a Writer: enough to continue the same file after
// a restart. It is small (the row group list plus at most about
// Options.MaxTailBytes of encoded rows) and owns its byte slices.
type State struct {
	// Length is how many leading bytes of the output are durable. On resume
	// the output is cut back to it.
	Length int64
	// Pending holds the bytes written after Length that the output could not
	// make durable yet; Resume writes them again first.
	Pending []byte
	// RowGroups is the thrift-compact encoded list of the file's row groups
	// with offsets already rebased to the output.
	RowGroups []byte
	// Tail holds the buffered rows that are not in a row group yet, encoded
	// as a small Parquet file; nil when there are none.
	Tail []byte
	// NumRows is how many rows the file holds, tail included.
	NumRows int64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes s as: version byte, uvarint Length, uvarint NumRows,
// three uvarint-length-prefixed byte strings (Pending, RowGroups, Tail) and a
// little-endian CRC-32C of everything before it.
func (s State) MarshalBinary() ([]byte, error) {
	if s.Length < 0 || s.NumRows < 0 {
		return nil, fmt.Errorf("encode parquet file state: negative length %d or row count %d", s.Length, s.NumRows)
	}
	size := 1 + 5*binary.MaxVarintLen64 + len(s.Pending) + len(s.RowGroups) + len(s.Tail) + 4
	b := make([]byte, 0, size)
	b = append(b, stateVersion)
	b = binary.AppendUvarint(b, uint64(s.Length))
	b = binary.AppendUvarint(b, uint64(s.NumRows))
	for _, field := range [][]byte{s.Pending, s.RowGroups, s.Tail} {
		b = binary.AppendUvarint(b, uint64(len(field)))
		b = append(b, field...)
	}
	return appendCRC(b), nil
}

func appendCRC(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// errCorruptState is wrapped by every decoding failure of UnmarshalState.
var errCorruptState = errors.New("corrupt parquet file state")

// UnmarshalState decodes a State encoded by MarshalBinary. The returned
// slices are copies: b may be reused.
func UnmarshalState(b []byte) (State, error) {
	if len(b) < 1+4 {
		return State{}, fmt.Errorf("decode parquet file state: %w: %d bytes", errCorruptState, len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return State{}, fmt.Errorf("decode parquet file state: %w: checksum mismatch", errCorruptState)
	}
	if body[0] != stateVersion {
		return State{}, fmt.Errorf("decode parquet file state: unknown version %d", body[0])
	}
	d := binread.Reader{B: body[1:]}
	var s State
	s.Length = d.Int64()
	s.NumRows = d.Int64()
	s.Pending = copyBytes(&d)
	s.RowGroups = copyBytes(&d)
	s.Tail = copyBytes(&d)
	if d.Err == nil && len(d.B) != 0 {
		d.Err = fmt.Errorf("%d trailing bytes", len(d.B))
	}
	if d.Err != nil {
		return State{}, fmt.Errorf("decode parquet file state: %w: %w", errCorruptState, d.Err)
	}
	return s, nil
}

// copyBytes reads a length-prefixed field into memory of its own: a State
// must not share memory with the bytes it was decoded from.
func copyBytes(d *binread.Reader) []byte {
	v := d.Bytes()
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}
