package kafka

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streamd/streamd/internal/fielderr"
	"github.com/streamd/streamd/internal/kafkaconn"
)

// StartOffset values other than an RFC 3339 timestamp.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
	StartOffsets  = "offsets"
)

// Config configures a Kafka source.
type Config struct {
	// The connection: brokers, client id, TLS and SASL.
	kafkaconn.Client `yaml:",inline"`
	// Topics are read in full (all partitions).
	Topics []string `yaml:"topics"`
	// Group is the consumer group; empty reads every partition here
	// without a group.
	Group string `yaml:"group"`
	// StartOffset is where a partition without a committed offset starts:
	// earliest (default), latest, an RFC 3339 timestamp (the first message
	// at or after it), or offsets (Offsets, earliest for partitions not
	// listed).
	StartOffset string `yaml:"startOffset"`
	// Offsets maps "topic/partition" to the first offset to read, with
	// StartOffset offsets.
	Offsets map[string]int64 `yaml:"offsets"`
	// MaxWait is the longest a fetch waits for data, and how long Read keeps
	// gathering messages after the first; default 100ms.
	MaxWait time.Duration `yaml:"maxWait"`
	// SessionTimeout is the group session timeout; default 10s. Brokers
	// usually refuse less than 6s.
	SessionTimeout time.Duration `yaml:"sessionTimeout"`
	// HeartbeatInterval is how often the group coordinator is contacted,
	// which bounds how fast a rebalance is noticed; default 3s.
	HeartbeatInterval time.Duration `yaml:"heartbeatInterval"`
	// MinBytes and MaxBytes bound one fetch response; defaults 1 and 10MiB.
	MinBytes int `yaml:"minBytes"`
	MaxBytes int `yaml:"maxBytes"`
	// CommitInterval is how often handed-out offsets are committed to the
	// group; default 5s.
	CommitInterval time.Duration `yaml:"commitInterval"`
	// DisableAutoCommit leaves committing to Source.Commit alone.
	DisableAutoCommit bool `yaml:"disableAutoCommit"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		StartOffset:       StartEarliest,
		MaxWait:           100 * time.Millisecond,
		SessionTimeout:    10 * time.Second,
		HeartbeatInterval: 3 * time.Second,
		MinBytes:          1,
		MaxBytes:          10 << 20,
		CommitInterval:    5 * time.Second,
		Client:            kafkaconn.Client{ClientID: kafkaconn.DefaultClientID},
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.StartOffset == "" {
		c.StartOffset = d.StartOffset
	}
	if c.MaxWait == 0 {
		c.MaxWait = d.MaxWait
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = d.SessionTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.MinBytes == 0 {
		c.MinBytes = d.MinBytes
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = d.CommitInterval
	}
	c.Client = c.WithDefaults()
	return c
}

// Validate reports every invalid setting, each as a *fielderr.Error
// naming its yaml path within the block ("sasl.mechanism"). Zero durations
// and sizes are valid: they take the defaults.
func (c Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, fielderr.Errorf(path, format, args...)) }
	brokers, security := c.Client.Validate()
	errs = append(errs, brokers)
	if len(c.Topics) == 0 {
		add("topics", "at least one topic is required")
	}
	for i, t := range c.Topics {
		if t == "" || strings.Contains(t, "/") {
			add(fmt.Sprintf("topics[%d]", i), "%q is not a valid topic name", t)
		}
	}
	switch c.StartOffset {
	case "", StartEarliest, StartLatest:
	case StartOffsets:
		if len(c.Offsets) == 0 {
			add("offsets", "required with startOffset offsets")
		}
		keys := make([]string, 0, len(c.Offsets))
		for k := range c.Offsets {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if _, _, err := ParseSplitID(k); err != nil {
				add("offsets", "key %q must be topic/partition", k)
			}
			if v := c.Offsets[k]; v < 0 {
				add("offsets."+k, "offset %d must be >= 0", v)
			}
		}
	default:
		if _, err := time.Parse(time.RFC3339, c.StartOffset); err != nil {
			starts := []string{StartEarliest, StartLatest, StartOffsets}
			if s := fielderr.Suggest(c.StartOffset, starts); s != "" {
				add("startOffset", "%q is not earliest, latest, offsets or an RFC 3339 timestamp (did you mean %q?)", c.StartOffset, s)
			} else {
				add("startOffset", "%q is not earliest, latest, offsets or an RFC 3339 timestamp (e.g. 2026-01-02T15:04:05Z)", c.StartOffset)
			}
		}
	}
	if c.StartOffset != StartOffsets && len(c.Offsets) > 0 {
		add("offsets", "only used with startOffset offsets")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"maxWait", c.MaxWait}, {"sessionTimeout", c.SessionTimeout}, {"heartbeatInterval", c.HeartbeatInterval}, {"commitInterval", c.CommitInterval}} {
		if d.v < 0 {
			add(d.name, "%s must be >= 0", d.v)
		}
	}
	if c.MinBytes < 0 {
		add("minBytes", "%d must be >= 0", c.MinBytes)
	}
	if c.MaxBytes < 0 {
		add("maxBytes", "%d must be >= 0", c.MaxBytes)
	}
	if c.MaxBytes > 0 && c.MinBytes > c.MaxBytes {
		add("minBytes", "%d must be <= maxBytes (%d)", c.MinBytes, c.MaxBytes)
	}
	return errors.Join(append(errs, security)...)
}

// SplitID is the split ID of a partition: "topic/partition".
func SplitID(topic string, partition int) string {
	return topic + "/" + strconv.Itoa(partition)
}

// ParseSplitID splits "topic/partition".
func ParseSplitID(id string) (topic string, partition int, err error) {
	i := strings.LastIndexByte(id, '/')
	if i <= 0 {
		return "", 0, fmt.Errorf("parse split %q: want topic/partition", id)
	}
	p, err := strconv.Atoi(id[i+1:])
	if err != nil || p < 0 {
		return "", 0, fmt.Errorf("parse split %q: partition must be a non-negative integer", id)
	}
	return id[:i], p, nil
}
