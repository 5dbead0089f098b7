package pipeline

import (
	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
	kafkasink "github.com/streamd/streamd/pkg/sink/kafka"
	kinesissink "github.com/streamd/streamd/pkg/sink/kinesis"
	"github.com/streamd/streamd/pkg/sink/webhook"
	kafkasrc "github.com/streamd/streamd/pkg/source/kafka"
	kinesissrc "github.com/streamd/streamd/pkg/source/kinesis"
	"github.com/streamd/streamd/pkg/window"
)

// Config is a pipeline file. Field comments are the reference documentation
// for docs/pipeline.md.
type Config struct {
	// Name identifies the pipeline in logs and metrics.
	Name string `yaml:"name"`
	// Parallelism is the number of keyed subtasks per stage; 0 means one per core.
	Parallelism int `yaml:"parallelism"`
	// KeyGroups is the number of key groups (the unit of state and rescaling); default 128.
	KeyGroups int `yaml:"keyGroups"`
	// BatchSize is the maximum records per batch between tasks; default 1024.
	BatchSize int `yaml:"batchSize"`
	// HTTP configures the admin/metrics endpoint.
	HTTP HTTPConfig `yaml:"http"`
	// Time configures event-time behaviour shared by all stages.
	Time TimeConfig `yaml:"time"`
	// Health sets when the probes report trouble.
	Health HealthConfig `yaml:"health"`
	// Sources produce streams named after them.
	Sources []SourceConfig `yaml:"sources"`
	// Steps are stateless steps applied, in order, to every source's records.
	Steps []StepConfig `yaml:"steps"`
	// Stages are keyed windowed stages; each reads the previous stage (or
	// the sources) unless Input says otherwise, and produces a stream named after it.
	Stages []StageConfig `yaml:"stages"`
	// Sinks write streams: a source or stage name, or one of the built-in
	// streams "alerts", "deadletters" and "late".
	Sinks []SinkConfig `yaml:"sinks"`
	// Checkpoint configures aligned checkpoints of positions, state and
	// sink output. Without the block a pipeline checkpoints every
	// DefaultCheckpointInterval to DefaultCheckpointDir (unless it reads
	// stdin, which cannot be read again); enabled: false turns them off.
	Checkpoint *CheckpointConfig `yaml:"checkpoint"`

	// defaultCheckpoint is set when ApplyDefaults added the checkpoint block.
	defaultCheckpoint bool

	// registry holds the source and sink kinds the file was parsed
	// with; nil means the built-in kinds.
	registry *Registry

	// positions maps YAML paths ("stages[0].window.size") to where they
	// were written, so problems found after loading can still name a line.
	positions map[string]position
}

// HealthConfig sets when /readyz and /healthz report trouble.
type HealthConfig struct {
	// ReadyGrace is how long a split may fail its reads, or a sink or the
	// checkpoint store retry a failed request, before /readyz and
	// streamd_ready say not ready; 0 means 30s.
	ReadyGrace Duration `yaml:"readyGrace"`
	// StallTimeout is how long a reader, subtask or sink write may go
	// without finishing a round of its loop before /healthz fails and the
	// kubelet restarts the container; 0 means 15m.
	StallTimeout Duration `yaml:"stallTimeout"`
}

// HTTPConfig configures the admin endpoint: probes and /metrics, and the
// /v1 API (status, rules, savepoints); see docs/operations.md.
type HTTPConfig struct {
	// Listen is the address of the API (and of the probes and /metrics
	// unless ProbeListen is set), default "127.0.0.1:9249" (loopback);
	// "" keeps the default, "off" disables it.
	Listen string `yaml:"listen"`
	// ProbeListen serves /healthz, /readyz and /metrics on an address of
	// their own (e.g. ":9250" for the kubelet and Prometheus), so the API
	// can stay on loopback or behind the token.
	ProbeListen string `yaml:"probeListen"`
	// Auth configures the credentials of the API.
	Auth HTTPAuthConfig `yaml:"auth"`
	// TLS serves the API over HTTPS, optionally verifying client certificates.
	TLS *HTTPTLSConfig `yaml:"tls"`
	// MaxRuleBytes bounds a request body (a rule in PUT /v1/rules/{id});
	// larger bodies get 413. Default 1MiB.
	MaxRuleBytes ByteSize `yaml:"maxRuleBytes"`
}

