package parquet

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/checkpoint/store"
	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/sink/parquet/pqfile"
)

// Sink writes one stream as Hive-partitioned Parquet files under Config.Dir,
// on local disk or in an object store.
type Sink struct {
	cfg     Config
	dest    destination
	codec   compress.Codec
	logger  *zap.Logger
	metrics *metrics

	// transactional is set by Config.Transactional, Recover or the first
	// Prepare; it never goes back.
	transactional atomic.Bool
	// hasRecovered tells Prepare, without the lock, that recovered files
	// wait to be claimed or finished.
	hasRecovered atomic.Bool
	// finishMu serializes finishing recovered files, which does I/O.
	finishMu sync.Mutex

	// mu guards the bookkeeping shared by writers, Commit and Recover. It is
	// never held during I/O.
	mu sync.Mutex
	// seqs holds the next file sequence number of each task, so a task
	// whose writer is made again does not reuse names.
	seqs map[string]uint64
	// committed holds, by task, the sequence numbers of files Commit has
	// published, until the task's writer drops them from its list.
	committed map[string]map[uint64]struct{}
	// recovered holds, by task, the open files Recover resumed, until
	// NewWriter claims them or FinishRecovered publishes them.
	recovered map[string]*recoveredTask
	// recoveredParts holds, by task, the partition stats of the restored
	// states, until NewWriter takes them.
	recoveredParts map[string]recoveredParts

	// commitMu guards the partition commit bookkeeping (commit.go).
	commitMu sync.Mutex
	commits  map[string]*taskCommit
	// marked holds the partitions committed by this process, with their end.
	marked map[string]bool
}

// recoveredParts is what a restored state says about a task's partitions.
type recoveredParts struct {
	watermark int64
	parts     map[string]partStats
}

// recoveredTask is the resumed open files of one task.
type recoveredTask struct {
	fields []record.Field
	layout layout
	files  []*partFile
}

var (
	_ sink.Transactional = (*Sink)(nil)
	_ sink.Retrier       = (*Sink)(nil)
	_ sink.Writer        = (*Writer)(nil)
	_ sink.Ticker        = (*Writer)(nil)
	_ sink.Preparer      = (*Writer)(nil)
)

type metrics struct {
	files       prometheus.Counter
	bytes       prometheus.Counter
	rows        prometheus.Counter
	openFiles   prometheus.Gauge
	partitions  prometheus.Counter
	commitDelay prometheus.Histogram
	lateRows    prometheus.Counter
	filtered    prometheus.Counter
	filterErrs  prometheus.Counter
	badNested   prometheus.Counter
}

func newMetrics(name string, reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	labels := prometheus.Labels{"sink": name}
	return &metrics{
		files: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_parquet_files_total",
			Help:        "Parquet files published under their final name.",
			ConstLabels: labels,
		}),
		bytes: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_parquet_bytes_total",
			Help:        "Bytes of published Parquet files.",
			ConstLabels: labels,
		}),
		rows: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_parquet_rows_total",
			Help:        "Rows written to Parquet files.",
			ConstLabels: labels,
		}),
		openFiles: f.NewGauge(prometheus.GaugeOpts{
			Name:        "streamd_parquet_open_files",
			Help:        "Parquet files being written.",
			ConstLabels: labels,
		}),
		partitions: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_parquet_partitions_committed_total",
			Help:        "Time partitions committed with a manifest and _SUCCESS.",
			ConstLabels: labels,
		}),
		commitDelay: f.NewHistogram(prometheus.HistogramOpts{
			Name:        "streamd_parquet_partition_commit_delay_seconds",
			Help:        "Wall-clock time from the end of a time partition to its commit.",
			ConstLabels: labels,
			Buckets:     []float64{10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400},
		}),
		filtered: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_parquet_filtered_rows_total",
			Help:        "Rows the sink's filter did not select.",
			ConstLabels: labels,
		}),
		filterErrs: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_parquet_filter_errors_total",
			Help:        "Rows left out because the sink's filter could not be evaluated on them.",
			ConstLabels: labels,
		}),
		badNested: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_parquet_invalid_nested_values_total",
			Help:        "Nested values written as null because their JSON text did not fit the field's type (never from the JSON decoder).",
			ConstLabels: labels,
		}),
		lateRows: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_parquet_partition_late_rows_total",
			Help:        "Rows written to a time partition after it was committed (in files its manifest does not list).",
			ConstLabels: labels,
		}),
	}
}

