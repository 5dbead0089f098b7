package pqfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// magic starts and ends every Parquet file.
const magic = "PAR1"

// createdBy names the writer in the footer.
const createdBy = "streamd"

// Defaults applied to zero Options fields.
const (
	// DefaultRowGroupRows is the default Options.RowGroupRows.
	DefaultRowGroupRows = 1 << 20
	// DefaultRowGroupBytes is the default Options.RowGroupBytes.
	DefaultRowGroupBytes = 128 << 20
	// DefaultMaxTailBytes is the default Options.MaxTailBytes.
	DefaultMaxTailBytes = 8 << 20
	// DefaultPageSize is the default Options.PageSize, parquet-mr's.
	DefaultPageSize = 1 << 20
	// DefaultDictionaryMaxBytes is the default Options.DictionaryMaxBytes.
	// It is smaller than parquet-mr's 1 MiB: a column whose distinct values
	// of one row group outgrow 64 KiB is not low-cardinality, and hashing
	// it into a dictionary up to 1 MiB cost a tenth of the throughput of
	// BenchmarkKafkaToParquetOnMinIO.
	DefaultDictionaryMaxBytes = 64 << 10
)

// ErrClosed is returned by a Writer used after Close.
var ErrClosed = errors.New("parquet file writer closed")

// Options tune a Writer. Zero fields take the defaults.
type Options struct {
	// Compression is the codec of every column chunk; nil means zstd.
	Compression compress.Codec
	// RowGroupRows flushes a row group when this many rows are buffered.
	RowGroupRows int
	// RowGroupBytes flushes a row group when the buffered rows take this
	// many bytes in memory (uncompressed, so row groups on disk are smaller).
	RowGroupBytes int64
	// MaxTailBytes bounds the buffered rows a checkpoint carries: Snapshot
	// first flushes a larger tail as a row group. It trades checkpoint size
	// against the number of row groups per file.
	MaxTailBytes int64
	// PageSize is the uncompressed size at which a column's data page is
	// cut. Smaller pages let readers skip more; larger ones compress better.
	PageSize int
	// EncodeBuffer, when set, is where row groups are encoded, shared by
	// the files one goroutine writes (a sink writer's partitions): each
	// file otherwise grows a buffer of its own to its largest row group,
	// and keeps it while open. The bytes of an encoding are consumed
	// before the next one, so sharing is safe on one goroutine only.
	EncodeBuffer *bytes.Buffer

	// DictionaryMaxBytes bounds the dictionary of a dictionary-encoded
	// column chunk: past it the chunk goes on in PLAIN encoding, as
	// parquet-mr does, so only low-cardinality columns stay dictionary
	// encoded.
	DictionaryMaxBytes int64
	// SortBy sorts the rows of every row group by these leaf columns
	// before it is written, and records the order in the row group's
	// sorting_columns. Sorting needs no memory beyond the buffered row
	// group. The tail a checkpoint carries is sorted when it is flushed.
	SortBy []SortColumn
}

// SortColumn is one key of Options.SortBy: ascending unless Descending,
// nulls last unless NullsFirst.
type SortColumn struct {
	Column     int
	Descending bool
	NullsFirst bool
}

// DefaultOptions returns the options a zero Options stands for.
func DefaultOptions() Options {
	return Options{
		Compression:   sharedZstd,
		RowGroupRows:  DefaultRowGroupRows,
		RowGroupBytes: DefaultRowGroupBytes,
		MaxTailBytes:  DefaultMaxTailBytes,
		PageSize:      DefaultPageSize,

		DictionaryMaxBytes: DefaultDictionaryMaxBytes,
	}
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	switch {
	case o.RowGroupRows < 0:
		return fmt.Errorf("RowGroupRows must not be negative, got %d", o.RowGroupRows)
	case o.RowGroupBytes < 0:
		return fmt.Errorf("RowGroupBytes must not be negative, got %d", o.RowGroupBytes)
	case o.MaxTailBytes < 0:
		return fmt.Errorf("MaxTailBytes must not be negative, got %d", o.MaxTailBytes)
	case o.PageSize < 0:
		return fmt.Errorf("PageSize must not be negative, got %d", o.PageSize)
	case o.DictionaryMaxBytes < 0:
		return fmt.Errorf("DictionaryMaxBytes must not be negative, got %d", o.DictionaryMaxBytes)
	}
	return nil
}