// HTTPAuthConfig says who may read and who may change state through the
// API. Endpoints that change state (rules, savepoints) always need a
// write credential: with none configured, no one can change state.
type HTTPAuthConfig struct {
	// TokenFile holds the bearer token that may change state, typically a
	// Kubernetes Secret mounted as a file; re-read when it changes.
	TokenFile string `yaml:"tokenFile"`
	// ReadTokenFile holds a bearer token that may only read.
	ReadTokenFile string `yaml:"readTokenFile"`
	// OpenReads serves the read-only endpoints without a credential.
	// Without any credential configured they are open anyway.
	OpenReads bool `yaml:"openReads"`
	// WriteClients are the client-certificate names (common name or DNS
	// name) that may change state over mTLS; other verified clients may
	// only read. Empty: every verified client may change state.
	WriteClients []string `yaml:"writeClients"`
}

// HTTPTLSConfig is the API's server certificate and the CAs of client
// certificates (mTLS).
type HTTPTLSConfig struct {
	// CertFile and KeyFile are the PEM server certificate and key,
	// re-read when they change.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// ClientCAFile verifies client certificates; a verified certificate
	// is a credential. Clients without one may still use a token.
	ClientCAFile string `yaml:"clientCAFile"`
}

// TimeConfig configures event time across the pipeline.
type TimeConfig struct {
	// IdleAdvance, when set, lets event time follow the wall clock once every
	// input of a subtask has been idle for this long, so windows close
	// without new data. Off by default.
	IdleAdvance Duration `yaml:"idleAdvance"`
}

// SourceConfig is one input.
type SourceConfig struct {
	Name string `yaml:"name"`
	// Type is generator, nexmark, file, stdin, kafka or kinesis.
	Type      string           `yaml:"type"`
	Generator *GeneratorConfig `yaml:"generator"`
	// Nexmark generates Nexmark auction events (persons, auctions, bids).
	Nexmark *NexmarkConfig `yaml:"nexmark"`
	File    *FileConfig    `yaml:"file"`
	// Kafka reads partitions of Kafka topics (see docs/pipeline.md).
	Kafka *kafkasrc.Config `yaml:"kafka"`
	// Kinesis reads the shards of a Kinesis data stream.
	Kinesis *kinesissrc.Config `yaml:"kinesis"`
	// Decode says how raw messages become typed records.
	Decode DecodeConfig `yaml:"decode"`
	// EventTime says where a record's event time comes from.
	EventTime EventTimeConfig `yaml:"eventTime"`
	// Watermark says how each split's watermark follows its event times.
	Watermark WatermarkConfig `yaml:"watermark"`
	// Blocks are the settings blocks of registered source kinds that are
	// not built in, by block key (see Registry).
	Blocks map[string]any `yaml:"-"`
}

// GeneratorConfig drives the built-in, deterministic line-monitoring data generator.
type GeneratorConfig struct {
	Seed int64 `yaml:"seed"`
	// Rate is records per second over all splits; 0 means as fast as possible.
	Rate float64 `yaml:"rate"`
	// Count stops each split after this many records; 0 runs forever.
	Count int64 `yaml:"count"`
	// Splits is the number of parallel splits (like partitions); default 1.
	Splits   int `yaml:"splits"`
	Machines int `yaml:"machines"`
	Tags     int `yaml:"tags"`
	// StartTime is the first event time (RFC 3339); default: now.
	StartTime string `yaml:"startTime"`
	// Step is the event-time distance between consecutive records of a
	// split; default: derived from Rate, or 1ms.
	Step Duration `yaml:"step"`
	// OutOfOrderness shifts event times back by up to this much, at random.
	OutOfOrderness Duration `yaml:"outOfOrderness"`
	// LateFraction of records are shifted back by LateBy (default 10m).
	LateFraction float64  `yaml:"lateFraction"`
	LateBy       Duration `yaml:"lateBy"`
	// MalformedFraction of records are broken JSON or miss fields.
	MalformedFraction float64 `yaml:"malformedFraction"`
}

