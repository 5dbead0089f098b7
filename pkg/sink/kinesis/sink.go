package kinesis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/awsconf"
	"github.com/streamd/streamd/internal/promreg"
	"github.com/streamd/streamd/internal/retry"
	"github.com/streamd/streamd/internal/sleep"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// Kinesis PutRecords limits.
const (
	maxBatchRecords = 500
	maxBatchBytes   = 5 << 20
	maxRecordBytes  = 1 << 20
	maxKeyBytes     = 256
)

// Config configures a Kinesis sink.
type Config struct {
	// Name is the sink's name in the pipeline, used as a metric label; set
	// by the pipeline builder.
	Name string `yaml:"-"`
	// Stream is the stream name; either Stream or StreamARN is required.
	Stream string `yaml:"stream"`
	// StreamARN identifies the stream by ARN instead of name.
	StreamARN string `yaml:"streamARN"`
	// The connection: region, endpoint (for local servers), profile and
	// static keys; the standard chain where they are empty.
	awsconf.Config `yaml:",inline"`
	// PartitionKey is the field whose text is the partition key; empty
	// spreads rows over all shards.
	PartitionKey string `yaml:"partitionKey"`
	// BatchRecords is the most records per PutRecords call (1 to 500,
	// default 500).
	BatchRecords int `yaml:"batchRecords"`
	// MaxRetries is how often failed entries are sent again before Write
	// fails; default 10.
	MaxRetries int `yaml:"maxRetries"`
	// RetryInterval is the first wait before a retry; later waits double
	// up to 5s, with jitter. Default 100ms.
	RetryInterval time.Duration `yaml:"retryInterval"`
}

// DefaultConfig returns a configuration with every default filled in; the
// stream is still to be set.
func DefaultConfig() Config {
	return Config{BatchRecords: maxBatchRecords, MaxRetries: 10, RetryInterval: 100 * time.Millisecond}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.BatchRecords == 0 {
		c.BatchRecords = d.BatchRecords
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = d.MaxRetries
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = d.RetryInterval
	}
	return c
}

// Validate checks the configuration; zero fields count as their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Stream == "" && c.StreamARN == "" {
		errs = append(errs, errors.New("stream: required (or streamARN)"))
	}
	if c.BatchRecords < 1 || c.BatchRecords > maxBatchRecords {
		errs = append(errs, fmt.Errorf("batchRecords: %d must be between 1 and %d", c.BatchRecords, maxBatchRecords))
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("maxRetries: %d must not be negative", c.MaxRetries))
	}
	if c.RetryInterval < 0 {
		errs = append(errs, fmt.Errorf("retryInterval: %s must not be negative", c.RetryInterval))
	}
	errs = append(errs, c.Config.Validate())
	return errors.Join(errs...)
}

func (c Config) streamName() string {
	if c.Stream != "" {
		return c.Stream
	}
	return c.StreamARN
}

// putter is the part of the Kinesis client the sink uses.
type putter interface {
	PutRecords(context.Context, *kinesis.PutRecordsInput, ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// Sink is a sink.Sink writing to one Kinesis stream.
type Sink struct {
	cfg      Config
	client   putter
	logger   *zap.Logger
	records  prometheus.Counter
	failures prometheus.Counter
}

var _ sink.Sink = (*Sink)(nil)

// New validates cfg, loads the AWS configuration and builds the sink. A nil
// logger discards logs; a nil reg registers no metrics.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new kinesis sink: %w", err)
	}
	cfg = cfg.withDefaults()
	awsCfg, err := awsconf.Load(context.Background(), cfg.Config)
	if err != nil {
		return nil, fmt.Errorf("new kinesis sink: %w", err)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	records := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamd_kinesis_put_records_total",
		Help: "Records accepted by Kinesis PutRecords.",
	}, []string{"sink", "stream"}))
	failures := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamd_kinesis_put_failures_total",
		Help: "Entries refused in a PutRecords response (throughput, internal errors), each attempt counted.",
	}, []string{"sink", "stream"}))
	return &Sink{
		cfg:      cfg,
		client:   kinesis.NewFromConfig(awsCfg),
		logger:   logger.With(zap.String("sink", cfg.Name), zap.String("stream", cfg.streamName())),
		records:  records.WithLabelValues(cfg.Name, cfg.streamName()),
		failures: failures.WithLabelValues(cfg.Name, cfg.streamName()),
	}, nil
}