func (o Options) validateSort(leaves int) error {
	for _, sc := range o.SortBy {
		if sc.Column < 0 || sc.Column >= leaves {
			return fmt.Errorf("SortBy column %d, schema has %d columns", sc.Column, leaves)
		}
	}
	return nil
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Compression == nil {
		o.Compression = d.Compression
	}
	if o.RowGroupRows == 0 {
		o.RowGroupRows = d.RowGroupRows
	}
	if o.RowGroupBytes == 0 {
		o.RowGroupBytes = d.RowGroupBytes
	}
	if o.MaxTailBytes == 0 {
		o.MaxTailBytes = d.MaxTailBytes
	}
	if o.PageSize == 0 {
		o.PageSize = d.PageSize
	}
	if o.DictionaryMaxBytes == 0 {
		o.DictionaryMaxBytes = d.DictionaryMaxBytes
	}
	return o
}

// rowGroupList is how the row groups travel in State.RowGroups.
type rowGroupList struct {
	RowGroups thrift.Slice[format.RowGroup] `thrift:"1,required"`
}

// Writer writes one Parquet file to an Output. It is used by one goroutine.
type Writer struct {
	out    Output
	schema *parquet.Schema
	opts   Options
	leaves int

	// paths is the path of every leaf column, in column order.
	paths [][]string

	// buf holds the rows of the next row group (the tail), copied.
	buf rowBuffer
	// pwConfig configures the parquet-go writer that encodes a row group
	// (or the tail) as a whole Parquet file into mini. A new writer is made
	// for every encoding: parquet-go v0.32.0's Writer.Reset clears the
	// column paths it shares with the metadata of the previous file, so a
	// reset writer emits path_in_schema [""] (parquet-go/parquet-go#602).
	pwConfig *parquet.WriterConfig
	mini     *bytes.Buffer // Options.EncodeBuffer, or the file's own

	written int64 // bytes handed to out
	// encodedBytes and bufferedBytes are the bytes the flushed row groups
	// took on disk and in memory: their ratio estimates the on-disk size of
	// the buffered rows.
	encodedBytes, bufferedBytes int64
	// leafTypes orders values of each column for SortBy.
	leafTypes   []parquet.Type
	rowGroups   []format.RowGroup
	rowGroupsV  []byte // encoded rowGroups, nil when stale
	flushedRows int64
	// meta carries the schema elements and column orders of the footer,
	// taken from the first encoded Parquet file.
	meta *format.FileMetaData

	err    error // sticky: the file is broken after a failed write
	closed bool
}

// New starts a file on out, writing its leading magic bytes.
func New(out Output, schema *parquet.Schema, opts Options) (*Writer, error) {
	w, err := newWriter(out, schema, opts)
	if err != nil {
		return nil, err
	}
	if err := w.write([]byte(magic)); err != nil {
		return nil, err
	}
	return w, nil
}

