package parquet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"strings"

	"github.com/streamd/streamd/internal/binread"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink/parquet/pqfile"
)

// stateVersion is the first byte of an encoded prepared state; a decoder
// rejects versions it does not know instead of misreading them. Version 2
// added the layout flags; version 1 states are read with none set.
// Version 3 follows the type byte of a nested field with its members; it
// is written only for schemas with nested fields, so a state of a flat
// schema stays readable by a binary that knows version 2. Version 4
// follows a partition's files with its source ranges; it is written only
// when a partition has some.
const stateVersion = 4

// Layout flags: layoutTimestampMillis is layout.timestampMillis;
// layoutJSON says the JSON column names follow the flags.
const (
	layoutTimestampMillis = 1 << 0
	layoutJSON            = 1 << 1
)

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
	// Layout is how the task's files map the fields to Parquet columns.
	Layout layout
	// NextSeq is the task's next file sequence number, so a recovered task
	// never reuses a name.
	NextSeq   uint64
	Completed []completedFile
	Open      []openFile
	// Watermark is the task's watermark at the checkpoint, and Parts what
	// it wrote to each partition not yet committed (partition commits).
	Watermark int64
	Parts     map[string]partStats
}

// encodeState encodes s as: version byte, task, fields (name, type byte),
// layout flags (uvarint) and, with layoutJSON, the NUL-separated JSON
// column names, next sequence number, completed files (ref,
// size, rows), open files (ref, opened ms, encoded pqfile.State), the
// watermark and the partitions (dir, end, min and max ms, rows, late rows,
// closed byte, files (seq, rows, size)) — version 2 only — and a
// little-endian CRC-32C of everything before it.
// Strings and byte strings are uvarint-length prefixed; a ref is dir, seq,
// upload id and parts (number, ETag).
func encodeState(dst []byte, s *taskState) ([]byte, error) {
	version := byte(2)
	for _, f := range s.Fields {
		if f.Type.Nested() {
			version = 3
		}
	}
	for _, p := range s.Parts {
		if len(p.Sources) > 0 {
			version = 4
		}
	}
	b := append(dst, version)
	b = appendString(b, s.Task)
	b = binary.AppendUvarint(b, uint64(len(s.Fields)))
	for _, f := range s.Fields {
		b = appendString(b, f.Name)
		b = record.AppendFieldType(b, f)
	}
	var flags uint64
	if s.Layout.timestampMillis {
		flags |= layoutTimestampMillis
	}
	if s.Layout.json != "" {
		flags |= layoutJSON
	}
	b = binary.AppendUvarint(b, flags)
	if s.Layout.json != "" {
		b = appendString(b, s.Layout.json)
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
	b = binary.AppendVarint(b, s.Watermark)
	b = binary.AppendUvarint(b, uint64(len(s.Parts)))
	for _, dir := range slices.Sorted(maps.Keys(s.Parts)) {
		p := s.Parts[dir]
		b = appendString(b, dir)
		b = binary.AppendVarint(b, p.EndMs)
		b = binary.AppendVarint(b, p.MinMs)
		b = binary.AppendVarint(b, p.MaxMs)
		b = binary.AppendUvarint(b, uint64(p.Rows))
		b = binary.AppendUvarint(b, uint64(p.Late))
		closed := byte(0)
		if p.Closed {
			closed = 1
		}
		b = append(b, closed)
		b = binary.AppendUvarint(b, uint64(len(p.Files)))
		for _, f := range p.Files {
			b = binary.AppendUvarint(b, f.Seq)
			b = binary.AppendUvarint(b, uint64(f.Rows))
			b = binary.AppendUvarint(b, uint64(f.Size))
		}
		if version >= 4 {
			b = binary.AppendUvarint(b, uint64(len(p.Sources)))
			for _, k := range slices.SortedFunc(maps.Keys(p.Sources), func(x, y originKey) int {
				if c := strings.Compare(x.Source, y.Source); c != 0 {
					return c
				}
				return strings.Compare(x.Split, y.Split)
			}) {
				r := p.Sources[k]
				b = appendString(b, k.Source)
				b = appendString(b, k.Split)
				b = appendString(b, r.First)
				b = appendString(b, r.Last)
			}
		}
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
	if body[0] > stateVersion || body[0] < 1 {
		return nil, fmt.Errorf("decode parquet sink state: unknown version %d", body[0])
	}
	s, err := decodeBody(body[1:], body[0])
	if err != nil {
		return nil, fmt.Errorf("decode parquet sink state: %w: %w", errCorruptState, err)
	}
	return s, nil
}

func decodeBody(body []byte, version byte) (*taskState, error) {
	d := decoder{Reader: binread.Reader{B: body}}
	s := &taskState{Task: d.Str()}
	if d.Err == nil {
		d.Fail(validTask(s.Task))
	}
	n := d.Count(2)
	if n > 0 {
		s.Fields = make([]record.Field, 0, n)
	}
	for range n {
		f := record.Field{Name: d.Str()}
		d.fieldType(&f, version)
		if d.Err == nil && f.Name == "" {
			d.Fail(errors.New("field without a name"))
		}
		if d.Err == nil && f.Type.Nested() {
			d.Fail(f.Validate())
		}
		s.Fields = append(s.Fields, f)
	}
	if d.Err == nil && len(s.Fields) == 0 {
		d.Fail(errors.New("no fields"))
	}
	if version >= 2 {
		flags := d.Uvarint()
		if d.Err == nil && flags&^(layoutTimestampMillis|layoutJSON) != 0 {
			d.Fail(fmt.Errorf("unknown layout flags %#x", flags))
		}
		s.Layout.timestampMillis = flags&layoutTimestampMillis != 0
		if flags&layoutJSON != 0 {
			names := d.Str()
			if d.Err == nil && names == "" {
				d.Fail(errors.New("empty json column list"))
			}
			s.Layout = newLayout(s.Layout.timestampMillis, strings.Split(names, "\x00"))
		}
	}
	s.NextSeq = d.Uvarint()
	n = d.Count(6)
	for range n {
		c := completedFile{fileRef: d.ref(), Size: d.Int64(), Rows: d.Int64()}
		s.Completed = append(s.Completed, c)
	}
	n = d.Count(7)
	for range n {
		o := openFile{fileRef: d.ref(), OpenedMs: d.Varint()}
		raw := d.Bytes()
		if d.Err == nil {
			o.File, d.Err = pqfile.UnmarshalState(raw)
		}
		s.Open = append(s.Open, o)
	}
	if version >= 2 {
		s.Watermark = d.Varint()
		n = d.Count(10)
		for range n {
			dir := d.Str()
			if d.Err == nil {
				d.Fail(validDir(dir))
			}
			p := partStats{EndMs: d.Varint(), MinMs: d.Varint(), MaxMs: d.Varint(), Rows: d.Int64(), Late: d.Int64()}
			p.Closed = d.Byte() == 1
			k := d.Count(3)
			for range k {
				p.Files = append(p.Files, partFileInfo{Seq: d.Uvarint(), Rows: d.Int64(), Size: d.Int64()})
			}
			if version >= 4 {
				k = d.Count(4)
				for range k {
					key := originKey{Source: d.Str(), Split: d.Str()}
					r := posRange{First: d.Str(), Last: d.Str()}
					if d.Err == nil && (!decimal(r.First) || !decimal(r.Last)) {
						d.Fail(fmt.Errorf("bad source range %q to %q", r.First, r.Last))
					}
					if p.Sources == nil {
						p.Sources = make(map[originKey]posRange, k)
					}
					p.Sources[key] = r
				}
			}
			if d.Err != nil {
				break
			}
			if s.Parts == nil {
				s.Parts = make(map[string]partStats, n)
			}
			s.Parts[dir] = p
		}
	}
	if d.Err == nil && len(d.B) != 0 {
		d.Err = fmt.Errorf("%d trailing bytes", len(d.B))
	}
	if d.Err != nil {
		return nil, d.Err
	}
	return s, nil
}

// decimal reports a non-empty string of decimal digits.
func decimal(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
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
type decoder struct{ binread.Reader }

// fieldType reads a field's type, written by record.AppendFieldType, into
// f; nested types need a version 3 state.
func (d *decoder) fieldType(f *record.Field, version byte) {
	if d.Err != nil {
		return
	}
	if len(d.B) > 0 && version < 3 && !record.Type(d.B[0]).Scalar() {
		d.Fail(fmt.Errorf("bad field %q of type %d", f.Name, d.B[0]))
		return
	}
	ft, rest, err := record.ReadFieldType(d.B, f.Name)
	if err != nil {
		d.Fail(err)
		return
	}
	*f, d.B = ft, rest
}

func (d *decoder) ref() fileRef {
	r := fileRef{Dir: d.Str(), Seq: d.Uvarint(), UploadID: d.Str()}
	if d.Err == nil {
		d.Fail(validDir(r.Dir))
	}
	n := d.Count(2)
	if n > maxParts {
		d.Fail(fmt.Errorf("%d parts", n))
		return r
	}
	if n > 0 {
		r.Parts = make([]store.Part, 0, n)
	}
	for range n {
		p := store.Part{Num: int(min(d.Uvarint(), maxParts+1)), ETag: d.Str()}
		if d.Err == nil && (p.Num != len(r.Parts)+1) {
			d.Fail(fmt.Errorf("part %d out of order", p.Num))
		}
		r.Parts = append(r.Parts, p)
	}
	if d.Err == nil && r.UploadID == "" && len(r.Parts) > 0 {
		d.Fail(errors.New("parts without an upload"))
	}
	return r
}