// NewWriter returns a writer for one producing task. It fails when the
// partition key field is not in the schema.
func (s *Sink) NewWriter(task string, schema *record.Schema) (sink.Writer, error) {
	w := &Writer{s: s, schema: schema, keyField: -1}
	if s.cfg.PartitionKey != "" {
		i, ok := schema.Index(s.cfg.PartitionKey)
		if !ok {
			return nil, fmt.Errorf("new kinesis writer %s: partitionKey field %q is not in the schema %s", task, s.cfg.PartitionKey, schema)
		}
		w.keyField = i
	}
	w.bo = retry.Exponential(s.cfg.RetryInterval, 5*time.Second, 0.5)
	return w, nil
}

// Close implements sink.Sink; writers hold everything.
func (s *Sink) Close(context.Context) error { return nil }

// Writer sends the rows of one task to Kinesis. It is used by one goroutine.
type Writer struct {
	s        *Sink
	schema   *record.Schema
	keyField int
	counter  uint64

	data    []byte
	keys    []byte
	ends    []int // ends of each entry's data and key in data and keys
	keyEnds []int
	entries []types.PutRecordsRequestEntry
	keyStrs []string
	retry   []types.PutRecordsRequestEntry
	bo      *retry.Backoff
	timer   sleep.Timer
}

var _ sink.Writer = (*Writer)(nil)

// Write sends every row of b and returns when Kinesis has accepted all of
// them, or with an error once an entry has failed MaxRetries+1 times.
func (w *Writer) Write(ctx context.Context, b *record.Batch) error {
	w.reset()
	var batchBytes int
	for i := range b.Len() {
		row := b.Row(i)
		start, kstart := len(w.data), len(w.keys)
		w.data = record.AppendJSON(w.data, w.schema, row)
		w.keys = w.appendKey(w.keys, row)
		size := len(w.data) - start + len(w.keys) - kstart
		if size > maxRecordBytes {
			return fmt.Errorf("write kinesis stream %q: row %d is %d bytes as JSON, more than the 1 MiB record limit", w.s.cfg.streamName(), i, size)
		}
		if len(w.ends) == w.s.cfg.BatchRecords || batchBytes+size > maxBatchBytes {
			// Send what came before this row, then start a new batch with it.
			row := append([]byte(nil), w.data[start:]...)
			key := append([]byte(nil), w.keys[kstart:]...)
			w.data, w.keys = w.data[:start], w.keys[:kstart]
			if err := w.flush(ctx); err != nil {
				return err
			}
			w.reset()
			w.data, w.keys = append(w.data, row...), append(w.keys, key...)
			batchBytes = 0
		}
		batchBytes += size
		w.ends = append(w.ends, len(w.data))
		w.keyEnds = append(w.keyEnds, len(w.keys))
	}
	return w.flush(ctx)
}

func (w *Writer) reset() {
	w.data, w.keys, w.ends, w.keyEnds = w.data[:0], w.keys[:0], w.ends[:0], w.keyEnds[:0]
}

// appendKey appends the row's partition key: the key field's text, cut to
// Kinesis' 256-byte limit on a character boundary, or a rotating counter
// when there is no key field or the field is empty.
func (w *Writer) appendKey(dst []byte, row record.Row) []byte {
	start := len(dst)
	if w.keyField >= 0 {
		v := row[w.keyField]
		if v.T == record.TypeString {
			dst = append(dst, v.S...)
		} else if !v.IsNull() {
			dst = v.AppendText(dst)
		}
	}
	if len(dst) == start {
		w.counter++
		return strconv.AppendUint(dst, w.counter, 10)
	}
	if len(dst)-start > maxKeyBytes {
		cut := start + maxKeyBytes
		for cut > start && !utf8.RuneStart(dst[cut]) {
			cut--
		}
		dst = dst[:cut]
	}
	return dst
}

