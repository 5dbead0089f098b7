package parquet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/parquet-go/parquet-go"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink/parquet/pqfile"
)

// Recover restores the sink to a checkpoint, before any NewWriter. For
// each task's prepared state it publishes the completed files
// (idempotently), resumes the open files at their checkpointed length so
// that NewWriter for the task continues them under the same names, and
// deletes the task's staged files the state does not refer to (local
// in-progress files, open uploads): they hold output of a checkpoint that
// never completed, which the sources replay. Sequence numbers continue
// after the checkpoint's. Resumed files of tasks that get no NewWriter are
// finished and published by FinishRecovered.
//
// An open file whose staged copy is gone but whose final name exists was
// already finished by an earlier recovery of the same checkpoint; it is
// skipped. Recover switches the sink to transactional mode.
func (s *Sink) Recover(ctx context.Context, states map[string][]byte) error {
	s.transactional.Store(true)
	tasks := make(map[string]bool, len(states))
	decoded := make([]*taskState, 0, len(states))
	for _, task := range slices.Sorted(maps.Keys(states)) {
		st, err := decodeState(states[task])
		if err != nil {
			return fmt.Errorf("recover parquet files of %s: %w", task, err)
		}
		if esc := string(escapePathValue(nil, task)); st.Task != esc {
			return fmt.Errorf("recover parquet files of %s: state belongs to task %q", task, st.Task)
		}
		tasks[st.Task] = true
		decoded = append(decoded, st)
	}
	staged, err := s.dest.staged(ctx, tasks)
	if err != nil {
		return fmt.Errorf("recover parquet files: %w", err)
	}
	referenced := make(map[stagedKey]bool)
	var resumed []*partFile
	release := func() {
		for _, pf := range resumed {
			pf.out.release()
			s.metrics.openFiles.Dec()
		}
		s.mu.Lock()
		clear(s.recovered)
		s.hasRecovered.Store(false)
		s.mu.Unlock()
	}
	for _, st := range decoded {
		files, err := s.recoverTask(ctx, st, referenced)
		resumed = append(resumed, files...)
		if err != nil {
			release()
			return fmt.Errorf("recover parquet files of %s: %w", st.Task, err)
		}
		s.mu.Lock()
		if len(files) > 0 {
			s.recovered[st.Task] = &recoveredTask{fields: st.Fields, layout: st.Layout, files: files}
			s.hasRecovered.Store(true)
		}
		s.seqs[st.Task] = max(s.seqs[st.Task], st.NextSeq)
		s.recoveredParts[st.Task] = recoveredParts{watermark: st.Watermark, parts: st.Parts}
		s.mu.Unlock()
		if s.commitEnabled() {
			s.commitMu.Lock()
			s.commits[st.Task] = &taskCommit{watermark: st.Watermark, parts: st.Parts}
			s.commitMu.Unlock()
		}
	}
	// An intent is kept while any file the checkpoint refers to has it.
	keepIntent := make(map[string]bool)
	for _, f := range staged {
		if f.intent != "" && referenced[keyOf(f.task, &f.ref)] {
			keepIntent[f.intent] = true
		}
	}
	var orphans int
	for _, f := range staged {
		if !referenced[keyOf(f.task, &f.ref)] {
			s.dest.cleanup(ctx, f, keepIntent[f.intent])
			if f.ref.UploadID != "" || f.intent == "" {
				orphans++
			}
		}
	}
	if orphans > 0 {
		s.logger.Info("deleted parquet files staged after the restored checkpoint", zap.Int("files", orphans))
	}
	return nil
}

