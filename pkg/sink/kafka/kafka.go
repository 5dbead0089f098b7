package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/streamd/streamd/internal/promreg"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/fielderr"
	"github.com/streamd/streamd/internal/kafkaconn"
	"github.com/streamd/streamd/internal/retry"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// Compression codecs accepted in Config.Compression.
var compressions = map[string]kafka.Compression{
	"none":   0,
	"gzip":   kafka.Gzip,
	"snappy": kafka.Snappy,
	"lz4":    kafka.Lz4,
	"zstd":   kafka.Zstd,
}

// Config configures a Kafka sink.
type Config struct {
	// Name labels the sink's metrics and log lines.
	Name string `yaml:"name"`
	// The connection: brokers, client id, TLS and SASL.
	kafkaconn.Client `yaml:",inline"`
	// Topic receives the messages; it must exist.
	Topic string `yaml:"topic"`
	// KeyField is the field whose value is the message key; empty spreads
	// messages over partitions round robin.
	KeyField string `yaml:"keyField"`
	// Compression is none, gzip, snappy, lz4 or zstd (default).
	Compression string `yaml:"compression"`
	// BatchTimeout is how long a partial batch waits for more messages
	// before it is sent; default 10ms. Write waits at most this long more
	// than the broker round trip.
	BatchTimeout time.Duration `yaml:"batchTimeout"`
	// MaxRetries is how many times a batch's failed messages are retried
	// on retriable errors, after kafka-go's own attempts; default 5.
	MaxRetries int `yaml:"maxRetries"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Name:         "kafka",
		Compression:  "zstd",
		BatchTimeout: 10 * time.Millisecond,
		MaxRetries:   5,
		Client:       kafkaconn.Client{ClientID: kafkaconn.DefaultClientID},
	}
}

// Validate reports every invalid setting, each as a *fielderr.Error
// naming its yaml path within the block ("brokers[0]", "sasl.mechanism").
func (c Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, fielderr.Errorf(path, format, args...)) }
	if c.Name == "" {
		add("name", "required")
	}
	brokers, security := c.Client.Validate()
	errs = append(errs, brokers)
	if c.Topic == "" {
		add("topic", "required")
	}
	if _, ok := compressions[c.Compression]; !ok && c.Compression != "" {
		add("compression", "%q must be none, gzip, snappy, lz4 or zstd", c.Compression)
	}
	if c.BatchTimeout < 0 {
		add("batchTimeout", "%s must be >= 0", c.BatchTimeout)
	}
	if c.MaxRetries < 0 {
		add("maxRetries", "%d must be >= 0", c.MaxRetries)
	}
	return errors.Join(append(errs, security)...)
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Compression == "" {
		c.Compression = d.Compression
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = d.BatchTimeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = d.MaxRetries
	}
	c.Client = c.WithDefaults()
	return c
}

// Sink produces rows to one topic. Its writers share one kafka-go writer,
// which batches per partition across them.
type Sink struct {
	cfg       Config
	logger    *zap.Logger
	conn      *kafkaconn.Conn
	transport *kafka.Transport
	w         *kafka.Writer

	produced prometheus.Counter
	failed   prometheus.Counter
	retries  prometheus.Counter
}

var (
	_ sink.Sink             = (*Sink)(nil)
	_ sink.Writer           = (*Writer)(nil)
	_ sink.IdentifiedWriter = (*Writer)(nil)
	_ sink.ReadBacker       = (*Sink)(nil)
)

// New validates cfg and builds the sink. It does not connect: Check does,
// and the first Write does. A nil logger discards logs; a nil reg registers
// no metrics.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new kafka sink: %w", err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = zap.NewNop()
	}
	conn, err := cfg.Connect()
	if err != nil {
		return nil, fmt.Errorf("new kafka sink: %w", err)
	}
	logger = logger.With(zap.String("sink", cfg.Name), zap.String("topic", cfg.Topic))
	tr := conn.Transport()
	f := promreg.With(reg)
	labels := prometheus.Labels{"sink": cfg.Name, "topic": cfg.Topic}
	s := &Sink{
		cfg:       cfg,
		logger:    logger,
		conn:      conn,
		transport: tr,
		w: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Topic:        cfg.Topic,
			Balancer:     &kafka.Hash{},
			BatchSize:    10000,
			BatchTimeout: cfg.BatchTimeout,
			RequiredAcks: kafka.RequireAll,
			Compression:  compressions[cfg.Compression],
			Transport:    tr,
			ErrorLogger: kafka.LoggerFunc(func(format string, args ...any) {
				logger.Warn(fmt.Sprintf(format, args...))
			}),
		},
		produced: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_kafka_produced_records_total",
			Help:        "Records acknowledged by Kafka.",
			ConstLabels: labels,
		}),
		failed: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_kafka_produce_failed_records_total",
			Help:        "Records Kafka did not acknowledge after every retry.",
			ConstLabels: labels,
		}),
		retries: f.NewCounter(prometheus.CounterOpts{
			Name:        "streamd_kafka_produce_retries_total",
			Help:        "Batch retries after retriable produce errors.",
			ConstLabels: labels,
		}),
	}
	return s, nil
}

// Check connects to every broker and checks that the topic exists. The
// error names each unreachable broker or the missing topic and what to fix.
func (s *Sink) Check(ctx context.Context) error {
	if err := s.conn.Check(ctx, []string{s.cfg.Topic}); err != nil {
		return fmt.Errorf("check kafka sink %s: %w", s.cfg.Name, err)
	}
	return nil
}

// NewWriter returns a writer for rows of schema.
func (s *Sink) NewWriter(task string, schema *record.Schema) (sink.Writer, error) {
	key := -1
	if s.cfg.KeyField != "" {
		i, ok := schema.Index(s.cfg.KeyField)
		if !ok {
			return nil, fmt.Errorf("new kafka writer %s: keyField %q is not in the schema %s", task, s.cfg.KeyField, schema)
		}
		key = i
	}
	return &Writer{s: s, task: task, schema: schema, key: key}, nil
}

// Close flushes and closes the shared writer.
func (s *Sink) Close(context.Context) error {
	err := s.w.Close()
	s.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close kafka sink %s: %w", s.cfg.Name, err)
	}
	return nil
}

// Writer encodes rows of one task as JSON messages.
type Writer struct {
	s      *Sink
	task   string
	schema *record.Schema
	key    int
	buf    []byte
	ends   []int // per row: end of value, of key, of row name in buf
	msgs   []kafka.Message
	hdrs   []kafka.Header
}

// Write produces every row of b and returns when all are acknowledged, or
// with an error naming how many failed.
func (w *Writer) Write(ctx context.Context, b *record.Batch) error {
	return w.write(ctx, b, nil)
}

// WriteIdentified is Write with each message carrying its row's name in
// the RowHeader header, which Delivered reads back.
func (w *Writer) WriteIdentified(ctx context.Context, b *record.Batch, ids []sink.RowID) error {
	if len(ids) != b.Len() {
		return fmt.Errorf("write kafka %s: %d names for %d rows", w.s.cfg.Topic, len(ids), b.Len())
	}
	return w.write(ctx, b, ids)
}

func (w *Writer) write(ctx context.Context, b *record.Batch, names []sink.RowID) error {
	n := b.Len()
	if n == 0 {
		return nil
	}
	// Encode into one buffer first; messages slice it once it stops growing.
	w.buf = w.buf[:0]
	ends := w.ends[:0]
	for i := range n {
		row := b.Row(i)
		w.buf = record.AppendJSON(w.buf, w.schema, row)
		ends = append(ends, len(w.buf))
		if w.key >= 0 && !row[w.key].IsNull() {
			w.buf = row[w.key].AppendText(w.buf)
		}
		ends = append(ends, len(w.buf))
		if names != nil {
			w.buf = appendRowName(w.buf, names[i])
		}
		ends = append(ends, len(w.buf))
	}
	w.ends = ends
	w.msgs = w.msgs[:0]
	if names != nil {
		w.hdrs = slices.Grow(w.hdrs[:0], n)[:n]
	}
	start := 0
	for i := range n {
		valEnd, keyEnd, nameEnd := ends[3*i], ends[3*i+1], ends[3*i+2]
		m := kafka.Message{Value: w.buf[start:valEnd:valEnd], Time: time.UnixMilli(b.Time(i))}
		if w.key >= 0 && !b.Row(i)[w.key].IsNull() {
			m.Key = w.buf[valEnd:keyEnd:keyEnd]
		}
		if names != nil {
			w.hdrs[i] = kafka.Header{Key: RowHeader, Value: w.buf[keyEnd:nameEnd:nameEnd]}
			m.Headers = w.hdrs[i : i+1 : i+1]
		}
		w.msgs = append(w.msgs, m)
		start = nameEnd
	}
	err := w.produce(ctx, w.msgs)
	if err != nil && ctx.Err() != nil {
		// kafka-go may still send the bytes after a cancelled write: never
		// reuse them.
		w.buf, w.msgs, w.hdrs = nil, nil, nil
	}
	return err
}

// produce writes msgs, retrying the failed ones while the errors are
// retriable.
func (w *Writer) produce(ctx context.Context, msgs []kafka.Message) error {
	s := w.s
	pending := msgs
	loop := retry.Loop{
		Retries: s.cfg.MaxRetries,
		Backoff: retry.Exponential(100*time.Millisecond, 5*time.Second, 0.5),
		OnRetry: func(_ int, d time.Duration, err error) {
			s.retries.Inc()
			s.logger.Warn("produce failed, retrying", zap.String("task", w.task), zap.Int("messages", len(pending)),
				zap.Duration("backoff", d), zap.Error(err))
		},
	}
	err := loop.Run(ctx, func() error {
		err := s.w.WriteMessages(ctx, pending...)
		if err == nil {
			s.produced.Add(float64(len(pending)))
			return nil
		}
		var failed []kafka.Message
		retriable := true
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			for i, e := range werrs {
				if e == nil {
					continue
				}
				failed = append(failed, pending[i])
				retriable = retriable && isRetriable(e)
			}
		} else {
			failed = pending
			retriable = isRetriable(err)
		}
		s.produced.Add(float64(len(pending) - len(failed)))
		pending = failed
		if !retriable {
			return retry.Permanent(err)
		}
		return err
	})
	if err == nil {
		return nil
	}
	s.failed.Add(float64(len(pending)))
	return fmt.Errorf("write kafka %s: %d of %d messages failed: %w", s.cfg.Topic, len(pending), len(msgs), err)
}

// isRetriable reports errors that may go away: broker temporary errors
// (leader moved, not enough replicas) and network failures.
func isRetriable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	var mtl kafka.MessageTooLargeError
	if errors.As(err, &mtl) {
		return false
	}
	// Network and I/O errors: the writer redials.
	return true
}

// Close implements sink.Writer; messages are durable when Write returns.
func (w *Writer) Close(context.Context) error { return nil }
