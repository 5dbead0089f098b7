package parquet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/record"
)

// runRows is how many consecutive rows of one partition are handed to the
// Parquet writer at once.
const runRows = 256

// Writer writes the rows of one producing task, one open file per
// partition. It is used by one goroutine.
type Writer struct {
	sink    *Sink
	task    string // escaped for use in file names
	schema  *record.Schema
	types   []record.Type
	pschema *parquet.Schema
	options []parquet.WriterOption
	part    *partitioner

	// files maps a rendered partition directory to its open file.
	files map[string]*partFile
	// last is the file of the previous row: a row with the same time bucket
	// and partition field values goes there without rendering its path.
	last    *partFile
	pathBuf []byte

	// run holds consecutive rows bound for runFile, their values in vals.
	run     []parquet.Row
	runFile *partFile
	vals    []parquet.Value

	now    func() time.Time
	err    error // sticky: the writer is unusable after a failed write
	closed bool
	// ctx is the context of the Write, Tick or Close in progress. Bytes
	// reach the destination from inside the Parquet writer, which takes no
	// context, so uploads they trigger find it here.
	ctx context.Context
}

// partFile is one open, in-progress file.
type partFile struct {
	dir      string // partition directory relative to Config.Dir
	name     string // final file name
	dst      output
	out      *countingWriter
	pw       *parquet.Writer
	rows     int64
	openedMs int64
	// bucket and key identify the rows that belong here without rendering.
	bucket int64
	key    []record.Value
}

// countingWriter passes the Parquet writer's bytes to the output with the
// writer's current context and counts them.
type countingWriter struct {
	dst output
	ctx *context.Context
	n   int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.dst.write(*c.ctx, p)
	c.n += int64(n)
	return n, err
}

// Write appends the rows of b to the files of their partitions. Values are
// copied into the Parquet column buffers before Write returns.
func (w *Writer) Write(ctx context.Context, b *record.Batch) error {
	if err := w.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write parquet: %w", err)
	}
	w.ctx = ctx
	if err := w.check(b); err != nil {
		return err
	}
	rollRows := w.sink.cfg.RollRows
	for i := range b.Len() {
		row, ms := b.Row(i), b.Times[i]
		pf := w.last
		if pf == nil || pf.bucket != w.part.bucket(ms) || !sameKey(pf.key, row, w.part.fields) {
			var err error
			if pf, err = w.lookup(row, ms); err != nil {
				return w.fail(err)
			}
		}
		if pf != w.runFile {
			if err := w.flushRun(); err != nil {
				return w.fail(err)
			}
			w.runFile = pf
		}
		w.appendRow(row)
		if len(w.run) == runRows || (rollRows > 0 && pf.rows+int64(len(w.run)) >= rollRows) {
			if err := w.flushRun(); err != nil {
				return w.fail(err)
			}
		}
	}
	if err := w.flushRun(); err != nil {
		return w.fail(err)
	}
	return nil
}

func (w *Writer) usable() error {
	if w.closed {
		return errors.New("write parquet: writer is closed")
	}
	return w.err
}

func (w *Writer) fail(err error) error {
	w.err = err
	return err
}

// check validates a whole batch before any of it is written, so a bad value
// never leaves a batch half written.
func (w *Writer) check(b *record.Batch) error {
	if b.Width != len(w.types) {
		return fmt.Errorf("write parquet: batch width %d, schema has %d fields", b.Width, len(w.types))
	}
	if len(b.Values) != b.Width*b.Len() {
		return fmt.Errorf("write parquet: batch has %d values for %d rows", len(b.Values), b.Len())
	}
	for i, v := range b.Values {
		c := i % b.Width
		if v.T != record.TypeNull && v.T != w.types[c] && (w.types[c] != record.TypeFloat || v.T != record.TypeInt) {
			return fmt.Errorf("write parquet: row %d field %q: %s value in %s column",
				i/b.Width, w.schema.Field(c).Name, v.T, w.types[c])
		}
	}
	return nil
}

// sameKey reports whether row has the partition field values of key.
func sameKey(key []record.Value, row record.Row, fields []int) bool {
	for j, f := range fields {
		if !record.Equal(key[j], row[f]) {
			return false
		}
	}
	return true
}

// lookup renders the partition of a row and returns its open file, opening
// one if needed.
func (w *Writer) lookup(row record.Row, ms int64) (*partFile, error) {
	w.pathBuf = w.part.render(w.pathBuf[:0], row, ms)
	pf, ok := w.files[string(w.pathBuf)]
	if !ok {
		var err error
		if pf, err = w.open(string(w.pathBuf), row, ms); err != nil {
			return nil, err
		}
		w.files[pf.dir] = pf
	}
	w.last = pf
	return pf, nil
}

// appendRow adds a row to the pending run, each value tagged with its
// column index and definition level (0 = null, 1 = present).
func (w *Writer) appendRow(row record.Row) {
	width := len(w.types)
	n := len(w.run)
	vals := w.vals[n*width : (n+1)*width : (n+1)*width]
	for c, v := range row {
		var pv parquet.Value
		switch v.T {
		case record.TypeNull:
			vals[c] = pv.Level(0, 0, c)
			continue
		case record.TypeString:
			pv = parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(v.S), len(v.S)))
		case record.TypeInt:
			if w.types[c] == record.TypeFloat {
				pv = parquet.DoubleValue(float64(int64(v.N)))
			} else {
				pv = parquet.Int64Value(int64(v.N))
			}
		case record.TypeFloat:
			pv = parquet.DoubleValue(v.Float())
		case record.TypeBool:
			pv = parquet.BooleanValue(v.N != 0)
		case record.TypeTimestamp:
			pv = parquet.Int64Value(int64(v.N))
		}
		vals[c] = pv.Level(0, 1, c)
	}
	w.run = append(w.run, parquet.Row(vals))
}

