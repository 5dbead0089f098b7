package parquet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink/parquet/pqfile"
)

// runRows is how many consecutive rows of one partition are handed to the
// Parquet writer at once.
const runRows = 256

// Writer writes the rows of one producing task, one open file per
// partition. It is used by one goroutine.
//
// Without checkpoints a file is published (renamed, or its upload
// completed) when it rolls and when the writer closes. In transactional
// mode (Config.Transactional, or from the first Prepare on) a rolled file is
// only closed: it waits, staged, until Commit publishes it after the
// checkpoint that lists it is durable. Close then publishes nothing: files a
// prepared state refers to stay staged for Commit or for Recover after a
// restart, which resumes the open ones; files no state refers to hold only
// rows the restart replays, so they are deleted.
type Writer struct {
	// encodeBuf is where the writer's files encode their row groups
	// (pqfile.Options.EncodeBuffer).
	encodeBuf bytes.Buffer

	sink    *Sink
	task    string // escaped for use in file names
	schema  *record.Schema
	types   []record.Type
	pschema *parquet.Schema
	lay     layout
	sortBy  []pqfile.SortColumn
	part    *partitioner
	// filter selects the rows written; kept holds them for one Write.
	filter     RowFilter
	kept       *record.Batch
	filterErrs int

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
	// shred writes nested fields; nil when the schema has none, and then
	// row n of a run is vals[n*width:(n+1)*width].
	shred *shredder

	// completed lists rolled files that are not known to be published yet,
	// in transactional mode.
	completed []doneFile

	// parts holds, with partition commits, what the task wrote to each
	// partition not yet known to be committed; wm is its watermark.
	parts map[string]*partStats
	wm    int64

	now    func() time.Time
	err    error // sticky: the writer is unusable after a failed write
	closed bool
	// ctx is the context of the Write, Tick, Prepare or Close in progress.
	// Bytes reach the destination from inside the file writer, which takes
	// no context, so uploads they trigger find it here.
	ctx context.Context
}

// partFile is one open, staged file.
type partFile struct {
	dir      string // partition directory relative to Config.Dir
	seq      uint64
	out      stagedOutput
	pw       *pqfile.Writer
	openedMs int64
	// prepared is set once a prepared state refers to the file: from then
	// on it is kept on Close, for Commit or Recover.
	prepared bool
	// bucket and key identify the rows that belong here without rendering;
	// key is nil for a resumed file until its first row.
	bucket int64
	key    []record.Value
	// stats are the partition's, with partition commits.
	stats *partStats
}

