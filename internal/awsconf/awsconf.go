package awsconf

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/streamd/streamd/internal/redact"
)

// Config selects the AWS region, endpoint and credentials of one client.
// The zero value uses the standard chain for everything.
type Config struct {
	// Region overrides the region from the environment and shared config
	// (AWS_REGION, profile).
	Region string
	// Endpoint overrides the service endpoint, for local servers and
	// compatible services ("http://127.0.0.1:4567").
	Endpoint string
	// Profile selects a shared-config profile instead of AWS_PROFILE.
	Profile string
	// Credentials replaces the standard credential chain when set, for
	// tests and for embedding programs that manage credentials themselves.
	Credentials aws.CredentialsProvider
	// HTTPClient replaces the SDK's HTTP client when set, for tests that
	// inject faults at the transport; AWS_CA_BUNDLE does not apply to it.
	HTTPClient aws.HTTPClient
}

// Validate reports an endpoint that is not an absolute URL.
func (c Config) Validate() error {
	if c.Endpoint == "" {
		return nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return fmt.Errorf("parse endpoint %s: %w", redact.URL(c.Endpoint), errors.Unwrap(err))
	}
	if u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("endpoint %s: want an absolute URL such as http://127.0.0.1:4567", redact.URL(c.Endpoint))
	}
	return nil
}

// Load resolves the SDK configuration. It fails when no region can be
// found, because every AWS call would fail later with a less clear error.
func Load(ctx context.Context, c Config) (aws.Config, error) {
	if err := c.Validate(); err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	var opts []func(*config.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if c.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(c.Credentials))
	}
	if c.Endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(c.Endpoint))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	if c.HTTPClient != nil {
		// Set after loading: the loader would try to add AWS_CA_BUNDLE to
		// it, which only the SDK's own client supports. A custom client
		// brings its own TLS settings.
		cfg.HTTPClient = c.HTTPClient
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("load aws config: no region: set region in the pipeline file or AWS_REGION")
	}
	return cfg, nil
}