// flushRun hands the pending run to its file's Parquet writer, then flushes
// the row group or rolls the file if it has grown enough.
func (w *Writer) flushRun() error {
	pf := w.runFile
	if len(w.run) == 0 || pf == nil {
		return nil
	}
	n, err := pf.pw.WriteRows(w.run)
	clear(w.run) // drop references to the batch's strings
	w.run = w.run[:0]
	pf.rows += int64(n)
	w.sink.metrics.rows.Add(float64(n))
	if err != nil {
		return fmt.Errorf("write parquet rows to %s: %w", pf.dst.name(), err)
	}
	cfg := &w.sink.cfg
	size := pf.pw.Size()
	if size >= cfg.RollSize || (cfg.RollRows > 0 && pf.rows >= cfg.RollRows) {
		return w.commit(pf)
	}
	if size-pf.out.n >= cfg.RowGroupSize {
		if err := pf.pw.Flush(); err != nil {
			return fmt.Errorf("flush parquet row group to %s: %w", pf.dst.name(), err)
		}
	}
	return nil
}

// open starts a new in-progress file for a partition directory.
func (w *Writer) open(dir string, row record.Row, ms int64) (*partFile, error) {
	dst := w.sink.dest
	// Skip sequence numbers whose files exist from an earlier run of the
	// process, so committed files are never replaced.
	var name string
	for {
		name = "part-" + w.task + "-" + padSeq(w.sink.nextSeq(w.task)) + ".parquet"
		taken, err := dst.exists(w.ctx, dir, name)
		if err != nil {
			return nil, err
		}
		if !taken {
			break
		}
	}
	out, err := dst.create(w.ctx, dir, name)
	if err != nil {
		return nil, err
	}
	pf := &partFile{
		dir:      dir,
		name:     name,
		dst:      out,
		openedMs: w.now().UnixMilli(),
		bucket:   w.part.bucket(ms),
		key:      make([]record.Value, len(w.part.fields)),
	}
	for j, f := range w.part.fields {
		pf.key[j] = row[f].Clone()
	}
	pf.out = &countingWriter{dst: out, ctx: &w.ctx}
	pf.pw = parquet.NewWriter(pf.out, w.options...)
	w.sink.metrics.openFiles.Inc()
	return pf, nil
}

func padSeq(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) < 6 {
		s = "000000"[len(s):] + s
	}
	return s
}

// commit finishes a file (footer) and makes it visible under its final
// name: renamed after fsync on disk, or its multipart upload completed in a
// store, so a reader sees either no file or a complete one.
func (w *Writer) commit(pf *partFile) error {
	w.forget(pf)
	if err := pf.pw.Close(); err != nil {
		w.abort(pf)
		return fmt.Errorf("close parquet writer for %s: %w", pf.dst.name(), err)
	}
	w.sink.metrics.openFiles.Dec()
	if err := pf.dst.commit(w.ctx); err != nil {
		return err
	}
	w.sink.metrics.files.Inc()
	w.sink.metrics.bytes.Add(float64(pf.out.n))
	w.sink.logger.Debug("committed parquet file",
		zap.String("path", w.sink.dest.location(pf.dir, pf.name)), zap.Int64("rows", pf.rows), zap.Int64("bytes", pf.out.n))
	return nil
}

// abort drops an in-progress file that cannot be committed.
func (w *Writer) abort(pf *partFile) {
	w.forget(pf)
	pf.dst.abort(w.ctx)
	w.sink.metrics.openFiles.Dec()
}

// forget removes a file from the writer's bookkeeping.
func (w *Writer) forget(pf *partFile) {
	if w.files[pf.dir] == pf {
		delete(w.files, pf.dir)
	}
	if w.last == pf {
		w.last = nil
	}
	if w.runFile == pf {
		w.runFile = nil
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Tick commits files that have been open for RollAge or longer, so a quiet
// partition still becomes visible.
func (w *Writer) Tick(ctx context.Context, nowMillis, _ int64) error {
	age := w.sink.cfg.RollAge.Milliseconds()
	if age <= 0 || w.closed || w.err != nil {
		return nil
	}
	w.ctx = ctx
	var errs []error
	for _, pf := range w.sortedFiles() {
		if nowMillis-pf.openedMs >= age {
			if err := w.commit(pf); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return w.fail(errors.Join(errs...))
}

// sortedFiles lists open files by partition, so commits happen in a
// deterministic order.
func (w *Writer) sortedFiles() []*partFile {
	out := make([]*partFile, 0, len(w.files))
	for _, pf := range w.files {
		out = append(out, pf)
	}
	slices.SortFunc(out, func(a, b *partFile) int {
		switch {
		case a.dir < b.dir:
			return -1
		case a.dir > b.dir:
			return 1
		}
		return 0
	})
	return out
}

// Close commits every open file. After a failed write, files are dropped
// instead, since they may hold part of a batch.
func (w *Writer) Close(ctx context.Context) error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.ctx = ctx
	if w.err != nil {
		for _, pf := range w.sortedFiles() {
			w.abort(pf)
		}
		return w.err
	}
	var errs []error
	for _, pf := range w.sortedFiles() {
		if err := w.commit(pf); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
