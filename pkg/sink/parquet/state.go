package parquet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strings"

	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink/parquet/pqfile"
)

// stateVersion is the first byte of an encoded prepared state; a decoder
// rejects versions it does not know instead of misreading them.
const stateVersion = 1

// maxParts is the most parts a multipart upload may have.
const maxParts = 10000

// fileRef names one staged file: its partition directory and sequence
// number (which give its final name) and, in an object store, its upload.
type fileRef struct {
	Dir      string
	Seq      uint64
	UploadID string       // empty for a local file
	Parts    []store.Part // parts uploaded so far; nil for a local file
}

// completedFile is a file with its footer written, waiting to be published.
type completedFile struct {
	fileRef
	Size int64
	Rows int64
}

// openFile is a file still being written, with what it takes to resume it.
type openFile struct {
	fileRef
	OpenedMs int64
	File     pqfile.State
}

// taskState is what Prepare returns for one task and what Commit and
// Recover read back.
type taskState struct {
	// Task is the escaped task name, as it appears in file names.
	Task string
	// Fields is the record schema of the task's files, so Recover can
	// resume or finish them before (or without) a NewWriter for the task.
	Fields []record.Field
	// NextSeq is the task's next file sequence number, so a recovered task
	// never reuses a name.
	NextSeq   uint64
	Completed []completedFile
	Open      []openFile
}

// encodeState encodes s as: version byte, task, fields (name, type byte),
// next sequence number, completed files (ref, size, rows), open files (ref, opened ms, encoded
// pqfile.State), and a little-endian CRC-32C of everything before it.
// Strings and byte strings are uvarint-length prefixed; a ref is dir, seq,
// upload id and parts (number, ETag).
func encodeState(dst []byte, s *taskState) ([]byte, error) {
	b := append(dst, stateVersion)
	b = appendString(b, s.Task)
	b = binary.AppendUvarint(b, uint64(len(s.Fields)))
	for _, f := range s.Fields {
		b = appendString(b, f.Name)
		b = append(b, byte(f.Type))
	}
	b = binary.AppendUvarint(b, s.NextSeq)
	b = binary.AppendUvarint(b, uint64(len(s.Completed)))
	for i := range s.Completed {
		c := &s.Completed[i]
		if c.Size < 0 || c.Rows < 0 {
			return nil, fmt.Errorf("encode parquet sink state: negative size %d or rows %d", c.Size, c.Rows)
		}
		b = appendRef(b, &c.fileRef)
		b = binary.AppendUvarint(b, uint64(c.Size))
		b = binary.AppendUvarint(b, uint64(c.Rows))
	}
	b = binary.AppendUvarint(b, uint64(len(s.Open)))
	for i := range s.Open {
		o := &s.Open[i]
		b = appendRef(b, &o.fileRef)
		b = binary.AppendVarint(b, o.OpenedMs)
		fs, err := o.File.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode parquet sink state: %w", err)
		}
		b = binary.AppendUvarint(b, uint64(len(fs)))
		b = append(b, fs...)
	}
	return appendChecksum(b, len(dst)), nil
}

// appendChecksum appends the CRC-32C of b[start:].
func appendChecksum(b []byte, start int) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendRef(b []byte, r *fileRef) []byte {
	b = appendString(b, r.Dir)
	b = binary.AppendUvarint(b, r.Seq)
	b = appendString(b, r.UploadID)
	b = binary.AppendUvarint(b, uint64(len(r.Parts)))
	for _, p := range r.Parts {
		b = binary.AppendUvarint(b, uint64(p.Num))
		b = appendString(b, p.ETag)
	}
	return b
}

// errCorruptState is wrapped by every decoding failure of decodeState.
var errCorruptState = errors.New("corrupt parquet sink state")

