package s3

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/streamd/streamd/internal/awsconf"
)

// Config selects the bucket, prefix and client settings of an S3 store.
type Config struct {
	// Name labels the store's metrics; defaults to "s3".
	Name string `yaml:"name"`
	// Bucket is the bucket name.
	Bucket string `yaml:"bucket"`
	// Prefix is prepended to every key ("checkpoints/pipeline-a"); a
	// trailing slash is added when missing.
	Prefix string `yaml:"prefix"`
	// The connection: region (empty uses AWS_REGION and the shared config,
	// or us-east-1 when an endpoint is set), endpoint for compatible
	// servers ("http://127.0.0.1:9000"), profile and static keys.
	awsconf.Config `yaml:",inline"`
	// PathStyle addresses the bucket in the path (endpoint/bucket/key)
	// instead of the host name, as MinIO and most compatible servers need.
	PathStyle bool `yaml:"pathStyle"`
	// MaxAttempts bounds the attempts of one request, the first included;
	// 0 means the default.
	MaxAttempts int `yaml:"maxAttempts"`
	// MaxBackoff caps the jittered wait between attempts.
	MaxBackoff time.Duration `yaml:"maxBackoff"`
	// RetryFor, when positive, retries a request that fails with a
	// retryable error (503 SlowDown, 500, throttling, timeouts, lost
	// connections) until it has made MaxAttempts attempts and has been
	// failing this long, however many attempts that takes: an outage of
	// the endpoint shorter than this delays the caller, a longer one fails
	// it with an error wrapping store.ErrRetryLimit. 0 counts attempts
	// only. Parquet sinks default to parquet.DefaultS3RetryFor.
	RetryFor time.Duration `yaml:"retryFor"`
	// ResponseTimeout bounds the wait for the response headers of one
	// attempt after its request was sent, so a server that accepts and
	// never answers cannot hang a checkpoint.
	ResponseTimeout time.Duration `yaml:"responseTimeout"`
}

// DefaultConfig returns the defaults: 5 attempts, backoff up to 5 s, 60 s
// response timeout.
func DefaultConfig() Config {
	return Config{
		Name:            "s3",
		MaxAttempts:     5,
		MaxBackoff:      5 * time.Second,
		ResponseTimeout: time.Minute,
	}
}

// Validate reports the first problem with the configuration, naming the field.
func (c *Config) Validate() error {
	if c.Bucket == "" {
		return errors.New("s3: bucket is empty")
	}
	if strings.HasPrefix(c.Prefix, "/") {
		return fmt.Errorf("s3: prefix %q must not start with /", c.Prefix)
	}
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	if c.MaxAttempts < 0 {
		return fmt.Errorf("s3: maxAttempts must not be negative, got %d", c.MaxAttempts)
	}
	if c.MaxBackoff < 0 {
		return fmt.Errorf("s3: maxBackoff must not be negative, got %s", c.MaxBackoff)
	}
	if c.RetryFor < 0 {
		return fmt.Errorf("s3: retryFor must not be negative, got %s", c.RetryFor)
	}
	if c.ResponseTimeout < 0 {
		return fmt.Errorf("s3: responseTimeout must not be negative, got %s", c.ResponseTimeout)
	}
	return nil
}

// withDefaults fills the zero settings of a configuration written without
// DefaultConfig, such as a bare s3 block in a pipeline file.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Name == "" {
		c.Name = d.Name
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = d.MaxBackoff
	}
	if c.ResponseTimeout == 0 {
		c.ResponseTimeout = d.ResponseTimeout
	}
	return c
}

// ParseURL splits "s3://bucket/prefix" into bucket and prefix.
func ParseURL(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("parse s3 url %q: want s3://bucket/prefix", s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("parse s3 url %q: bucket is empty", s)
	}
	return bucket, strings.Trim(prefix, "/"), nil
}