// NexmarkConfig drives the built-in, deterministic Nexmark event generator
// (the benchmark of examples/nexmark).
type NexmarkConfig struct {
	Seed int64 `yaml:"seed"`
	// Events is the number of events over all splits; 0 runs forever.
	Events int64 `yaml:"events"`
	// Splits is the number of parallel splits; default 1.
	Splits int `yaml:"splits"`
	// Rate is events per second of event time; default 10000.
	Rate float64 `yaml:"rate"`
	// EmitRate paces the source in events per wall-clock second; 0 means
	// as fast as possible.
	EmitRate float64 `yaml:"emitRate"`
	// BaseTime is the event time of the first event (RFC 3339); default
	// 2015-07-15T00:00:00Z.
	BaseTime string `yaml:"baseTime"`
	// Format is json (each event a JSON line, decoded by decode.fields) or
	// native (rows built directly from the events, no JSON).
	Format string `yaml:"format"`
}

// FileConfig reads JSON lines from files.
type FileConfig struct {
	// Paths are files or glob patterns; each file is a split.
	Paths []string `yaml:"paths"`
	// Follow keeps reading as files grow (like tail -F).
	Follow bool `yaml:"follow"`
	// PollInterval is how often a followed file is checked; default 200ms.
	PollInterval Duration `yaml:"pollInterval"`
}

// DecodeConfig declares the typed fields of a JSON record and how hostile
// input is handled.
type DecodeConfig struct {
	// Format is json (the default and, for now, only format).
	Format string        `yaml:"format"`
	Fields []FieldConfig `yaml:"fields"`
	// InvalidUTF8 is what happens to a record whose string field (a key
	// included) is not valid UTF-8: deadLetter (default, reason
	// invalid_utf8) or replace (invalid bytes become U+FFFD, counted in
	// streamd_repaired_records_total).
	InvalidUTF8 string `yaml:"invalidUTF8"`
	// EmptyRecords is what happens to an empty message or blank line,
	// always counted in streamd_empty_records_total: skip (default) or
	// deadLetter (reason empty_record).
	EmptyRecords string `yaml:"emptyRecords"`
	// MaxRecordBytes dead-letters longer messages (record_too_large);
	// default 1MiB.
	MaxRecordBytes ByteSize `yaml:"maxRecordBytes"`
	// MaxKeyBytes dead-letters records whose key fields (fields named in
	// a stage's keyBy) are longer (key_too_large); default 4KiB.
	MaxKeyBytes ByteSize `yaml:"maxKeyBytes"`
	// Extras names an extra string field that keeps, as a JSON object, the
	// top-level keys of a message no declared field reads (null when none).
	Extras string `yaml:"extras"`
}

// FieldConfig is one declared field.
type FieldConfig struct {
	Name string `yaml:"name"`
	// Path is a dotted JSON path ("meta.sourceId"); default: Name.
	Path string `yaml:"path"`
	// Type is string, int, float, bool, timestamp, json (the value at the
	// path, object, array or scalar, kept as its JSON text), or a nested
	// type written to Parquet as a group: struct (with fields), list (with
	// items) or map (string keys, with values).
	Type string `yaml:"type"`
	// Format is for timestamps: epoch_s, epoch_ms, epoch_us, epoch_ns,
	// rfc3339, or auto (the default: numbers by magnitude, strings as RFC 3339).
	Format string `yaml:"format"`
	// Required fields that are absent or null send the record to dead letters.
	Required bool `yaml:"required"`
	// Fields are the members of a struct: name, type, format, required,
	// and nested types again; each is read from the object key of its name.
	Fields []FieldConfig `yaml:"fields"`
	// Items is the element type of a list: {type: string}, or a struct
	// with its fields, or another list or map.
	Items *FieldConfig `yaml:"items"`
	// Values is the value type of a map, whose keys are strings.
	Values *FieldConfig `yaml:"values"`
}

// EventTimeConfig says where event time comes from.
type EventTimeConfig struct {
	// Field is a timestamp field; when empty the broker/source timestamp is used.
	Field string `yaml:"field"`
	// MaxFuture rejects records whose event time is further than this ahead
	// of the wall clock (absurd timestamps) to dead letters; default 24h, negative disables.
	MaxFuture Duration `yaml:"maxFuture"`
}

