package kafkaconn

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTLSBuild(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	tests := []struct {
		name    string
		cfg     TLSConfig
		wantNil bool
		wantErr string
	}{
		{name: "off", cfg: TLSConfig{}, wantNil: true},
		{name: "system roots", cfg: TLSConfig{Enabled: true, ServerName: "kafka.internal"}},
		{name: "missing ca file", cfg: TLSConfig{CAFile: filepath.Join(dir, "nope.pem")}, wantErr: "read tls.caFile"},
		{name: "ca file without PEM", cfg: TLSConfig{CAFile: notPEM}, wantErr: "holds no PEM certificate"},
		{name: "cert without key", cfg: TLSConfig{CertFile: notPEM}, wantErr: "tls.certFile and tls.keyFile must be set together"},
		{name: "bad key pair", cfg: TLSConfig{CertFile: notPEM, KeyFile: notPEM}, wantErr: "load tls.certFile/tls.keyFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.Build()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantNil, c == nil)
			if c != nil {
				require.Equal(t, tt.cfg.ServerName, c.ServerName)
			}
		})
	}
}

func TestSASLBuildAndRedaction(t *testing.T) {
	tests := []struct {
		cfg      SASLConfig
		wantName string
		wantErr  string
	}{
		{cfg: SASLConfig{}, wantName: ""},
		{cfg: SASLConfig{Mechanism: "plain", Username: "u", Password: "secret"}, wantName: "PLAIN"},
		{cfg: SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "u", Password: "secret"}, wantName: "SCRAM-SHA-256"},
		{cfg: SASLConfig{Mechanism: "scram-sha-512", Username: "u", Password: "secret"}, wantName: "SCRAM-SHA-512"},
		{cfg: SASLConfig{Mechanism: "oauthbearer", Username: "u"}, wantErr: "sasl.mechanism"},
		{cfg: SASLConfig{Mechanism: "plain"}, wantErr: "sasl.username"},
	}
	for _, tt := range tests {
		t.Run(tt.cfg.Mechanism, func(t *testing.T) {
			for _, s := range []string{tt.cfg.String(), fmt.Sprintf("%v %+v %#v", tt.cfg, tt.cfg, tt.cfg)} {
				if tt.cfg.Password != "" {
					require.NotContains(t, s, tt.cfg.Password)
				}
			}
			m, err := tt.cfg.Build()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.wantName == "" {
				require.Nil(t, m)
				return
			}
			require.Equal(t, tt.wantName, m.Name())
		})
	}
}
