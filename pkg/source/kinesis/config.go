package kinesis

import (
	"errors"
	"time"

	"github.com/streamd/streamd/internal/awsconf"
	"github.com/streamd/streamd/internal/fielderr"
)

// StartPosition is where a shard is read from when there is no checkpoint.
type StartPosition string

// Start positions, named as in the Kinesis API.
const (
	// TrimHorizon starts at the oldest record still retained.
	TrimHorizon StartPosition = "TRIM_HORIZON"
	// Latest starts after the newest record. Shards created by resharding
	// while the source runs are still read from their start, so no record
	// is skipped.
	Latest StartPosition = "LATEST"
	// AtTimestamp starts at the first record that arrived at or after
	// Config.Timestamp.
	AtTimestamp StartPosition = "AT_TIMESTAMP"
)

const (
	defaultPollInterval      = 200 * time.Millisecond
	defaultLimit             = 10000
	defaultShardSyncInterval = 10 * time.Second
	maxLimit                 = 10000
)

// Config configures a Kinesis source.
type Config struct {
	// Stream is the stream name; either Stream or StreamARN is required.
	Stream string `yaml:"stream"`
	// StreamARN identifies the stream by ARN instead of name.
	StreamARN string `yaml:"streamARN"`
	// The connection: region, endpoint (for local servers), profile and
	// static keys; the standard chain where they are empty.
	awsconf.Config `yaml:",inline"`
	// StartPosition applies to shards without a checkpoint; default
	// TRIM_HORIZON.
	StartPosition StartPosition `yaml:"startPosition"`
	// Timestamp is where AT_TIMESTAMP starts.
	Timestamp time.Time `yaml:"timestamp"`
	// PollInterval is the least time between two GetRecords calls on one
	// shard. Kinesis allows 5 calls per second per shard, shared by every
	// consumer; default 200ms.
	PollInterval time.Duration `yaml:"pollInterval"`
	// Limit is the most records one GetRecords call returns (1 to 10000,
	// default 10000).
	Limit int32 `yaml:"limit"`
	// ShardSyncInterval is how often the shard list is read again to find
	// shards created by resharding; default 10s. A shard read to its end
	// triggers a sync at once.
	ShardSyncInterval time.Duration `yaml:"shardSyncInterval"`
}

// DefaultConfig returns a configuration with every default filled in; the
// stream is still to be set.
func DefaultConfig() Config {
	return Config{
		StartPosition:     TrimHorizon,
		PollInterval:      defaultPollInterval,
		Limit:             defaultLimit,
		ShardSyncInterval: defaultShardSyncInterval,
	}
}

// withDefaults fills zero fields with their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.StartPosition == "" {
		c.StartPosition = d.StartPosition
	}
	if c.PollInterval == 0 {
		c.PollInterval = d.PollInterval
	}
	if c.Limit == 0 {
		c.Limit = d.Limit
	}
	if c.ShardSyncInterval == 0 {
		c.ShardSyncInterval = d.ShardSyncInterval
	}
	return c
}

// StartPositions lists the accepted start positions.
var StartPositions = []string{string(TrimHorizon), string(Latest), string(AtTimestamp)}

// Validate checks the configuration and reports every problem, each as a
// *fielderr.Error naming its yaml path; zero fields count as their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, fielderr.Errorf(path, format, args...)) }
	if c.Stream == "" && c.StreamARN == "" {
		add("stream", "required (or streamARN)")
	}
	switch c.StartPosition {
	case TrimHorizon, Latest:
		if !c.Timestamp.IsZero() {
			add("timestamp", "only applies to startPosition AT_TIMESTAMP")
		}
	case AtTimestamp:
		if c.Timestamp.IsZero() {
			add("timestamp", "required when startPosition is AT_TIMESTAMP")
		}
	default:
		add("startPosition", "%s", fielderr.Unknown("start position", string(c.StartPosition), StartPositions))
	}
	if c.PollInterval < 0 {
		add("pollInterval", "%s must not be negative", c.PollInterval)
	}
	if c.Limit < 1 || c.Limit > maxLimit {
		add("limit", "%d must be between 1 and %d", c.Limit, maxLimit)
	}
	if c.ShardSyncInterval < 0 {
		add("shardSyncInterval", "%s must not be negative", c.ShardSyncInterval)
	}
	errs = append(errs, c.Config.Validate())
	return errors.Join(errs...)
}

// streamName is how the stream appears in errors, logs and metric labels.
func (c Config) streamName() string {
	if c.Stream != "" {
		return c.Stream
	}
	return c.StreamARN
}
