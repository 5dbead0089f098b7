package awsconf

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/streamd/streamd/internal/fielderr"
	"github.com/streamd/streamd/internal/redact"
)

// Config is the connection block every AWS connector shares (the S3
// store and Parquet sink, the Kinesis source and sink), written inline in
// their YAML blocks: region, endpoint, profile and static keys. The zero
// value uses the standard chain for everything.
type Config struct {
	// Region overrides the region from the environment and shared config
	// (AWS_REGION, profile).
	Region string `yaml:"region"`
	// Endpoint overrides the service endpoint, for local servers and
	// compatible services ("http://127.0.0.1:4567").
	Endpoint string `yaml:"endpoint"`
	// Profile selects a shared-config profile instead of AWS_PROFILE.
	Profile string `yaml:"profile"`
	// AccessKey and SecretKey are static credentials; when empty the
	// standard credential chain is used (environment, shared config, web
	// identity, container and instance roles). They are never logged.
	AccessKey string `yaml:"accessKey"`
	SecretKey string `yaml:"secretKey"`
	// Credentials replaces the standard credential chain when set, for
	// tests and for embedding programs that manage credentials themselves.
	Credentials aws.CredentialsProvider `yaml:"-"`
	// HTTPClient replaces the SDK's HTTP client when set, for tests that
	// inject faults at the transport; AWS_CA_BUNDLE does not apply to it.
	HTTPClient aws.HTTPClient `yaml:"-"`
}

// Validate reports every invalid setting, each as a *fielderr.Error naming
// its yaml path ("endpoint"): an endpoint that is not an absolute URL, and
// one static key without the other.
func (c Config) Validate() error {
	var errs []error
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil {
			errs = append(errs, fielderr.Errorf("endpoint", "parse %s: %v", redact.URL(c.Endpoint), errors.Unwrap(err)))
		} else if u.Scheme == "" || u.Host == "" {
			errs = append(errs, fielderr.Errorf("endpoint", "%s: want an absolute URL such as http://127.0.0.1:4567", redact.URL(c.Endpoint)))
		}
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		errs = append(errs, fielderr.Errorf("accessKey", "accessKey and secretKey must be set together"))
	}
	return errors.Join(errs...)
}

// credentials is the provider Load uses: Credentials, else the static
// keys, else nil (the standard chain).
func (c Config) credentials() aws.CredentialsProvider {
	if c.Credentials != nil {
		return c.Credentials
	}
	if c.AccessKey != "" {
		return credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, "")
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
	if p := c.credentials(); p != nil {
		opts = append(opts, config.WithCredentialsProvider(p))
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