// New returns a Parquet sink. A nil logger logs nothing; a nil reg
// registers no metrics.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new parquet sink: %w", err)
	}
	codec, err := codecFor(cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("new parquet sink: %w", err)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	dest, err := newDestination(cfg, logger, reg)
	if err != nil {
		return nil, fmt.Errorf("new parquet sink: %w", err)
	}
	s := &Sink{
		cfg:       cfg,
		dest:      dest,
		codec:     codec,
		logger:    logger.With(zap.String("sink", cfg.Name)),
		metrics:   newMetrics(cfg.Name, reg),
		seqs:      make(map[string]uint64),
		committed: make(map[string]map[uint64]struct{}),
		recovered: make(map[string]*recoveredTask),

		recoveredParts: make(map[string]recoveredParts),
		commits:        make(map[string]*taskCommit),
		marked:         make(map[string]bool),
	}
	s.transactional.Store(cfg.Transactional)
	return s, nil
}

// sortColumns resolves Config.SortBy against a schema.
func sortColumns(names []string, schema *record.Schema) ([]pqfile.SortColumn, error) {
	var out []pqfile.SortColumn
	for _, name := range names {
		i, ok := schema.Index(name)
		if !ok {
			return nil, fmt.Errorf("sortBy: unknown field %q (fields: %s)", name, schema)
		}
		if t := schema.Field(i).Type; t.Nested() {
			return nil, fmt.Errorf("sortBy: field %q is a %s; sort by scalar fields", name, t)
		}
		// Column indexes count leaves: a nested field before it has several.
		col := 0
		for j := range i {
			col += leafCount(schema.Field(j))
		}
		out = append(out, pqfile.SortColumn{Column: col})
	}
	return out, nil
}

// CheckSortBy reports a sortBy field the schema lacks, for validation
// before the pipeline runs.
func CheckSortBy(names []string, schema *record.Schema) error {
	_, err := sortColumns(names, schema)
	return err
}

// layout is the layout of the files the sink's new writers open.
func (s *Sink) layout() layout {
	return newLayout(s.cfg.TimestampUnit == "millis", s.cfg.JSONColumns)
}

// fileOptions are the options of every file writer of the sink. The tail
// a checkpoint carries per open file is bounded by the row group size and
// by pqfile's default.
func (s *Sink) fileOptions(sortBy []pqfile.SortColumn) pqfile.Options {
	return pqfile.Options{
		SortBy:        sortBy,
		Compression:   s.codec,
		RowGroupBytes: s.cfg.RowGroupSize,
		MaxTailBytes:  min(s.cfg.RowGroupSize, pqfile.DefaultMaxTailBytes),
		PageSize:      int(s.cfg.PageSize),

		DictionaryMaxBytes: s.cfg.DictionarySize,
	}
}

// NewWriter returns the writer of one producing task. The task name is
// part of every file name, so writers of different tasks never collide.
// After Recover, the writer continues the task's resumed open files when
// the schema is unchanged; otherwise they are finished and published first.
func (s *Sink) NewWriter(task string, schema *record.Schema) (sink.Writer, error) {
	w, err := s.newWriter(task, schema)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	rt := s.recovered[w.task]
	delete(s.recovered, w.task)
	delete(s.committed, w.task)
	rp, hasParts := s.recoveredParts[w.task]
	delete(s.recoveredParts, w.task)
	s.mu.Unlock()
	s.registerTask(w.task)
	if hasParts {
		w.wm = rp.watermark
		for dir, p := range rp.parts {
			c := p.clone()
			w.parts[dir] = &c
		}
	}
	if rt == nil {
		return w, nil
	}
	if !record.FieldsEqual(rt.fields, schema.Fields()) || rt.layout != w.lay {
		s.logger.Warn("schema or layout changed since the checkpoint: finishing resumed parquet files",
			zap.String("task", task), zap.Int("files", len(rt.files)))
		if err := s.finishFiles(context.Background(), w.task, rt.files); err != nil {
			return nil, fmt.Errorf("new parquet writer: %w", err)
		}
		return w, nil
	}
	for _, pf := range rt.files {
		pf.out.bind(&w.ctx)
		w.files[pf.dir] = pf
		pf.stats = w.statsFor(pf.dir, pf.bucket)
	}
	return w, nil
}

