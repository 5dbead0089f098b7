package operator

import (
	"errors"
	"fmt"
	"time"

	"github.com/streamd/streamd/pkg/keyed"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
	"github.com/streamd/streamd/pkg/window"
)

// Built-in stream names.
const (
	StreamDeadLetters = "deadletters"
	StreamAlerts      = "alerts"
	StreamLate        = "late"
)

// Job is a dataflow ready to run: sources with their decoding and stateless
// steps, keyed window stages, and sinks attached to named streams. Package
// pipeline builds it from a pipeline file; Go programs can build it directly.
type Job struct {
	Name string
	// Parallelism is the number of subtasks per stage (default GOMAXPROCS).
	Parallelism int
	// KeyGroups is the number of key groups (default 128).
	KeyGroups int
	// BatchSize is the maximum number of records per batch (default 1024).
	BatchSize int
	// IdleAdvance, when > 0, lets a subtask's event time follow the wall
	// clock once all its inputs have been idle that long.
	IdleAdvance time.Duration
	// TickInterval is how often idle splits, idle advance and sink ticks are
	// checked (default 200ms).
	TickInterval time.Duration
	// SinkQueue is how many batches a task may have waiting for each of its
	// sink writers (default DefaultSinkQueue); a full queue makes the task
	// wait, which slows the sources instead of growing memory.
	SinkQueue int
	// DrainTimeout bounds the sink writes of a drain after a stop or a
	// failure (default 1m): later writes fail instead of blocking the exit.
	DrainTimeout time.Duration
	// FailingGrace is how long a split's reads may fail before the
	// pipeline reports not ready (default 30s): a broker that restarts
	// briefly does not flap readiness. The split holds the watermark from
	// its first failed read regardless.
	FailingGrace time.Duration
	// StallTimeout is how long a task (a split reader or a subtask) may go
	// without turning its loop before the pipeline counts as stalled and
	// /healthz fails (default 15m; see Runtime.Stalled). It exceeds the
	// time a sink may retry an outage (s3.retryFor of Parquet sinks), so a
	// task that waits on a store or broker is never taken for a stuck one.
	StallTimeout time.Duration
	Sources      []SourceSpec
	Stages       []StageSpec
	Sinks        []SinkSpec
	// Checkpoint enables aligned checkpoints and restore.
	Checkpoint *CheckpointConfig
	// Now is the wall clock; default time.Now.
	Now func() time.Time
}

// SourceSpec is one source and what happens to its records before keyBy.
// Its output stream is named after it.
type SourceSpec struct {
	Name   string
	Source source.Source
	// NewDecoder returns a decoder for one split (decoders are not shared
	// between goroutines).
	NewDecoder func() (Decoder, error)
	Watermark  WatermarkConfig
	// NewSteps returns the stateless steps for one split, in order.
	NewSteps func() ([]Step, error)
}

// Decoder turns raw messages into rows. A failed message leaves b unchanged
// and returns an error; errors implementing Reasoner give the dead-letter reason.
type Decoder interface {
	Schema() *record.Schema
	Decode(msg []byte, brokerTS int64, b *record.Batch) error
}

// Reasoner is implemented by errors that carry a short, stable reason label
// for dead-letter metrics ("invalid_json", "missing_field", …).
type Reasoner interface {
	DeadLetterReason() string
}

// Step is a stateless transformation of batches (filter, map, flatMap).
type Step interface {
	// Schema is the schema of the rows the step emits.
	Schema() *record.Schema
	// Apply appends the rows derived from in to out (whose width is
	// len(Schema())). Rows that fail are passed to reject with their index
	// in `in`; they go to the dead-letter stream. in and out belong to the
	// runtime: a step keeps neither after Apply returns (the runtime
	// reuses in for the next read; the strings of its rows stay valid).
	Apply(in, out *record.Batch, reject func(row int, err error))
}