// WatermarkConfig is a split's watermark strategy.
type WatermarkConfig struct {
	// Strategy is bounded (default) or perSender.
	Strategy string `yaml:"strategy"`
	// MaxOutOfOrderness is how far behind the newest event time the watermark trails.
	MaxOutOfOrderness Duration `yaml:"maxOutOfOrderness"`
	// IdleTimeout marks a split idle after this long without records, so it
	// stops holding the watermark back; 0 disables.
	IdleTimeout Duration `yaml:"idleTimeout"`
	// SenderField names the field that identifies a sender (perSender).
	SenderField string `yaml:"senderField"`
	// SenderIdleTimeout excludes a sender silent for longer than this (wall clock).
	SenderIdleTimeout Duration `yaml:"senderIdleTimeout"`
	// SenderTTL forgets a sender whose newest event time is further than
	// this behind the split's newest sender: it stops holding the
	// watermark back (event time; default 1h).
	SenderTTL Duration `yaml:"senderTTL"`
	// MaxSenders bounds the senders tracked per split; past it those
	// furthest behind are forgotten first (default 100000).
	MaxSenders int `yaml:"maxSenders"`
}

// StepConfig is one stateless step; exactly one of its kinds is set.
type StepConfig struct {
	Name string `yaml:"name"`
	// Filter keeps records for which the expression is true.
	Filter string `yaml:"filter"`
	// Map computes fields; the result has the listed fields (plus the
	// existing ones when Keep is true).
	Map *MapConfig `yaml:"map"`
	// FlatMap turns a record into one record per element of an array expression.
	FlatMap *FlatMapConfig `yaml:"flatMap"`
}

// MapConfig computes fields with expressions.
type MapConfig struct {
	Fields []ExprField `yaml:"fields"`
	// Keep keeps the input fields that are not redefined.
	Keep bool `yaml:"keep"`
}

// ExprField is a computed field.
type ExprField struct {
	Name string `yaml:"name"`
	Expr string `yaml:"expr"`
	Type string `yaml:"type"`
}

// FlatMapConfig emits one record per element of the array Expr evaluates to,
// with the element in field As (of type Type).
type FlatMapConfig struct {
	Expr string `yaml:"expr"`
	As   string `yaml:"as"`
	Type string `yaml:"type"`
}

// StageConfig is one keyed window stage.
type StageConfig struct {
	Name string `yaml:"name"`
	// Input is the stream read: a source or an earlier stage; default the
	// previous stage, or all sources for the first stage.
	Input string `yaml:"input"`
	// KeyBy lists the key fields; empty means a single global key.
	KeyBy  []string     `yaml:"keyBy"`
	Window WindowConfig `yaml:"window"`
	// AllowedLateness keeps windows open after they fire; late records
	// within it update the result, later ones go to the "late" stream.
	AllowedLateness Duration `yaml:"allowedLateness"`
	// Emit is when window results are emitted: "updates" (default: when the
	// watermark passes the window end, then a retraction and an updated row
	// for every late record within allowedLateness) or "final" (once, after
	// allowedLateness). See docs/windows.md.
	Emit       string        `yaml:"emit"`
	Aggregates []window.Spec `yaml:"aggregates"`
	// Alerts are simple threshold alerts over this stage's results.
	Alerts []AlertConfig `yaml:"alerts"`
	// Rules makes this a live rule stage (see docs/rules.md): rules come
	// from files, a Kafka control topic and the admin API, and the stage's
	// output is one row per change of a rule's state for a key.
	Rules *RulesConfig `yaml:"rules"`
	// StateTTL bounds keyed state in event time: how long a window
	// stage keeps a key without windows (default window size or gap plus
	// allowedLateness), how long a rule stage keeps a latest value and an
	// idle key (default 24h). See docs/windows.md and docs/rules.md.
	StateTTL Duration `yaml:"stateTTL"`
	// StateBudget is the stage's state budget (estimated bytes, split
	// over its subtasks); past it records of new keys go to the dead
	// letters (state_limit). Default: none.
	StateBudget ByteSize `yaml:"stateBudget"`
}