func newWriter(out Output, schema *parquet.Schema, opts Options) (*Writer, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("create parquet file writer: %w", err)
	}
	if schema == nil {
		return nil, errors.New("create parquet file writer: nil schema")
	}
	opts = opts.withDefaults()
	// Version 1 data pages: every engine reads them (docs/parquet.md), while
	// v2 pages trip older Spark, Hive and Athena readers.
	cfg, err := parquet.NewWriterConfig(schema,
		parquet.Compression(opts.Compression),
		parquet.DataPageVersion(1),
		parquet.PageBufferSize(opts.PageSize),
		parquet.DictionaryMaxBytes(opts.DictionaryMaxBytes),
		parquet.CreatedBy(createdBy, "", ""))
	if err != nil {
		return nil, fmt.Errorf("create parquet file writer: %w", err)
	}
	w := &Writer{
		out:      out,
		schema:   schema,
		opts:     opts,
		paths:    schema.Columns(),
		pwConfig: cfg,
		mini:     opts.EncodeBuffer,
	}
	if w.mini == nil {
		w.mini = new(bytes.Buffer)
	}
	w.leaves = len(w.paths)
	w.buf.leaves = w.leaves
	if err := opts.validateSort(w.leaves); err != nil {
		return nil, fmt.Errorf("create parquet file writer: %w", err)
	}
	if len(opts.SortBy) > 0 {
		w.leafTypes = make([]parquet.Type, w.leaves)
		for j, p := range w.paths {
			leaf, _ := schema.Lookup(p...)
			w.leafTypes[j] = leaf.Node.Type()
		}
	}
	return w, nil
}

// Resume continues the file checkpointed in st. out must continue the
// output at st.Length (OpenLocalForResume does that for a local file):
// everything written after the checkpoint is discarded and replayed by the
// caller. schema and opts must be those of the checkpointed writer.
func Resume(out Output, schema *parquet.Schema, opts Options, st State) (*Writer, error) {
	w, err := newWriter(out, schema, opts)
	if err != nil {
		return nil, err
	}
	if err := w.restore(st); err != nil {
		return nil, fmt.Errorf("resume parquet file: %w", err)
	}
	return w, nil
}

// Finish closes the file checkpointed in st without further rows, for a
// file whose producing task no longer exists (after rescaling). It closes
// out.
func Finish(out Output, schema *parquet.Schema, opts Options, st State) error {
	w, err := Resume(out, schema, opts, st)
	if err != nil {
		return err
	}
	return w.Close()
}

func (w *Writer) restore(st State) error {
	total := st.Length + int64(len(st.Pending))
	if st.Length < 0 || total < int64(len(magic)) || st.NumRows < 0 {
		return fmt.Errorf("invalid state: length %d, %d pending bytes, %d rows", st.Length, len(st.Pending), st.NumRows)
	}
	var list rowGroupList
	if len(st.RowGroups) > 0 {
		if err := checkCompactStruct(st.RowGroups); err != nil {
			return fmt.Errorf("decode row groups: %w", err)
		}
		if err := thrift.Unmarshal(new(thrift.CompactProtocol), st.RowGroups, &list); err != nil {
			return fmt.Errorf("decode row groups: %w", err)
		}
	}
	if len(list.RowGroups) > math.MaxInt16 {
		return fmt.Errorf("invalid state: %d row groups", len(list.RowGroups))
	}
	for i := range list.RowGroups {
		rg := &list.RowGroups[i]
		if err := w.checkRowGroup(rg, total); err != nil {
			return fmt.Errorf("invalid row group %d: %w", i, err)
		}
		// States written before column paths were set here may carry the
		// empty paths of parquet-go's Writer.Reset; the file gets them right.
		w.setColumnPaths(rg)
		w.flushedRows += rg.NumRows
	}
	w.rowGroups = list.RowGroups
	if len(st.Tail) > 0 {
		if err := w.restoreTail(st.Tail); err != nil {
			return err
		}
	}
	if got := w.Rows(); got != st.NumRows {
		return fmt.Errorf("invalid state: holds %d rows, says %d", got, st.NumRows)
	}
	w.written = st.Length
	if len(st.Pending) > 0 {
		if err := w.write(st.Pending); err != nil {
			return err
		}
	}
	return nil
}

