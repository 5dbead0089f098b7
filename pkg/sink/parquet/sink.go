package parquet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// Sink writes one stream as Hive-partitioned Parquet files under Config.Dir,
// on local disk or in an object store.
type Sink struct {
	cfg     Config
	dest    destination
	codec   compress.Codec
	logger  *zap.Logger
	metrics *metrics

	mu sync.Mutex
	// seqs holds the next file sequence number of each task, so a task
	// whose writer is made again in the same process does not reuse names.
	seqs map[string]uint64
}

var (
	_ sink.Sink   = (*Sink)(nil)
	_ sink.Writer = (*Writer)(nil)
	_ sink.Ticker = (*Writer)(nil)
)

type metrics struct {
	files     prometheus.Counter
	bytes     prometheus.Counter
	rows      prometheus.Counter
	openFiles prometheus.Gauge
}

func newMetrics(name string, reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	labels := prometheus.Labels{"sink": name}
	return &metrics{
		files: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_parquet_files_total",
			Help:        "Parquet files committed under their final name.",
			ConstLabels: labels,
		}),
		bytes: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_parquet_bytes_total",
			Help:        "Bytes of committed Parquet files.",
			ConstLabels: labels,
		}),
		rows: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_parquet_rows_total",
			Help:        "Rows written to Parquet files.",
			ConstLabels: labels,
		}),
		openFiles: f.NewGauge(prometheus.GaugeOpts{
			Name:        "streamd_parquet_open_files",
			Help:        "Parquet files being written and not yet committed.",
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
	return &Sink{
		cfg:     cfg,
		dest:    dest,
		codec:   codec,
		logger:  logger.With(zap.String("sink", cfg.Name)),
		metrics: newMetrics(cfg.Name, reg),
		seqs:    make(map[string]uint64),
	}, nil
}

// NewWriter returns the writer of one producing task. The task name is
// part of every file name, so writers of different tasks never collide.
func (s *Sink) NewWriter(task string, schema *record.Schema) (sink.Writer, error) {
	w, err := s.newWriter(task, schema)
	if err != nil {
		return nil, err
	}
	return w, nil
}

func (s *Sink) newWriter(task string, schema *record.Schema) (*Writer, error) {
	if task == "" {
		return nil, fmt.Errorf("new parquet writer: task name is empty")
	}
	ps, err := parquetSchema(s.cfg.Name, schema)
	if err != nil {
		return nil, fmt.Errorf("new parquet writer: %w", err)
	}
	part, err := newPartitioner(s.cfg.Partition, schema)
	if err != nil {
		return nil, fmt.Errorf("new parquet writer: partition: %w", err)
	}
	types := make([]record.Type, schema.Len())
	for i := range types {
		types[i] = schema.Field(i).Type
	}
	return &Writer{
		sink:    s,
		task:    string(escapePathValue(nil, task)),
		schema:  schema,
		types:   types,
		pschema: ps,
		options: []parquet.WriterOption{
			ps,
			parquet.Compression(s.codec),
			parquet.CreatedBy("streamd", "", ""),
		},
		part:  part,
		files: make(map[string]*partFile),
		vals:  make([]parquet.Value, schema.Len()*runRows),
		run:   make([]parquet.Row, 0, runRows),
		now:   time.Now,
		ctx:   context.Background(),
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
	st, err := s3store.New(sc, logger, reg)
	if err != nil {
		return nil, err
	}
	return storeDest{st: st, partSize: partSize}, nil
}

// Close releases the sink. Files are committed by Writer.Close, which the
// runtime calls for every writer first.
func (s *Sink) Close(context.Context) error { return nil }
