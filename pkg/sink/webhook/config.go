package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	redacturl "github.com/streamd/streamd/internal/redact"
)

// Config configures a webhook sink.
type Config struct {
	// Name labels the sink's metrics and log lines.
	Name string `yaml:"name"`
	// URL receives the POST requests.
	URL string `yaml:"url"`
	// Headers are added to every request, e.g. Authorization. Their values
	// are never logged.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one request, response included.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts bounds the attempts of one request, the first included.
	MaxAttempts int `yaml:"maxAttempts"`
	// InitialBackoff and MaxBackoff shape the jittered exponential wait
	// between attempts.
	InitialBackoff time.Duration `yaml:"initialBackoff"`
	MaxBackoff     time.Duration `yaml:"maxBackoff"`
	// MaxRetryAfter caps how long a Retry-After header may make the sink wait.
	MaxRetryAfter time.Duration `yaml:"maxRetryAfter"`
	// MaxRows is the most rows in one request; a larger batch is split.
	MaxRows int `yaml:"maxRows"`
}

// DefaultConfig returns the defaults: 10 s timeout, 8 attempts, backoff from
// 200 ms to 30 s, Retry-After honoured up to 1 min, 500 rows per request.
func DefaultConfig() Config {
	return Config{
		Name:           "webhook",
		Timeout:        10 * time.Second,
		MaxAttempts:    8,
		InitialBackoff: 200 * time.Millisecond,
		MaxBackoff:     30 * time.Second,
		MaxRetryAfter:  time.Minute,
		MaxRows:        500,
	}
}

// Validate reports the first problem with the configuration, naming the field.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("webhook sink: name is empty")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook sink: url %q is not an absolute http or https URL", redact(c.URL))
	}
	for k := range c.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			return fmt.Errorf("webhook sink: headers: invalid header name %q", k)
		}
		if http.CanonicalHeaderKey(k) == "Content-Type" || http.CanonicalHeaderKey(k) == "Idempotency-Key" {
			return fmt.Errorf("webhook sink: headers: %s is set by the sink", k)
		}
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("webhook sink: timeout must be positive, got %s", c.Timeout)
	}
	if c.MaxAttempts < 1 {
		return fmt.Errorf("webhook sink: maxAttempts must be at least 1, got %d", c.MaxAttempts)
	}
	if c.InitialBackoff <= 0 {
		return fmt.Errorf("webhook sink: initialBackoff must be positive, got %s", c.InitialBackoff)
	}
	if c.MaxBackoff < c.InitialBackoff {
		return fmt.Errorf("webhook sink: maxBackoff %s is below initialBackoff %s", c.MaxBackoff, c.InitialBackoff)
	}
	if c.MaxRetryAfter < 0 {
		return fmt.Errorf("webhook sink: maxRetryAfter must not be negative, got %s", c.MaxRetryAfter)
	}
	if c.MaxRows < 1 {
		return fmt.Errorf("webhook sink: maxRows must be at least 1, got %d", c.MaxRows)
	}
	return nil
}

// redact renders a URL for logs and errors without its secrets: user
// info, query and path (Slack-style webhook URLs carry their secret in it).
func redact(raw string) string { return redacturl.URL(raw) }
