package jsonl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/fileutil"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// Config configures a JSON-lines sink.
type Config struct {
	// Name labels the sink's metrics and log lines.
	Name string `yaml:"name"`
	// Path is the file appended to; "" or "-" writes to standard output.
	Path string `yaml:"path"`
}

// DefaultConfig writes to standard output.
func DefaultConfig() Config { return Config{Name: "stdout"} }

// Validate reports the first problem with the configuration, naming the field.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("jsonl sink: name is empty")
	}
	return nil
}

// Sink writes JSON lines to one shared output.
type Sink struct {
	cfg     Config
	logger  *zap.Logger
	records prometheus.Counter

	mu   sync.Mutex
	out  io.Writer
	file *os.File // nil for standard output
	// mark is the checkpoint whose hand-over began last, and the file's
	// length then (see BeginHandover).
	mark handover
}

// handover records where the hand-over of a checkpoint's rows began.
type handover struct {
	id, length int64
}

// handoverSuffix names the file, next to the output, that records the
// last hand-over.
const handoverSuffix = ".handover"

var (
	_ sink.Sink     = (*Sink)(nil)
	_ sink.Writer   = (*Writer)(nil)
	_ sink.Rewinder = (*Sink)(nil)
)

// New opens the sink's output: standard output, or the file at cfg.Path
// (created with mode 0644 and its parent directories if missing, appended
// to otherwise). A nil logger logs nothing; a nil reg registers no metrics.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer) (*Sink, error) {
	return newSink(cfg, logger, reg, os.Stdout)
}

func newSink(cfg Config, logger *zap.Logger, reg prometheus.Registerer, stdout io.Writer) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new jsonl sink: %w", err)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	s := &Sink{
		cfg:    cfg,
		logger: logger.With(zap.String("sink", cfg.Name)),
		records: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name:        "streamd_sink_records_total",
			Help:        "Records written by the sink.",
			ConstLabels: prometheus.Labels{"sink": cfg.Name},
		}),
		out: stdout,
	}
	if cfg.Path != "" && cfg.Path != "-" {
		if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil { //nolint:gosec // output is read by other users (query engines, shippers)
			return nil, fmt.Errorf("new jsonl sink: create directory: %w", err)
		}
		f, err := os.OpenFile(cfg.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644) //nolint:gosec // output is read by other users (query engines, shippers)
		if err != nil {
			return nil, fmt.Errorf("new jsonl sink: open output: %w", err)
		}
		s.out, s.file = f, f
	}
	return s, nil
}

// NewWriter returns the writer of one producing task.
func (s *Sink) NewWriter(_ string, schema *record.Schema) (sink.Writer, error) {
	return &Writer{sink: s, enc: newEncoder(schema), width: schema.Len()}, nil
}

// Close closes the output file; standard output stays open. Writes after
// Close fail.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.file
	s.file, s.out = nil, nil
	if f == nil {
		return nil
	}
	err := f.Close()
	if err != nil {
		return fmt.Errorf("close jsonl output: %w", err)
	}
	return nil
}

// sync makes a file output durable; standard output has nothing to sync.
func (s *Sink) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		return nil
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("sync jsonl output: %w", err)
	}
	return nil
}

// Writer encodes the rows of one task. It is used by one goroutine.
type Writer struct {
	sink  *Sink
	enc   *encoder
	width int
	buf   []byte
}

// Write encodes the whole batch, then writes it with one locked write so
// its lines stay together.
func (w *Writer) Write(_ context.Context, b *record.Batch) error {
	if b.Width != w.width {
		return fmt.Errorf("write jsonl: batch width %d, schema has %d fields", b.Width, w.width)
	}
	w.buf = w.buf[:0]
	for i := range b.Len() {
		w.buf = w.enc.appendRow(w.buf, b.Row(i))
	}
	if len(w.buf) == 0 {
		return nil
	}
	s := w.sink
	s.mu.Lock()
	var err error
	if s.out == nil {
		err = errors.New("sink is closed")
	} else {
		_, err = s.out.Write(w.buf)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write jsonl: %w", err)
	}
	s.records.Add(float64(b.Len()))
	// A large batch must not pin a large buffer for the writer's life.
	if cap(w.buf) > 4<<20 {
		w.buf = nil
	}
	return nil
}

// Close makes the rows written so far durable when the output is a file.
func (w *Writer) Close(context.Context) error { return w.sink.sync() }

// BeginHandover makes what the file holds durable and records, in
// <path>.handover, its length before the rows of checkpoint id are
// appended (once per checkpoint). Standard output records nothing.
func (s *Sink) BeginHandover(_ context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil || s.mark.id == id {
		return nil
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("begin hand-over of checkpoint %d: sync %s: %w", id, s.cfg.Path, err)
	}
	info, err := s.file.Stat()
	if err != nil {
		return fmt.Errorf("begin hand-over of checkpoint %d: %w", id, err)
	}
	mark := handover{id: id, length: info.Size()}
	if err := fileutil.ReplaceAtomic(s.cfg.Path+handoverSuffix, fmt.Appendf(nil, "%d %d\n", mark.id, mark.length), 0o600); err != nil {
		return fmt.Errorf("begin hand-over of checkpoint %d: %w", id, err)
	}
	s.mark = mark
	return nil
}

// RewindHandover cuts the file back to its length before the hand-over of
// checkpoint id, when the last recorded hand-over is that one: what a
// crash interrupted is then handed over once more, not twice.
func (s *Sink) RewindHandover(_ context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		return nil
	}
	data, err := os.ReadFile(s.cfg.Path + handoverSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rewind hand-over of checkpoint %d: %w", id, err)
	}
	var mark handover
	if _, err := fmt.Sscanf(string(data), "%d %d", &mark.id, &mark.length); err != nil {
		return fmt.Errorf("rewind hand-over of checkpoint %d: read %s%s: %w", id, s.cfg.Path, handoverSuffix, err)
	}
	if mark.id != id {
		return nil // that checkpoint's hand-over had not begun
	}
	info, err := s.file.Stat()
	if err != nil {
		return fmt.Errorf("rewind hand-over of checkpoint %d: %w", id, err)
	}
	if info.Size() < mark.length {
		return fmt.Errorf("rewind hand-over of checkpoint %d: %s has %d bytes, fewer than the %d it had before the hand-over", id, s.cfg.Path, info.Size(), mark.length)
	}
	if err := s.file.Truncate(mark.length); err != nil {
		return fmt.Errorf("rewind hand-over of checkpoint %d: %w", id, err)
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("rewind hand-over of checkpoint %d: %w", id, err)
	}
	if cut := info.Size() - mark.length; cut > 0 {
		s.logger.Info("cut back the rows of an interrupted hand-over; they are handed over again",
			zap.Int64("checkpoint", id), zap.Int64("bytes", cut))
	}
	s.mark = mark
	return nil
}