// checkRowGroup rejects a row group that does not fit the schema or lies
// outside the first total bytes of the output: a sign that the output was
// not cut where the state expects.
func (w *Writer) checkRowGroup(rg *format.RowGroup, total int64) error {
	if len(rg.Columns) != w.leaves {
		return fmt.Errorf("%d columns, schema has %d", len(rg.Columns), w.leaves)
	}
	if rg.NumRows < 0 || rg.NumRows > math.MaxInt64-w.flushedRows {
		return fmt.Errorf("bad row count %d", rg.NumRows)
	}
	for j := range rg.Columns {
		lo, hi, err := chunkRange(&rg.Columns[j])
		if err != nil {
			return err
		}
		if lo < int64(len(magic)) || hi > total {
			return fmt.Errorf("column %d spans bytes [%d, %d) outside the %d durable bytes", j, lo, hi, total)
		}
	}
	return nil
}

func (w *Writer) restoreTail(tail []byte) error {
	// Check the footer's encoding before parquet-go decodes it; see
	// checkCompactStruct.
	n := len(tail)
	if n < 12 || string(tail[:4]) != magic || string(tail[n-4:]) != magic {
		return errors.New("open tail: not a parquet file")
	}
	footerLen := int(binary.LittleEndian.Uint32(tail[n-8:]))
	if footerLen > n-12 {
		return fmt.Errorf("open tail: footer of %d bytes in a %d byte file", footerLen, n)
	}
	if err := checkCompactStruct(tail[n-8-footerLen : n-8]); err != nil {
		return fmt.Errorf("open tail: %w", err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(tail), int64(len(tail)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("open tail: %w", err)
	}
	if !parquet.EqualNodes(f.Schema(), w.schema) {
		return errors.New("tail schema differs from the writer schema")
	}
	if err := w.captureMeta(f.Metadata()); err != nil {
		return err
	}
	batch := make([]parquet.Row, 256)
	for _, rg := range f.RowGroups() {
		if err := w.readRows(rg.Rows(), batch); err != nil {
			return fmt.Errorf("read tail rows: %w", err)
		}
	}
	return nil
}

func (w *Writer) readRows(rows parquet.Rows, batch []parquet.Row) (err error) {
	defer func() {
		if closeErr := rows.Close(); err == nil {
			err = closeErr
		}
	}()
	for {
		n, err := rows.ReadRows(batch)
		if appendErr := w.buf.append(batch[:n]); appendErr != nil {
			return appendErr
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrNoProgress
		}
	}
}

// WriteRows buffers copies of rows (the caller may reuse them) and flushes
// a row group whenever Options.RowGroupRows or Options.RowGroupBytes is
// reached. Rows must follow the schema: values in leaf column order with
// their column index and levels set, as parquet.Schema.Deconstruct makes.
// A row naming a column the schema lacks is rejected with the rows after
// it; the rows before it stay buffered and the writer stays usable. A
// failed row group write makes the writer unusable.
func (w *Writer) WriteRows(rows []parquet.Row) error {
	if err := w.usable(); err != nil {
		return err
	}
	for len(rows) > 0 {
		room := w.opts.RowGroupRows - int(w.buf.numRows())
		if room <= 0 {
			// Only a restored tail can exceed the limit.
			if err := w.flush(); err != nil {
				return err
			}
			continue
		}
		n := min(len(rows), room)
		if err := w.buf.append(rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
		if int(w.buf.numRows()) >= w.opts.RowGroupRows || w.buf.size >= w.opts.RowGroupBytes {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Size is the file's size so far: bytes written plus the in-memory size of
// the buffered rows (an overestimate of what they take once encoded).
func (w *Writer) Size() int64 { return w.written + w.buf.size }

// EstimatedSize is the file's expected size if it were closed now: bytes
// written plus the buffered rows at the compression ratio of the row groups
// flushed so far (at their in-memory size before the first). Rolling files
// by it makes their size on disk close to the target.
func (w *Writer) EstimatedSize() int64 {
	if w.bufferedBytes == 0 {
		return w.Size()
	}
	return w.written + int64(float64(w.buf.size)*float64(w.encodedBytes)/float64(w.bufferedBytes))
}

// Rows is how many rows the file holds, buffered ones included.
func (w *Writer) Rows() int64 { return w.flushedRows + w.buf.numRows() }

// RowGroups is how many row groups have been written.
func (w *Writer) RowGroups() int { return len(w.rowGroups) }

// Snapshot checkpoints the file: it flushes a tail larger than
// Options.MaxTailBytes as a row group, makes the output durable and returns
// the state Resume needs.
func (w *Writer) Snapshot() (State, error) {
	if err := w.usable(); err != nil {
		return State{}, err
	}
	if w.buf.size > w.opts.MaxTailBytes {
		if err := w.flush(); err != nil {
			return State{}, err
		}
	}
	var tail []byte
	if w.buf.numRows() > 0 {
		data, md, err := w.encode(w.buf.rows())
		if err != nil {
			return State{}, err
		}
		if err := w.captureMeta(md); err != nil {
			return State{}, err
		}
		tail = bytes.Clone(data)
	}
	rowGroups, err := w.encodedRowGroups()
	if err != nil {
		return State{}, err
	}
	pending, err := w.out.Sync()
	if err != nil {
		w.err = fmt.Errorf("sync parquet output: %w", err)
		return State{}, w.err
	}
	return State{
		Length:    w.written - int64(len(pending)),
		Pending:   bytes.Clone(pending),
		RowGroups: bytes.Clone(rowGroups),
		Tail:      tail,
		NumRows:   w.Rows(),
	}, nil
}

// Close flushes the buffered rows, writes the footer and closes the output.
// The output is closed even when the file could not be completed.
func (w *Writer) Close() error {
	if w.closed {
		return ErrClosed
	}
	err := w.finish()
	w.closed = true
	if closeErr := w.out.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("close parquet output: %w", closeErr)
	}
	return err
}

func (w *Writer) finish() error {
	if w.err != nil {
		return w.err
	}
	if err := w.flush(); err != nil {
		return err
	}
	if w.meta == nil {
		// No rows were ever encoded: an empty file still needs the schema.
		_, md, err := w.encode(nil)
		if err != nil {
			return err
		}
		if err := w.captureMeta(md); err != nil {
			return err
		}
	}
	md := format.FileMetaData{
		Version:      w.meta.Version,
		Schema:       w.meta.Schema,
		NumRows:      w.flushedRows,
		RowGroups:    w.rowGroups,
		CreatedBy:    createdBy,
		ColumnOrders: w.meta.ColumnOrders,
	}
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), &md)
	if err != nil {
		return fmt.Errorf("encode parquet footer: %w", err)
	}
	footer = binary.LittleEndian.AppendUint32(footer, uint32(len(footer)))
	footer = append(footer, magic...)
	return w.write(footer)
}

func (w *Writer) usable() error {
	if w.closed {
		return ErrClosed
	}
	return w.err
}

func (w *Writer) write(p []byte) error {
	n, err := w.out.Write(p)
	w.written += int64(n)
	if err == nil && n != len(p) {
		err = fmt.Errorf("short write of %d bytes out of %d", n, len(p))
	}
	if err != nil {
		w.err = fmt.Errorf("write parquet output: %w", err)
		return w.err
	}
	return nil
}

// encode writes rows as a complete Parquet file into w.mini and returns its
// bytes and metadata, both valid until the next encode.
func (w *Writer) encode(rows []parquet.Row) ([]byte, *format.FileMetaData, error) {
	w.mini.Reset()
	pw := parquet.NewWriter(w.mini, w.pwConfig)
	if _, err := pw.WriteRows(rows); err != nil {
		return nil, nil, fmt.Errorf("encode row group: %w", err)
	}
	if err := pw.Close(); err != nil {
		return nil, nil, fmt.Errorf("encode row group: %w", err)
	}
	return w.mini.Bytes(), pw.File().Metadata(), nil
}

// setColumnPaths names every column chunk of rg after its leaf column.
// The file layout is this package's, so the path is set from the schema
// rather than trusted from the encoder: parquet-mr based readers (Spark,
// Hive, Athena, Trino's Hive connector) look columns up by path_in_schema.
func (w *Writer) setColumnPaths(rg *format.RowGroup) {
	for j := range rg.Columns {
		rg.Columns[j].MetaData.PathInSchema = thrift.Slice[string](slices.Clone(w.paths[j]))
	}
}

// captureMeta keeps a deep copy of the footer fields that describe the
// schema; every encoded file has the same ones.
func (w *Writer) captureMeta(md *format.FileMetaData) error {
	if w.meta != nil {
		return nil
	}
	b, err := thrift.Marshal(new(thrift.CompactProtocol), &format.FileMetaData{
		Version:      md.Version,
		Schema:       md.Schema,
		ColumnOrders: md.ColumnOrders,
	})
	if err != nil {
		return fmt.Errorf("copy parquet schema: %w", err)
	}
	meta := new(format.FileMetaData)
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), b, meta); err != nil {
		return fmt.Errorf("copy parquet schema: %w", err)
	}
	w.meta = meta
	return nil
}

// flush encodes the buffered rows as one row group, appends its column
// chunks to the output and records its metadata.
func (w *Writer) flush() error {
	if w.buf.numRows() == 0 {
		return nil
	}
	if err := w.flushBuffer(); err != nil {
		w.err = err
		return err
	}
	w.buf.reset()
	return nil
}

func (w *Writer) flushBuffer() error {
	rows := w.buf.rows()
	if len(w.opts.SortBy) > 0 {
		slices.SortStableFunc(rows, w.compareRows)
	}
	data, md, err := w.encode(rows)
	if err != nil {
		return err
	}
	if err := w.captureMeta(md); err != nil {
		return err
	}
	if len(w.rowGroups)+len(md.RowGroups) > math.MaxInt16 {
		return fmt.Errorf("flush row group: file has %d row groups already", len(w.rowGroups))
	}
	// Copy the row groups out of the encoder, which reuses its metadata.
	b, err := thrift.Marshal(new(thrift.CompactProtocol), &rowGroupList{RowGroups: md.RowGroups})
	if err != nil {
		return fmt.Errorf("copy row group metadata: %w", err)
	}
	var list rowGroupList
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), b, &list); err != nil {
		return fmt.Errorf("copy row group metadata: %w", err)
	}
	lo, hi := int64(math.MaxInt64), int64(0)
	for i := range list.RowGroups {
		for j := range list.RowGroups[i].Columns {
			clo, chi, err := chunkRange(&list.RowGroups[i].Columns[j])
			if err != nil {
				return fmt.Errorf("flush row group: %w", err)
			}
			lo, hi = min(lo, clo), max(hi, chi)
		}
	}
	if lo < int64(len(magic)) || hi > int64(len(data)) || lo > hi {
		return fmt.Errorf("flush row group: column chunks span [%d, %d) of a %d byte file", lo, hi, len(data))
	}
	delta := w.written - lo
	var n int64
	for i := range list.RowGroups {
		rg := &list.RowGroups[i]
		rebase(rg, delta)
		w.setColumnPaths(rg)
		rg.Ordinal = int16(len(w.rowGroups) + i)
		rg.SortingColumns = nil
		for _, sc := range w.opts.SortBy {
			rg.SortingColumns = append(rg.SortingColumns, format.SortingColumn{
				ColumnIdx: int32(sc.Column), Descending: sc.Descending, NullsFirst: sc.NullsFirst,
			})
		}
		n += rg.NumRows
	}
	if err := w.write(data[lo:hi]); err != nil {
		return err
	}
	w.encodedBytes += hi - lo
	w.bufferedBytes += w.buf.size
	w.rowGroups = append(w.rowGroups, list.RowGroups...)
	w.rowGroupsV = nil
	w.flushedRows += n
	return nil
}