// doneFile is a rolled file waiting for Commit.
type doneFile struct {
	completedFile
	prepared bool
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
	origin := b.Origin
	if w.filter != nil {
		b = w.selectRows(b)
		defer clear(w.kept.Values) // keep no reference to the caller's strings
	}
	var originOf *partStats // the last partition origin was added to
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
		if st := pf.stats; st != nil {
			if st.Closed && w.sink.isMarked(pf.dir) {
				w.sink.metrics.lateRows.Inc()
			}
			st.add(ms)
			if origin != nil && st != originOf {
				st.addOrigin(origin)
				originOf = st
			}
		}
		w.appendRow(row)
		if len(w.run) == runRows || (rollRows > 0 && pf.pw.Rows()+int64(len(w.run)) >= rollRows) {
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

// selectRows returns the rows of b the filter keeps, in a batch reused by
// the next Write; its values still point into b.
func (w *Writer) selectRows(b *record.Batch) *record.Batch {
	if w.kept == nil {
		w.kept = record.NewBatch(b.Width, b.Len())
	}
	w.kept.Reset()
	for i := range b.Len() {
		keep, err := w.filter.Keep(b.Row(i))
		switch {
		case err != nil:
			w.sink.metrics.filterErrs.Inc()
			if w.filterErrs == 0 {
				w.sink.logger.Warn("parquet sink filter cannot be evaluated on a row; rows like it are left out and counted",
					zap.String("task", w.task), zap.Error(err))
			}
			w.filterErrs++
		case keep:
			copy(w.kept.AppendRow(b.Times[i]), b.Row(i))
		default:
			w.sink.metrics.filtered.Inc()
		}
	}
	return w.kept
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
		if pf, err = w.open(string(w.pathBuf), ms); err != nil {
			return nil, err
		}
		w.files[pf.dir] = pf
	}
	if pf.stats == nil && w.sink.commitEnabled() {
		pf.stats = w.statsFor(pf.dir, w.part.bucket(ms))
	}
	if pf.key == nil {
		pf.bucket = w.part.bucket(ms)
		pf.key = make([]record.Value, len(w.part.fields))
		for j, f := range w.part.fields {
			pf.key[j] = row[f].Clone()
		}
	}
	w.last = pf
	return pf, nil
}

// statsFor returns the stats of a partition, starting them if needed.
func (w *Writer) statsFor(dir string, bucket int64) *partStats {
	if !w.sink.commitEnabled() {
		return nil
	}
	st := w.parts[dir]
	if st == nil {
		end := (bucket + 1) * w.part.bucketMs
		st = &partStats{EndMs: end, Closed: w.closes(end)}
		w.parts[dir] = st
	}
	return st
}

// closes reports whether the task's watermark is past a partition end plus
// the allowed lateness.
func (w *Writer) closes(end int64) bool {
	lat := w.sink.lateness()
	return end <= math.MaxInt64-lat && end+lat <= w.wm
}

// closePartitions rolls the open files of partitions the watermark has
// passed (plus lateness) and marks them closed, so all their rows are in
// completed files. It drops the stats of closed partitions that the sink
// has committed and that have no open file.
func (w *Writer) closePartitions() error {
	if !w.sink.commitEnabled() {
		return nil
	}
	var errs []error
	for _, pf := range w.sortedFiles() {
		if pf.stats != nil && w.closes(pf.stats.EndMs) {
			if err := w.roll(pf); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for dir, st := range w.parts {
		if w.closes(st.EndMs) {
			st.Closed = true
		}
		if _, open := w.files[dir]; st.Closed && !open && w.sink.isMarked(dir) {
			delete(w.parts, dir)
		}
	}
	return errors.Join(errs...)
}

// partsSnapshot copies the partition stats for a state or the sink.
func (w *Writer) partsSnapshot() map[string]partStats {
	if len(w.parts) == 0 {
		return nil
	}
	out := make(map[string]partStats, len(w.parts))
	for dir, st := range w.parts {
		out[dir] = st.clone()
	}
	return out
}

// appendRow adds a row to the pending run, each value tagged with its
// column index and definition level (0 = null, 1 = present).
func (w *Writer) appendRow(row record.Row) {
	if w.shred != nil {
		w.appendNestedRow(row)
		return
	}
	width := len(w.types)
	n := len(w.run)
	vals := w.vals[n*width : (n+1)*width : (n+1)*width]
	for c, v := range row {
		vals[c] = w.leafValue(v, c, c)
	}
	w.run = append(w.run, parquet.Row(vals))
}

// floorDiv is a / b rounded down.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// flushRun hands the pending run to its file's writer, then rolls the
// file if it has grown enough. The file writer flushes row groups itself.
func (w *Writer) flushRun() error {
	pf := w.runFile
	if len(w.run) == 0 || pf == nil {
		return nil
	}
	n := len(w.run)
	err := pf.pw.WriteRows(w.run)
	clear(w.run) // drop references to the batch's strings
	w.run = w.run[:0]
	if w.shred != nil {
		clear(w.vals)
		w.vals = w.vals[:0]
		w.shred.resetRun()
	}
	if err != nil {
		return fmt.Errorf("write parquet rows to %s: %w", pf.out.name(), err)
	}
	w.sink.metrics.rows.Add(float64(n))
	cfg := &w.sink.cfg
	if pf.pw.EstimatedSize() >= cfg.RollSize || (cfg.RollRows > 0 && pf.pw.Rows() >= cfg.RollRows) {
		return w.roll(pf)
	}
	return nil
}

// open starts a new staged file for a partition directory.
func (w *Writer) open(dir string, ms int64) (*partFile, error) {
	dst := w.sink.dest
	// Skip sequence numbers whose files exist from an earlier run of the
	// process, so published files are never replaced.
	var seq uint64
	for {
		seq = w.sink.nextSeq(w.task)
		taken, err := dst.exists(w.ctx, dir, fileName(w.task, seq))
		if err != nil {
			return nil, err
		}
		if !taken {
			break
		}
	}
	out, err := dst.create(w.ctx, w.task, fileRef{Dir: dir, Seq: seq}, &w.ctx)
	if err != nil {
		return nil, err
	}
	opts := w.sink.fileOptions(w.sortBy)
	opts.EncodeBuffer = &w.encodeBuf
	pw, err := pqfile.New(out, w.pschema, opts)
	if err != nil {
		out.release()
		dst.discard(w.ctx, w.task, out.ref())
		return nil, fmt.Errorf("create parquet file %s: %w", out.name(), err)
	}
	w.sink.metrics.openFiles.Inc()
	return &partFile{dir: dir, seq: seq, out: out, pw: pw, openedMs: w.now().UnixMilli(), bucket: w.part.bucket(ms)}, nil
}

// roll finishes a file (footer). Without checkpoints it is published at
// once; in transactional mode it waits for the Commit of a checkpoint.
func (w *Writer) roll(pf *partFile) error {
	w.forget(pf)
	w.sink.metrics.openFiles.Dec()
	if err := pf.pw.Close(); err != nil {
		if !pf.prepared {
			w.sink.dest.discard(w.ctx, w.task, pf.out.ref())
		}
		return fmt.Errorf("close parquet file %s: %w", pf.out.name(), err)
	}
	done := completedFile{fileRef: pf.out.ref(), Size: pf.pw.Size(), Rows: pf.pw.Rows()}
	if pf.stats != nil {
		pf.stats.Files = append(pf.stats.Files, partFileInfo{Seq: pf.seq, Rows: done.Rows, Size: done.Size})
	}
	if w.sink.transactional.Load() {
		w.completed = append(w.completed, doneFile{completedFile: done, prepared: pf.prepared})
		return nil
	}
	return w.sink.publish(w.ctx, w.task, &done)
}

// drop releases an open file without finishing it, and deletes it unless
// a prepared state refers to it.
func (w *Writer) drop(pf *partFile) {
	w.forget(pf)
	w.sink.metrics.openFiles.Dec()
	pf.out.release()
	if !pf.prepared {
		w.sink.dest.discard(w.ctx, w.task, pf.out.ref())
	}
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

// Tick rolls files that have been open for RollAge or longer, so a quiet
// partition still becomes visible, and, with partition commits, the files
// of partitions the watermark has passed. Without checkpoints it hands the
// partitions to the sink to commit.
func (w *Writer) Tick(ctx context.Context, nowMillis, watermark int64) error {
	if w.closed || w.err != nil {
		return nil
	}
	w.ctx = ctx
	var errs []error
	if age := w.sink.cfg.RollAge.Milliseconds(); age > 0 {
		for _, pf := range w.sortedFiles() {
			if nowMillis-pf.openedMs >= age {
				if err := w.roll(pf); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if w.sink.commitEnabled() {
		w.wm = max(w.wm, watermark)
		if err := w.closePartitions(); err != nil {
			errs = append(errs, err)
		} else if !w.sink.transactional.Load() {
			// The data files are published: a marker that cannot be
			// written now is tried again on the next tick.
			if err := w.sink.advance(ctx, w.task, w.wm, w.partsSnapshot()); err != nil {
				w.sink.logger.Warn("commit parquet partitions; retrying on the next tick", zap.Error(err))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return w.fail(errors.Join(errs...))
}

// sortedFiles lists open files by partition, so files roll and states list
// them in a deterministic order.
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

// Close ends the writer. Without checkpoints it publishes every open file,
// or, after a failed write, deletes them, since they may hold part of a
// batch. In transactional mode it publishes nothing and only releases
// resources: see Writer.
func (w *Writer) Close(ctx context.Context) error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.ctx = ctx
	if w.sink.transactional.Load() {
		for _, pf := range w.sortedFiles() {
			w.drop(pf)
		}
		for _, d := range w.completed {
			if !d.prepared {
				w.sink.dest.discard(ctx, w.task, d.fileRef)
			}
		}
		w.completed = nil
		w.sink.forgetCommitted(w.task)
		return w.err
	}
	if w.err != nil {
		for _, pf := range w.sortedFiles() {
			w.drop(pf)
		}
		return w.err
	}
	var errs []error
	for _, pf := range w.sortedFiles() {
		if err := w.roll(pf); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && w.sink.commitEnabled() {
		// A stop is not the end of the stream: only partitions the
		// watermark has passed are complete. The task no longer holds the
		// others back, but without checkpoints no later run knows their
		// earlier files (see docs/parquet.md).
		errs = append(errs, w.sink.advance(ctx, w.task, w.wm, w.partsSnapshot()))
		w.sink.retireTask(w.task)
	}
	return errors.Join(errs...)
}

// Prepare makes everything written so far recoverable and returns the
// task's state for checkpoint checkpointID: the rolled files not yet known
// to be published, and every open file with its pqfile state. Files rolled
// before an earlier checkpoint stay listed until a Commit reports them
// published, so a checkpoint that never completes loses nothing. The first
// Prepare switches a sink without Config.Transactional to transactional
// mode.
func (w *Writer) Prepare(ctx context.Context, checkpointID int64) ([]byte, error) {
	if err := w.usable(); err != nil {
		return nil, fmt.Errorf("prepare parquet checkpoint %d: %w", checkpointID, err)
	}
	w.ctx = ctx
	w.sink.enableTransactions()
	if err := w.sink.finishRecoveredOnce(ctx); err != nil {
		// The files stay staged for the next recovery; no checkpoint may
		// complete without them.
		return nil, w.fail(fmt.Errorf("prepare parquet checkpoint %d: %w", checkpointID, err))
	}
	if err := w.closePartitions(); err != nil {
		return nil, w.fail(fmt.Errorf("prepare parquet checkpoint %d: %w", checkpointID, err))
	}
	w.dropCommitted()
	st := taskState{Task: w.task, Fields: w.schema.Fields(), Layout: w.lay, NextSeq: w.sink.peekSeq(w.task),
		Watermark: w.wm, Parts: w.partsSnapshot()}
	if len(w.completed) > 0 {
		st.Completed = make([]completedFile, len(w.completed))
		for i := range w.completed {
			w.completed[i].prepared = true
			st.Completed[i] = w.completed[i].completedFile
		}
	}
	files := w.sortedFiles()
	if len(files) > 0 {
		st.Open = make([]openFile, 0, len(files))
	}
	for _, pf := range files {
		fs, err := pf.pw.Snapshot()
		if err != nil {
			return nil, w.fail(fmt.Errorf("prepare parquet checkpoint %d: snapshot %s: %w", checkpointID, pf.out.name(), err))
		}
		pf.prepared = true
		st.Open = append(st.Open, openFile{fileRef: pf.out.ref(), OpenedMs: pf.openedMs, File: fs})
	}
	b, err := encodeState(nil, &st)
	if err != nil {
		return nil, fmt.Errorf("prepare parquet checkpoint %d: %w", checkpointID, err)
	}
	return b, nil
}

// PrepareFinal is Prepare for the last checkpoint of a writer whose task
// ends or stops (end of input, a drain, a stop behind a savepoint, a
// revoked split): it rolls every open file first, so the state lists only
// completed files and the Commit of this checkpoint publishes all output.
// It does not end event time: partitions are complete when the watermark
// says so (at the end of the input the runtime ticks with the maximum
// watermark first), not because a stopped task published its files.
func (w *Writer) PrepareFinal(ctx context.Context, checkpointID int64) ([]byte, error) {
	if err := w.usable(); err != nil {
		return nil, fmt.Errorf("prepare parquet checkpoint %d: %w", checkpointID, err)
	}
	w.ctx = ctx
	w.sink.enableTransactions()
	for _, pf := range w.sortedFiles() {
		if err := w.roll(pf); err != nil {
			return nil, w.fail(err)
		}
	}
	return w.Prepare(ctx, checkpointID)
}

// dropCommitted forgets rolled files that a Commit has published.
func (w *Writer) dropCommitted() {
	done := w.sink.takeCommitted(w.task)
	if len(done) == 0 || len(w.completed) == 0 {
		return
	}
	w.completed = slices.DeleteFunc(w.completed, func(d doneFile) bool {
		_, ok := done[d.Seq]
		return ok
	})
}