// RulesConfig configures a rule stage and where its rules come from.
type RulesConfig struct {
	// Files are rule files (JSON or YAML) or directories of them; they are
	// loaded at start and watched for changes.
	Files []string `yaml:"files"`
	// PollInterval is how often files are checked; default 1s.
	PollInterval Duration `yaml:"pollInterval"`
	// Kafka is a compacted control topic: key = rule id, value = the rule
	// (JSON or YAML), empty value = delete.
	Kafka *RulesKafkaConfig `yaml:"kafka"`
	// QuarantineAfter disables a rule after this many consecutive
	// evaluation errors; default 100.
	QuarantineAfter int `yaml:"quarantineAfter"`
	// MaxSignalPoints bounds each windowed signal's points per key.
	MaxSignalPoints int `yaml:"maxSignalPoints"`
	// MaxRuleBytes bounds a rule file or control-topic message; larger
	// ones are rejected (the running rule is kept). Default 1MiB.
	MaxRuleBytes ByteSize `yaml:"maxRuleBytes"`
}

// RulesKafkaConfig is the Kafka control topic of a rule stage.
type RulesKafkaConfig struct {
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
}

// WindowConfig selects a window assigner.
type WindowConfig struct {
	// Type is tumbling, sliding or session.
	Type  string   `yaml:"type"`
	Size  Duration `yaml:"size"`
	Slide Duration `yaml:"slide"`
	Gap   Duration `yaml:"gap"`
	// Offset shifts the alignment of tumbling and sliding windows (as in
	// Flink): starts are offset plus a multiple of size (tumbling) or slide
	// (sliding).
	Offset Duration `yaml:"offset"`
}

// AlertConfig raises an alert for every window result matching When.
type AlertConfig struct {
	Name string `yaml:"name"`
	// When is a boolean expression over the stage's output fields.
	When     string `yaml:"when"`
	Severity string `yaml:"severity"`
}

// SinkConfig is one output.
type SinkConfig struct {
	Name string `yaml:"name"`
	// Input is the stream written.
	Input string `yaml:"input"`
	// Delivery is atLeastOnce (default) or exactlyOnce: rows (alerts) are
	// held until the checkpoint that produced them completes. Needs a
	// checkpoint block. Parquet sinks are exactly-once by themselves when
	// checkpoints are enabled.
	Delivery string `yaml:"delivery"`
	// MaxHeldBytes bounds, with delivery exactlyOnce, the encoded rows
	// the sink holds until their checkpoint completes, shared evenly by
	// its producing tasks (at least 256KiB each); a task past its share
	// waits (backpressure) and asks for a checkpoint at once.
	// Default 16MiB.
	MaxHeldBytes ByteSize `yaml:"maxHeldBytes"`
	// Type is parquet, stdout, file, kafka, kinesis or webhook.
	Type    string          `yaml:"type"`
	Parquet *ParquetConfig  `yaml:"parquet"`
	File    *JSONFileConfig `yaml:"file"`
	// Kafka produces rows as JSON messages to a topic.
	Kafka *kafkasink.Config `yaml:"kafka"`
	// Kinesis puts rows as JSON records to a stream.
	Kinesis *kinesissink.Config `yaml:"kinesis"`
	// Webhook POSTs rows as JSON arrays to a URL.
	Webhook *webhook.Config `yaml:"webhook"`
	// Blocks are the settings blocks of registered sink kinds that are
	// not built in, by block key (see Registry).
	Blocks map[string]any `yaml:"-"`
}