// flush sends the buffered entries, retrying failed ones.
func (w *Writer) flush(ctx context.Context) error {
	n := len(w.ends)
	if n == 0 {
		return nil
	}
	// All keys become one string, so entries cost no allocation each.
	allKeys := string(w.keys)
	w.keyStrs = w.keyStrs[:0]
	kstart := 0
	for _, end := range w.keyEnds {
		w.keyStrs = append(w.keyStrs, allKeys[kstart:end])
		kstart = end
	}
	w.entries = w.entries[:0]
	start := 0
	for i := range n {
		w.entries = append(w.entries, types.PutRecordsRequestEntry{
			Data:         w.data[start:w.ends[i]:w.ends[i]],
			PartitionKey: &w.keyStrs[i],
		})
		start = w.ends[i]
	}
	return w.put(ctx, w.entries)
}

// put sends entries until all are accepted or retries run out.
func (w *Writer) put(ctx context.Context, entries []types.PutRecordsRequestEntry) error {
	stream := w.s.cfg.streamName()
	loop := retry.Loop{
		Retries: w.s.cfg.MaxRetries,
		Backoff: w.bo,
		Pause:   w.sleep,
		OnRetry: func(n int, _ time.Duration, err error) {
			w.s.logger.Debug("retrying put records", zap.Int("entries", len(entries)), zap.Int("attempt", n), zap.Error(err))
		},
	}
	err := loop.Run(ctx, func() error {
		in := &kinesis.PutRecordsInput{Records: entries}
		if w.s.cfg.StreamARN != "" {
			in.StreamARN = aws.String(w.s.cfg.StreamARN)
		} else {
			in.StreamName = aws.String(w.s.cfg.Stream)
		}
		out, err := w.s.client.PutRecords(ctx, in)
		if err != nil {
			if !retryable(err) {
				return retry.Permanent(err)
			}
			return err
		}
		failed := w.retry[:0]
		var code, msg string
		for i, r := range out.Records {
			if r.ErrorCode == nil {
				continue
			}
			if code == "" {
				code, msg = *r.ErrorCode, aws.ToString(r.ErrorMessage)
			}
			failed = append(failed, entries[i])
		}
		w.s.records.Add(float64(len(entries) - len(failed)))
		if len(failed) == 0 {
			return nil
		}
		w.s.failures.Add(float64(len(failed)))
		// From the second attempt on, entries is w.retry and failed
		// compacts it in place: entry i is read before index <= i is
		// written.
		w.retry, entries = failed, failed
		return fmt.Errorf("%d of %d entries failed, first with %s: %s", len(failed), len(out.Records), code, msg)
	})
	var ex *retry.Exhausted
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ex):
		return fmt.Errorf("put records to kinesis stream %q: giving up after %d retries: %w", stream, ex.Attempts-1, ex.Err)
	}
	return fmt.Errorf("put records to kinesis stream %q: %w", stream, err)
}

// retryable tells whether a failed PutRecords call may succeed when sent
// again; a missing stream or rejected request will not.
func retryable(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return true
	}
	code := apiErr.ErrorCode()
	switch {
	case code == "ResourceNotFoundException", code == "InvalidArgumentException",
		code == "ValidationException", code == "AccessDeniedException",
		code == "UnrecognizedClientException", code == "InvalidSignatureException",
		strings.HasPrefix(code, "KMS") && code != "KMSThrottlingException":
		return false
	}
	return true
}

func (w *Writer) sleep(ctx context.Context, d time.Duration) error {
	return w.timer.Sleep(ctx, d)
}

// Close implements sink.Writer; every Write is already durable.
func (w *Writer) Close(context.Context) error {
	w.timer.Stop()
	return nil
}

// Check verifies at startup that the stream exists and can be described
// with the configured credentials.
func (s *Sink) Check(ctx context.Context) error {
	d, ok := s.client.(interface {
		DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	})
	if !ok {
		return nil
	}
	in := &kinesis.DescribeStreamSummaryInput{}
	if s.cfg.StreamARN != "" {
		in.StreamARN = aws.String(s.cfg.StreamARN)
	} else {
		in.StreamName = aws.String(s.cfg.Stream)
	}
	if _, err := d.DescribeStreamSummary(ctx, in); err != nil {
		return fmt.Errorf("check kinesis sink %q: stream %q at %s: %w", s.cfg.Name, s.cfg.Stream, s.cfg.Endpoint, err)
	}
	return nil
}