func (s *Sink) newWriter(task string, schema *record.Schema) (*Writer, error) {
	if task == "" {
		return nil, fmt.Errorf("new parquet writer: task name is empty")
	}
	lay := s.layout()
	for _, name := range lay.jsonColumns() {
		if i, ok := schema.Index(name); !ok || schema.Field(i).Type != record.TypeString {
			return nil, fmt.Errorf("new parquet writer: jsonColumns: %q is not a string field (fields: %s)", name, schema)
		}
	}
	ps, err := parquetSchema(s.cfg.Name, schema, lay)
	if err != nil {
		return nil, fmt.Errorf("new parquet writer: %w", err)
	}
	part, err := newPartitioner(s.cfg.Partition, schema)
	if err != nil {
		return nil, fmt.Errorf("new parquet writer: partition: %w", err)
	}
	sortBy, err := sortColumns(s.cfg.SortBy, schema)
	if err != nil {
		return nil, fmt.Errorf("new parquet writer: %w", err)
	}
	var filter RowFilter
	if s.cfg.NewFilter != nil {
		if filter, err = s.cfg.NewFilter(schema); err != nil {
			return nil, fmt.Errorf("new parquet writer: filter: %w", err)
		}
	}
	types := make([]record.Type, schema.Len())
	for i := range types {
		types[i] = schema.Field(i).Type
	}
	shred, err := newShredder(schema, ps, lay)
	if err != nil {
		return nil, fmt.Errorf("new parquet writer: %w", err)
	}
	vals := make([]parquet.Value, schema.Len()*runRows)
	if shred != nil {
		vals = vals[:0] // rows take as many values as their lists and maps make
	}
	return &Writer{
		sink:    s,
		task:    string(escapePathValue(nil, task)),
		schema:  schema,
		types:   types,
		pschema: ps,
		lay:     lay,
		sortBy:  sortBy,
		filter:  filter,
		part:    part,
		files:   make(map[string]*partFile),
		parts:   make(map[string]*partStats),
		wm:      math.MinInt64,
		vals:    vals,
		shred:   shred,
		run:     make([]parquet.Row, 0, runRows),
		now:     time.Now,
		ctx:     context.Background(),
	}, nil
}

// nextSeq returns the next file sequence number of a task.
func (s *Sink) nextSeq(task string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.seqs[task]
	s.seqs[task] = n + 1
	return n
}

// peekSeq returns the sequence number the task's next file would get.
func (s *Sink) peekSeq(task string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seqs[task]
}

// takeCommitted returns and forgets the files of a task that Commit
// published.
func (s *Sink) takeCommitted(task string) map[uint64]struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	done := s.committed[task]
	delete(s.committed, task)
	return done
}

func (s *Sink) forgetCommitted(task string) {
	s.mu.Lock()
	delete(s.committed, task)
	s.mu.Unlock()
}

// enableTransactions switches the sink to transactional mode, for a
// runtime that checkpoints without having set Config.Transactional.
func (s *Sink) enableTransactions() {
	if !s.transactional.Load() && s.transactional.CompareAndSwap(false, true) {
		s.logger.Warn("parquet sink takes part in checkpoints without Transactional set: " +
			"files rolled before the first checkpoint were published without one")
	}
}

// publish makes a completed file visible and counts it.
func (s *Sink) publish(ctx context.Context, task string, f *completedFile) error {
	published, err := s.dest.publish(ctx, task, f.fileRef)
	if err != nil {
		return err
	}
	if published {
		s.metrics.files.Inc()
		s.metrics.bytes.Add(float64(f.Size))
		s.logger.Debug("published parquet file", zap.String("path", s.dest.location(f.Dir, fileName(task, f.Seq))),
			zap.Int64("rows", f.Rows), zap.Int64("bytes", f.Size))
	}
	return nil
}

