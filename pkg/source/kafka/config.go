package kafka

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

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
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string `yaml:"brokers"`
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
	// ClientID names this client in broker logs and quotas; default streamd.
	ClientID string               `yaml:"clientID"`
	TLS      kafkaconn.TLSConfig  `yaml:"tls"`
	SASL     kafkaconn.SASLConfig `yaml:"sasl"`
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
		ClientID:          "streamd",
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
	if c.ClientID == "" {
		c.ClientID = d.ClientID
	}
	return c
}

// Validate reports the first invalid field, named by its yaml path. Zero
// durations and sizes are valid: they take the defaults.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("brokers: at least one broker is required")
	}
	for i, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			return fmt.Errorf("brokers[%d]: %q must be host:port", i, b)
		}
	}
	if len(c.Topics) == 0 {
		return errors.New("topics: at least one topic is required")
	}
	for i, t := range c.Topics {
		if t == "" || strings.Contains(t, "/") {
			return fmt.Errorf("topics[%d]: %q is not a valid topic name", i, t)
		}
	}
	switch c.StartOffset {
	case "", StartEarliest, StartLatest:
	case StartOffsets:
		if len(c.Offsets) == 0 {
			return errors.New("offsets: required with startOffset offsets")
		}
		for k, v := range c.Offsets {
			if _, _, err := ParseSplitID(k); err != nil {
				return fmt.Errorf("offsets: key %q must be topic/partition", k)
			}
			if v < 0 {
				return fmt.Errorf("offsets[%s]: offset %d must be >= 0", k, v)
			}
		}
	default:
		if _, err := time.Parse(time.RFC3339, c.StartOffset); err != nil {
			return fmt.Errorf("startOffset: %q must be earliest, latest, offsets or an RFC 3339 timestamp", c.StartOffset)
		}
	}
	if c.StartOffset != StartOffsets && len(c.Offsets) > 0 {
		return errors.New("offsets: only used with startOffset offsets")
	}
	for name, d := range map[string]time.Duration{"maxWait": c.MaxWait, "sessionTimeout": c.SessionTimeout, "heartbeatInterval": c.HeartbeatInterval, "commitInterval": c.CommitInterval} {
		if d < 0 {
			return fmt.Errorf("%s: %s must be >= 0", name, d)
		}
	}
	if c.MinBytes < 0 || c.MaxBytes < 0 || (c.MaxBytes > 0 && c.MinBytes > c.MaxBytes) {
		return fmt.Errorf("minBytes/maxBytes: %d/%d must be >= 0 with minBytes <= maxBytes", c.MinBytes, c.MaxBytes)
	}
	if err := c.TLS.Validate("tls"); err != nil {
		return err
	}
	return c.SASL.Validate("sasl")
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