// recoverTask publishes the completed files of one state and resumes its
// open files.
func (s *Sink) recoverTask(ctx context.Context, st *taskState, referenced map[stagedKey]bool) ([]*partFile, error) {
	for i := range st.Completed {
		c := &st.Completed[i]
		referenced[keyOf(st.Task, &c.fileRef)] = true
		st.NextSeq = max(st.NextSeq, c.Seq+1)
		if err := s.publish(ctx, st.Task, c); err != nil {
			return nil, err
		}
	}
	if len(st.Open) == 0 {
		return nil, nil
	}
	schema, err := record.NewSchema(st.Fields...)
	if err != nil {
		return nil, err
	}
	ps, err := parquetSchema(s.cfg.Name, schema, st.Layout)
	if err != nil {
		return nil, err
	}
	// Files of a schema without the sortBy fields go on unsorted.
	sortBy, _ := sortColumns(s.cfg.SortBy, schema)
	var files []*partFile
	for i := range st.Open {
		o := &st.Open[i]
		k := keyOf(st.Task, &o.fileRef)
		referenced[k] = true
		st.NextSeq = max(st.NextSeq, o.Seq+1)
		present, err := s.dest.isStaged(ctx, st.Task, o.fileRef)
		if err != nil {
			return files, err
		}
		if !present {
			name := fileName(st.Task, o.Seq)
			done, err := s.dest.exists(ctx, o.Dir, name)
			if err != nil {
				return files, err
			}
			if !done {
				return files, fmt.Errorf("staged file %s of the checkpoint is missing", s.dest.location(o.Dir, name))
			}
			s.logger.Info("parquet file of the checkpoint was finished before", zap.String("path", s.dest.location(o.Dir, name)))
			continue
		}
		pf, err := s.resumeFile(ctx, st.Task, o, ps, sortBy)
		if err != nil {
			return files, err
		}
		files = append(files, pf)
	}
	return files, nil
}

func (s *Sink) resumeFile(ctx context.Context, task string, o *openFile, schema *parquet.Schema, sortBy []pqfile.SortColumn) (*partFile, error) {
	out, err := s.dest.resume(ctx, task, o.fileRef, o.File.Length, &ctx)
	if err != nil {
		return nil, err
	}
	pw, err := pqfile.Resume(out, schema, s.fileOptions(sortBy), o.File)
	if err != nil {
		out.release()
		return nil, fmt.Errorf("resume %s: %w", out.name(), err)
	}
	// Until a writer or FinishRecovered binds its own context, uploads
	// must not use Recover's, which ends when Recover returns.
	background := context.Background()
	out.bind(&background)
	s.metrics.openFiles.Inc()
	return &partFile{dir: o.Dir, seq: o.Seq, out: out, pw: pw, openedMs: o.OpenedMs, prepared: true}, nil
}

// FinishRecovered finishes (writes the footer of) and publishes the files
// Recover resumed that no NewWriter has claimed: those of tasks that no
// longer exist. Their rows are covered by the restored checkpoint, so they
// may be published at once. The runtime should call it once every writer
// is made and before the first checkpoint; the first Prepare of any writer
// and Sink.Close call it too, so a checkpoint never completes while such
// files are neither published nor listed in it.
func (s *Sink) FinishRecovered(ctx context.Context) error {
	s.finishMu.Lock()
	defer s.finishMu.Unlock()
	s.mu.Lock()
	rec := s.recovered
	s.recovered = make(map[string]*recoveredTask)
	s.hasRecovered.Store(false)
	s.mu.Unlock()
	var errs []error
	for _, task := range slices.Sorted(maps.Keys(rec)) {
		if err := s.finishFiles(ctx, task, rec[task].files); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("finish recovered parquet files: %w", errors.Join(errs...))
	}
	return nil
}

// finishRecoveredOnce runs FinishRecovered if resumed files are waiting.
func (s *Sink) finishRecoveredOnce(ctx context.Context) error {
	if !s.hasRecovered.Load() {
		return nil
	}
	return s.FinishRecovered(ctx)
}

// finishFiles closes resumed files and publishes them.
func (s *Sink) finishFiles(ctx context.Context, task string, files []*partFile) error {
	var errs []error
	for _, pf := range files {
		pf.out.bind(&ctx)
		s.metrics.openFiles.Dec()
		if err := pf.pw.Close(); err != nil {
			errs = append(errs, fmt.Errorf("finish %s: %w", pf.out.name(), err))
			continue
		}
		done := completedFile{fileRef: pf.out.ref(), Size: pf.pw.Size(), Rows: pf.pw.Rows()}
		if err := s.publish(ctx, task, &done); err != nil {
			errs = append(errs, err)
			continue
		}
		s.noteFinished(task, pf.dir, partFileInfo{Seq: pf.seq, Rows: done.Rows, Size: done.Size})
	}
	return errors.Join(errs...)
}
