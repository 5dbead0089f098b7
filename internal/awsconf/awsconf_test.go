package awsconf

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/streamd/streamd/internal/fielderr"
)

// The block is written inline in each AWS connector's settings: the keys
// decode into it, and static keys become the credentials Load resolves.
func TestBlockDecodesInlineAndLoadsStaticKeys(t *testing.T) {
	var c struct {
		Stream string `yaml:"stream"`
		Config `yaml:",inline"`
	}
	require.NoError(t, yaml.Unmarshal([]byte("stream: s\nregion: eu-west-1\nendpoint: http://127.0.0.1:4567\naccessKey: AK\nsecretKey: SK\n"), &c))
	require.Equal(t, Config{Region: "eu-west-1", Endpoint: "http://127.0.0.1:4567", AccessKey: "AK", SecretKey: "SK"}, c.Config)
	cfg, err := Load(context.Background(), c.Config)
	require.NoError(t, err)
	creds, err := cfg.Credentials.Retrieve(context.Background())
	require.NoError(t, err)
	require.Equal(t, "AK", creds.AccessKeyID)
	require.Equal(t, "SK", creds.SecretAccessKey)
	require.Equal(t, "eu-west-1", cfg.Region)
}

// Every problem is reported at its setting.
func TestValidateNamesEachSetting(t *testing.T) {
	err := Config{Endpoint: "127.0.0.1:4567", AccessKey: "AK"}.Validate()
	var paths []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *fielderr.Error
		require.ErrorAs(t, e, &fe)
		paths = append(paths, fe.Path)
	}
	require.Equal(t, []string{"endpoint", "accessKey"}, paths)
	require.NoError(t, Config{Endpoint: "http://127.0.0.1:4567", AccessKey: "AK", SecretKey: "SK"}.Validate())
}