// decodeState decodes and checks a state made by encodeState. A state comes
// from a checkpoint manifest, so everything that names a path is checked to
// stay below the sink's directory.
func decodeState(b []byte) (*taskState, error) {
	if len(b) < 1+4 {
		return nil, fmt.Errorf("decode parquet sink state: %w: %d bytes", errCorruptState, len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("decode parquet sink state: %w: checksum mismatch", errCorruptState)
	}
	if body[0] != stateVersion {
		return nil, fmt.Errorf("decode parquet sink state: unknown version %d", body[0])
	}
	s, err := decodeBody(body[1:])
	if err != nil {
		return nil, fmt.Errorf("decode parquet sink state: %w: %w", errCorruptState, err)
	}
	return s, nil
}

func decodeBody(body []byte) (*taskState, error) {
	d := decoder{b: body}
	s := &taskState{Task: d.string()}
	if d.err == nil {
		d.check(validTask(s.Task))
	}
	n := d.count(2)
	if n > 0 {
		s.Fields = make([]record.Field, 0, n)
	}
	for range n {
		f := record.Field{Name: d.string(), Type: record.Type(d.byte())}
		if d.err == nil && (f.Name == "" || f.Type == record.TypeNull || f.Type > record.TypeTimestamp) {
			d.check(fmt.Errorf("bad field %q of type %d", f.Name, f.Type))
		}
		s.Fields = append(s.Fields, f)
	}
	if d.err == nil && len(s.Fields) == 0 {
		d.check(errors.New("no fields"))
	}
	s.NextSeq = d.uvarint()
	n = d.count(6)
	for range n {
		c := completedFile{fileRef: d.ref(), Size: d.int64(), Rows: d.int64()}
		s.Completed = append(s.Completed, c)
	}
	n = d.count(7)
	for range n {
		o := openFile{fileRef: d.ref(), OpenedMs: d.varint()}
		raw := d.bytes()
		if d.err == nil {
			o.File, d.err = pqfile.UnmarshalState(raw)
		}
		s.Open = append(s.Open, o)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

// validTask rejects an escaped task name that could not have come from
// escapePathValue.
func validTask(task string) error {
	if task == "" || strings.ContainsAny(task, "/\\") || task == "." || task == ".." {
		return fmt.Errorf("bad task name %q", task)
	}
	return nil
}

// validDir rejects a partition directory that could leave the sink's
// directory: the renderer only makes relative paths of plain segments.
func validDir(dir string) error {
	if dir == "" {
		return nil
	}
	if strings.ContainsRune(dir, '\\') || strings.ContainsRune(dir, 0) {
		return fmt.Errorf("bad partition directory %q", dir)
	}
	for seg := range strings.SplitSeq(dir, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("bad partition directory %q", dir)
		}
	}
	return nil
}

// decoder reads fields in order and remembers the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) check(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) int64() int64 {
	v := d.uvarint()
	if v > math.MaxInt64 {
		d.check(errors.New("integer out of range"))
		return 0
	}
	return int64(v)
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// count reads a number of items, each at least minSize bytes, so a forged
// count cannot make the decoder allocate more than the input justifies.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/minSize) {
		d.err = fmt.Errorf("%d items in %d bytes", n, len(d.b))
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("field of %d bytes exceeds the %d remaining", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) ref() fileRef {
	r := fileRef{Dir: d.string(), Seq: d.uvarint(), UploadID: d.string()}
	if d.err == nil {
		d.check(validDir(r.Dir))
	}
	n := d.count(2)
	if n > maxParts {
		d.check(fmt.Errorf("%d parts", n))
		return r
	}
	if n > 0 {
		r.Parts = make([]store.Part, 0, n)
	}
	for range n {
		p := store.Part{Num: int(min(d.uvarint(), maxParts+1)), ETag: d.string()}
		if d.err == nil && (p.Num != len(r.Parts)+1) {
			d.check(fmt.Errorf("part %d out of order", p.Num))
		}
		r.Parts = append(r.Parts, p)
	}
	if d.err == nil && r.UploadID == "" && len(r.Parts) > 0 {
		d.check(errors.New("parts without an upload"))
	}
	return r
}