// compareRows orders rows by Options.SortBy, whose columns hold one value
// per row (they are not below a repeated group).
func (w *Writer) compareRows(a, b parquet.Row) int {
	for _, sc := range w.opts.SortBy {
		x, y := columnValue(a, sc.Column, w.leaves), columnValue(b, sc.Column, w.leaves)
		switch xn, yn := x.IsNull(), y.IsNull(); {
		case xn && yn:
			continue
		case xn || yn:
			if xn == sc.NullsFirst {
				return -1
			}
			return 1
		}
		c := w.leafTypes[sc.Column].Compare(x, y)
		if sc.Descending {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// columnValue returns the value of column c in row. A row with one value
// per column has value j in column j; a row with lists or maps has
// several values in their columns, in column order, so c is searched for.
func columnValue(row parquet.Row, c, leaves int) parquet.Value {
	if len(row) == leaves {
		return row[c]
	}
	i, _ := slices.BinarySearchFunc(row, c, func(v parquet.Value, c int) int { return v.Column() - c })
	if i < len(row) {
		return row[i]
	}
	return parquet.Value{}
}

// encodedRowGroups returns the row group list as stored in State, encoding
// it only when it changed since the last checkpoint.
func (w *Writer) encodedRowGroups() ([]byte, error) {
	if w.rowGroupsV == nil && len(w.rowGroups) > 0 {
		b, err := thrift.Marshal(new(thrift.CompactProtocol), &rowGroupList{RowGroups: w.rowGroups})
		if err != nil {
			return nil, fmt.Errorf("encode row groups: %w", err)
		}
		w.rowGroupsV = b
	}
	return w.rowGroupsV, nil
}

// chunkRange returns the bytes [lo, hi) a column chunk's pages (and bloom
// filter, if any) occupy.
func chunkRange(cc *format.ColumnChunk) (lo, hi int64, err error) {
	m := &cc.MetaData
	if cc.FilePath != "" || len(cc.EncryptedColumnMetadata) > 0 {
		return 0, 0, errors.New("column chunk in another file or encrypted")
	}
	lo = m.DataPageOffset
	if m.DictionaryPageOffset > 0 && m.DictionaryPageOffset < lo {
		lo = m.DictionaryPageOffset
	}
	if m.IndexPageOffset > 0 && m.IndexPageOffset < lo {
		lo = m.IndexPageOffset
	}
	if lo <= 0 || m.TotalCompressedSize < 0 || m.TotalCompressedSize > math.MaxInt64-lo {
		return 0, 0, fmt.Errorf("bad column chunk offset %d or size %d", lo, m.TotalCompressedSize)
	}
	hi = lo + m.TotalCompressedSize
	if m.BloomFilterOffset > 0 {
		if m.BloomFilterLength <= 0 || int64(m.BloomFilterLength) > math.MaxInt64-m.BloomFilterOffset {
			return 0, 0, errors.New("bloom filter without a length")
		}
		lo, hi = min(lo, m.BloomFilterOffset), max(hi, m.BloomFilterOffset+int64(m.BloomFilterLength))
	}
	return lo, hi, nil
}

// rebase moves a row group's offsets by delta and drops its page index,
// which is not copied.
func rebase(rg *format.RowGroup, delta int64) {
	move := func(off *int64) {
		if *off > 0 {
			*off += delta
		}
	}
	move(&rg.FileOffset)
	for j := range rg.Columns {
		cc := &rg.Columns[j]
		move(&cc.FileOffset)
		move(&cc.MetaData.DataPageOffset)
		move(&cc.MetaData.DictionaryPageOffset)
		move(&cc.MetaData.IndexPageOffset)
		move(&cc.MetaData.BloomFilterOffset)
		cc.ColumnIndexOffset, cc.ColumnIndexLength = 0, 0
		cc.OffsetIndexOffset, cc.OffsetIndexLength = 0, 0
	}
}