// Commit publishes the completed files a prepared state lists. It is
// idempotent and safe to run concurrently with the task's writer, also
// after the writer or the sink is closed.
func (s *Sink) Commit(ctx context.Context, task string, state []byte) error {
	st, err := decodeState(state)
	if err != nil {
		return fmt.Errorf("commit parquet files of %s: %w", task, err)
	}
	if esc := string(escapePathValue(nil, task)); st.Task != esc {
		return fmt.Errorf("commit parquet files of %s: state belongs to task %q", task, st.Task)
	}
	for i := range st.Completed {
		if err := s.publish(ctx, st.Task, &st.Completed[i]); err != nil {
			return fmt.Errorf("commit parquet files of %s: %w", task, err)
		}
	}
	if err := s.advance(ctx, st.Task, st.Watermark, st.Parts); err != nil {
		return fmt.Errorf("commit parquet partitions of %s: %w", task, err)
	}
	if len(st.Completed) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	done := s.committed[st.Task]
	if done == nil {
		done = make(map[uint64]struct{}, len(st.Completed))
		s.committed[st.Task] = done
	}
	for i := range st.Completed {
		done[st.Completed[i].Seq] = struct{}{}
	}
	return nil
}

// newDestination picks where files go: Config.Store, an S3 store for an
// s3:// Dir, or the local directory.
func newDestination(cfg Config, logger *zap.Logger, reg prometheus.Registerer) (destination, error) {
	partSize := int(cfg.PartSize)
	if cfg.Store != nil {
		prefix := strings.Trim(cfg.Dir, "/")
		if prefix != "" {
			prefix += "/"
		}
		return storeDest{st: cfg.Store, prefix: prefix, partSize: partSize}, nil
	}
	if !isS3(cfg.Dir) {
		return localDest{root: cfg.Dir}, nil
	}
	sc := cfg.S3
	var err error
	if sc.Bucket, sc.Prefix, err = s3store.ParseURL(cfg.Dir); err != nil {
		return nil, err
	}
	if sc.Name == "" {
		sc.Name = cfg.Name
	}
	if sc.RetryFor == 0 {
		// A pipeline file's s3 block without retryFor.
		sc.RetryFor = DefaultS3RetryFor
	}
	st, err := s3store.New(sc, logger, reg)
	if err != nil {
		return nil, err
	}
	return storeDest{st: st, partSize: partSize}, nil
}

// Retrying implements sink.Retrier: the failure of an object store request
// being retried now (an endpoint answering 503), nil when none is.
func (s *Sink) Retrying() error {
	if d, ok := s.dest.(storeDest); ok {
		if rt, ok := d.st.(store.Retrier); ok {
			return rt.Retrying()
		}
	}
	return nil
}

// Close releases the sink. Without checkpoints, files are published by
// Writer.Close, which the runtime calls for every writer first. After
// Recover, it finishes and publishes resumed files no writer claimed (see
// FinishRecovered).
func (s *Sink) Close(ctx context.Context) error {
	return s.FinishRecovered(ctx)
}

// Check verifies at startup that files can be written: the local
// directory is creatable and writable, or the S3 bucket is reachable with
// the configured credentials.
func (s *Sink) Check(ctx context.Context) error {
	switch d := s.dest.(type) {
	case storeDest:
		if c, ok := d.st.(store.Checker); ok {
			if err := c.Check(ctx); err != nil {
				return fmt.Errorf("check parquet sink %q: %w", s.cfg.Name, err)
			}
		}
	case localDest:
		if err := os.MkdirAll(d.root, 0o755); err != nil { //nolint:gosec // output is read by other users (query engines)
			return fmt.Errorf("check parquet sink %q: %w", s.cfg.Name, err)
		}
		f, err := os.CreateTemp(d.root, ".streamd-check-*")
		if err != nil {
			return fmt.Errorf("check parquet sink %q: directory %s is not writable: %w", s.cfg.Name, d.root, err)
		}
		_ = f.Close()
		_ = os.Remove(f.Name())
	}
	return nil
}
