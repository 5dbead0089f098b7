package kafka

import (
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/streamd/streamd/internal/fielderr"
	"github.com/streamd/streamd/internal/kafkaconn"
)

func TestConfigValidate(t *testing.T) {
	valid := func(mod func(*Config)) Config {
		c := DefaultConfig()
		c.Brokers, c.Topics = []string{"127.0.0.1:9092"}, []string{"logs"}
		mod(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "defaults", cfg: valid(func(*Config) {})},
		{name: "timestamp", cfg: valid(func(c *Config) { c.StartOffset = "2026-01-02T03:04:05Z" })},
		{name: "offsets", cfg: valid(func(c *Config) { c.StartOffset, c.Offsets = StartOffsets, map[string]int64{"logs/0": 5} })},
		{name: "no brokers", cfg: valid(func(c *Config) { c.Brokers = nil }), want: "brokers:"},
		{name: "broker without port", cfg: valid(func(c *Config) { c.Brokers = []string{"kafka"} }), want: "brokers[0]:"},
		{name: "no topics", cfg: valid(func(c *Config) { c.Topics = nil }), want: "topics:"},
		{name: "bad start", cfg: valid(func(c *Config) { c.StartOffset = "yesterday" }), want: "startOffset:"},
		{name: "offsets missing", cfg: valid(func(c *Config) { c.StartOffset = StartOffsets }), want: "offsets: required"},
		{name: "offsets bad key", cfg: valid(func(c *Config) { c.StartOffset, c.Offsets = StartOffsets, map[string]int64{"logs": 5} }), want: "offsets: key"},
		{name: "offsets without mode", cfg: valid(func(c *Config) { c.Offsets = map[string]int64{"logs/0": 5} }), want: "offsets: only"},
		{name: "negative wait", cfg: valid(func(c *Config) { c.MaxWait = -1 }), want: "maxWait:"},
		{name: "min over max", cfg: valid(func(c *Config) { c.MinBytes, c.MaxBytes = 10, 5 }), want: "minBytes: 10 must be <= maxBytes (5)"},
		{name: "cert without key", cfg: valid(func(c *Config) { c.TLS.Enabled, c.TLS.CertFile = true, "c.pem" }), want: "tls.certFile: certFile and keyFile"},
		{name: "bad sasl", cfg: valid(func(c *Config) { c.SASL = kafkaconn.SASLConfig{Mechanism: "gssapi", Username: "u"} }), want: "sasl.mechanism"},
		{name: "sasl without user", cfg: valid(func(c *Config) { c.SASL = kafkaconn.SASLConfig{Mechanism: "plain", AllowPlaintext: true} }), want: "sasl.username"},
		{name: "misspelt start", cfg: valid(func(c *Config) { c.StartOffset = "earlest" }), want: `startOffset: "earlest" is not earliest, latest, offsets or an RFC 3339 timestamp (did you mean "earliest"?)`},
		{name: "tls setting without enabled", cfg: valid(func(c *Config) { c.TLS.InsecureSkipVerify = true }), want: "tls.insecureSkipVerify: is set but enabled is not true"},
		{name: "sasl without tls", cfg: valid(func(c *Config) { c.SASL = kafkaconn.SASLConfig{Mechanism: "plain", Username: "u"} }), want: "sasl.mechanism: plain without TLS"},
		{name: "sasl plaintext allowed", cfg: valid(func(c *Config) {
			c.SASL = kafkaconn.SASLConfig{Mechanism: "plain", Username: "u", AllowPlaintext: true}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// TestConfigValidateReportsEverything: every problem at once, so one
// validate run fixes a file.
func TestConfigValidateReportsEverything(t *testing.T) {
	c := Config{StartOffset: "earlest", MaxWait: -1, Client: kafkaconn.Client{Brokers: []string{"kafka"},
		TLS: kafkaconn.TLSConfig{CAFile: "ca.pem"}, SASL: kafkaconn.SASLConfig{Mechanism: "bogus"}}}
	var got []string
	for _, err := range fielderr.Flatten(c.Validate()) {
		var fe *fielderr.Error
		require.ErrorAs(t, err, &fe)
		got = append(got, fe.Path)
	}
	require.Equal(t, []string{"brokers[0]", "topics", "startOffset", "maxWait", "tls.caFile", "sasl.mechanism"}, got)
}

func TestConfigYAML(t *testing.T) {
	cfg := DefaultConfig()
	require.NoError(t, yaml.Unmarshal([]byte(`
brokers: [127.0.0.1:19092]
topics: [logs]
group: streamd-logs
startOffset: earliest
maxWait: 250ms
sasl: {mechanism: scram-sha-512, username: u, password: hunter2}
tls: {enabled: true, caFile: /etc/kafka/ca.pem}
`), &cfg))
	require.NoError(t, cfg.Validate())
	require.Equal(t, "streamd-logs", cfg.Group)
	require.Equal(t, "250ms", cfg.MaxWait.String())
	require.True(t, cfg.TLS.On())
	require.NotContains(t, cfg.SASL.String(), "hunter2")
}

func FuzzParseSplitID(f *testing.F) {
	for _, s := range []string{"logs/0", "a/b/12", "/1", "logs/", "logs/-1", "logs", "x/999999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		topic, p, err := ParseSplitID(id)
		if err != nil {
			return
		}
		if topic == "" || p < 0 {
			t.Fatalf("parsed %q into %q/%d", id, topic, p)
		}
		topic2, p2, err := ParseSplitID(SplitID(topic, p))
		if err != nil || topic2 != topic || p2 != p {
			t.Fatalf("round trip of %q: %q/%d %v", id, topic2, p2, err)
		}
	})
}