// StageSpec is a keyed window stage; its results form a stream named after it.
type StageSpec struct {
	Name string
	// Input is the stream read: a source or an earlier stage.
	Input string
	// KeyBy lists the key fields; empty means one global key.
	KeyBy           []string
	Assigner        window.Assigner
	AllowedLateness time.Duration
	// Emit says when window results are emitted: on time with updates
	// (the default) or once, final, after the allowed lateness.
	Emit       window.EmitMode
	Aggregates []window.Spec
	Alerts     []AlertSpec
	// NewAggregate binds aggregates to the stage's input schema.
	NewAggregate func(window.Spec, *record.Schema) (window.Aggregate, error)
	// Rules, when set, makes this a live rule stage: no window; the rule
	// engine's state changes are the stage's output.
	Rules *RulesSpec
	// NewOperator, when set, makes the stage's keyed operator instead of
	// a window (and Rules must be nil): a new operator kind needs no
	// change to the runtime. It is called once per subtask, and once more
	// at New for the result and late schemas, with the stage's input
	// schema and the key groups the subtask owns; snapshots and restores
	// go through the keyed.Operator contract like a window's. Assigner,
	// Aggregates and Emit do not apply.
	NewOperator func(input *record.Schema, keyGroups []int) (keyed.Operator, error)
	// StateTTL bounds how long, in event time, keyed state without a
	// purpose is kept: for a window stage, a key without windows (default
	// window size or gap plus allowed lateness; it changes no result); for
	// a rule stage, rules.Options.StateTTL (default a day). 0 is the
	// default.
	StateTTL time.Duration
	// StateBudget is the stage's state budget in estimated bytes, split
	// evenly over its subtasks; 0 is none. A subtask whose state holds its
	// share refuses records of keys without state: they go to the dead
	// letters with reason state_limit (see docs/windows.md).
	StateBudget int64
}

// AlertSpec is a threshold alert evaluated on every window result of a stage.
type AlertSpec struct {
	Name     string
	Severity string
	// NewCondition compiles the condition against the stage's result schema;
	// it is called once per subtask.
	NewCondition func(*record.Schema) (func(record.Row) (bool, error), error)
}

// SinkSpec attaches a sink to a stream: a source, a stage, "alerts",
// "deadletters", "late" (every stage's late records) or "<stage>.late".
type SinkSpec struct {
	Name  string
	Input string
	Sink  sink.Sink
}

// DeadLetterSchema is the schema of the dead-letter stream.
var DeadLetterSchema = record.MustSchema(
	record.Field{Name: "time", Type: record.TypeTimestamp},
	record.Field{Name: "source", Type: record.TypeString},
	record.Field{Name: "split", Type: record.TypeString},
	record.Field{Name: "position", Type: record.TypeString},
	record.Field{Name: "reason", Type: record.TypeString},
	record.Field{Name: "detail", Type: record.TypeString},
	record.Field{Name: "raw", Type: record.TypeString},
)

// AlertSchema is the schema of the alert stream.
var AlertSchema = record.MustSchema(
	record.Field{Name: "alert_id", Type: record.TypeString},
	record.Field{Name: "alert", Type: record.TypeString},
	record.Field{Name: "severity", Type: record.TypeString},
	record.Field{Name: "stage", Type: record.TypeString},
	record.Field{Name: "key", Type: record.TypeString},
	record.Field{Name: "window_start", Type: record.TypeTimestamp},
	record.Field{Name: "window_end", Type: record.TypeTimestamp},
	record.Field{Name: "revision", Type: record.TypeInt},
	record.Field{Name: "values", Type: record.TypeString},
)

func (j *Job) defaults() error {
	if j.Parallelism < 0 || j.KeyGroups < 0 || j.BatchSize < 0 {
		return errors.New("parallelism, key groups and batch size must not be negative")
	}
	if j.KeyGroups == 0 {
		j.KeyGroups = 128
	}
	if j.KeyGroups > 1<<15 {
		return fmt.Errorf("key groups: %d exceeds the maximum of 32768", j.KeyGroups)
	}
	if j.BatchSize == 0 {
		j.BatchSize = 1024
	}
	if j.TickInterval == 0 {
		j.TickInterval = 200 * time.Millisecond
	}
	if j.DrainTimeout == 0 {
		j.DrainTimeout = time.Minute
	}
	if j.FailingGrace < 0 || j.StallTimeout < 0 {
		return errors.New("failing grace and stall timeout must not be negative")
	}
	if j.FailingGrace == 0 {
		j.FailingGrace = DefaultFailingGrace
	}
	if j.StallTimeout == 0 {
		j.StallTimeout = DefaultStallTimeout
	}
	if j.Now == nil {
		j.Now = time.Now
	}
	if len(j.Sources) == 0 {
		return errors.New("a job needs at least one source")
	}
	return nil
}