// ParquetConfig writes Hive-partitioned Parquet files.
type ParquetConfig struct {
	// Path is the output directory, or s3://bucket/prefix.
	Path string `yaml:"path"`
	// S3 configures the S3 client for s3:// paths (endpoint, region,
	// pathStyle, credentials; default: the AWS credential chain).
	S3 *s3store.Config `yaml:"s3"`
	// Partition is a path template: {date}, {hour}, {minute} from event time
	// and {field} from record fields, e.g. "dt={date}/hour={hour}/tag={tag}".
	Partition string `yaml:"partition"`
	// Compression is zstd (default), snappy, gzip or none.
	Compression string `yaml:"compression"`
	// RollSize, RollRows and RollAge close a file when it reaches any of them;
	// defaults 128MiB, 0 (off) and 5m.
	RollSize ByteSize `yaml:"rollSize"`
	RollRows int64    `yaml:"rollRows"`
	RollAge  Duration `yaml:"rollAge"`
	// RowGroupSize flushes a row group at this many buffered bytes; default
	// 64MiB. Every open file buffers up to this much.
	RowGroupSize ByteSize `yaml:"rowGroupSize"`
	// PageSize cuts data pages at this many uncompressed bytes; default 1MiB.
	PageSize ByteSize `yaml:"pageSize"`
	// DictionarySize bounds a string column chunk's dictionary; past it the
	// chunk goes on in PLAIN encoding. Default 64KiB.
	DictionarySize ByteSize `yaml:"dictionarySize"`
	// SortBy sorts every row group by these fields (ascending, nulls last).
	SortBy []string `yaml:"sortBy"`
	// JSONColumns are string fields written with Parquet's JSON logical
	// type. A sink reading a source directly gets that source's json
	// fields and extras field without listing them.
	JSONColumns []string `yaml:"jsonColumns"`
	// Filter is a condition (as in a filter step) selecting the rows this
	// sink writes: several log types in one stream → several tables.
	Filter string `yaml:"filter"`
	// PartitionCommit writes _manifest.json and _SUCCESS into a time
	// partition once the watermark has passed its end plus allowedLateness.
	PartitionCommit *ParquetPartitionCommit `yaml:"partitionCommit"`
	// TimestampUnit is micros (default) or millis: TIMESTAMP(MICROS|MILLIS,
	// isAdjustedToUTC=true).
	TimestampUnit string `yaml:"timestampUnit"`
}

// ParquetPartitionCommit configures partition commits of a Parquet sink.
type ParquetPartitionCommit struct {
	// Enabled defaults to true when the block is present.
	Enabled *bool `yaml:"enabled"`
	// AllowedLateness delays the commit past the partition's end.
	AllowedLateness Duration `yaml:"allowedLateness"`
}

// JSONFileConfig writes JSON lines to a file.
type JSONFileConfig struct {
	Path string `yaml:"path"`
}

// CheckpointConfig configures checkpoints and where they are stored.
type CheckpointConfig struct {
	// Enabled (default true) turns checkpoints on. With enabled: false
	// nothing is saved: a restart starts over with empty state, Kafka
	// offsets are committed as records are handed out, and no output
	// is exactly-once; streamd says so at startup.
	Enabled *bool `yaml:"enabled"`
	// Interval between checkpoints, e.g. 10s; 0 only takes savepoints.
	Interval Duration `yaml:"interval"`
	// Timeout fails a checkpoint that takes longer; default 2m.
	Timeout Duration `yaml:"timeout"`
	// Retain is the number of completed checkpoints kept; default 3.
	Retain int `yaml:"retain"`
	// SavepointOnStop (default true) takes a savepoint at SIGTERM and
	// resumes from it, instead of firing open windows.
	SavepointOnStop *bool `yaml:"savepointOnStop"`
	// Dir stores checkpoints in a local directory (durable writes with
	// fsync and atomic renames), or in S3 with s3://bucket/prefix
	// (manifests created with conditional puts); default
	// DefaultCheckpointDir, relative to the working directory.
	Dir string `yaml:"dir"`
	// S3 configures the S3 client for an s3:// Dir.
	S3 *s3store.Config `yaml:"s3"`
	// Prefix is the pipeline's key prefix in the store; default
	// "pipelines/<name>".
	Prefix string `yaml:"prefix"`
}

// enabled reports whether the block turns checkpoints on.
func (cc *CheckpointConfig) enabled() bool {
	return cc != nil && (cc.Enabled == nil || *cc.Enabled)
}

// Checkpoints reports whether the pipeline takes checkpoints (after
// ApplyDefaults: a pipeline file without a checkpoint block gets one).
func (c *Config) Checkpoints() bool { return c.Checkpoint.enabled() }

// DefaultCheckpoints reports whether ApplyDefaults added the checkpoint
// block, so the pipeline checkpoints to DefaultCheckpointDir.
func (c *Config) DefaultCheckpoints() bool { return c.defaultCheckpoint }

// readsStdin reports whether a source reads standard input.
func (c *Config) readsStdin() bool {
	for _, s := range c.Sources {
		if s.Type == sourceTypeStdin {
			return true
		}
	}
	return false
}

// HasRuleStages reports whether a stage is a live rule stage.
func (c *Config) HasRuleStages() bool {
	for _, s := range c.Stages {
		if s.Rules != nil {
			return true
		}
	}
	return false
}
