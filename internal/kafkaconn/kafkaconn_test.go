package kafkaconn

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/fielderr"
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
		{name: "missing ca file", cfg: TLSConfig{Enabled: true, CAFile: filepath.Join(dir, "nope.pem")}, wantErr: "read tls.caFile"},
		{name: "ca file without PEM", cfg: TLSConfig{Enabled: true, CAFile: notPEM}, wantErr: "holds no PEM certificate"},
		{name: "cert without key", cfg: TLSConfig{Enabled: true, CertFile: notPEM}, wantErr: "tls.certFile: certFile and keyFile must be set together"},
		{name: "bad key pair", cfg: TLSConfig{Enabled: true, CertFile: notPEM, KeyFile: notPEM}, wantErr: "load tls.certFile/tls.keyFile"},
		// A TLS setting without enabled is refused, never a plaintext connection.
		{name: "ca file without enabled", cfg: TLSConfig{CAFile: notPEM}, wantErr: "tls.caFile: is set but enabled is not true"},
		{name: "insecureSkipVerify without enabled", cfg: TLSConfig{InsecureSkipVerify: true}, wantErr: "tls.insecureSkipVerify: is set but enabled is not true"},
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
		{cfg: SASLConfig{Mechanism: "oauthbearer", Username: "u"}, wantErr: `sasl.mechanism: unknown mechanism "oauthbearer" (want plain, scram-sha-256, scram-sha-512)`},
		{cfg: SASLConfig{Mechanism: "plian", Username: "u"}, wantErr: `(did you mean "plain"?`},
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

// TestValidateSecurity pins the downgrade rules: a TLS setting without
// enabled is an error, and SASL without TLS needs allowPlaintext. New
// refuses the same configurations, so no caller connects in plaintext.
func TestValidateSecurity(t *testing.T) {
	plain := SASLConfig{Mechanism: "plain", Username: "u", Password: "hunter2"}
	allowed := plain
	allowed.AllowPlaintext = true
	tests := []struct {
		name      string
		tls       TLSConfig
		sasl      SASLConfig
		want      []string // problems, in order; empty means valid
		plaintext bool
	}{
		{name: "nothing"},
		{name: "tls", tls: TLSConfig{Enabled: true, InsecureSkipVerify: true, ServerName: "k"}},
		{name: "insecureSkipVerify alone", tls: TLSConfig{InsecureSkipVerify: true},
			want: []string{"kafka.tls.insecureSkipVerify: is set but enabled is not true"}},
		{name: "every tls setting without enabled", tls: TLSConfig{CAFile: "a", CertFile: "b", KeyFile: "c", ServerName: "d"},
			want: []string{"kafka.tls.caFile: is set", "kafka.tls.certFile: is set", "kafka.tls.keyFile: is set", "kafka.tls.serverName: is set"}},
		{name: "sasl plain without tls", sasl: plain,
			want: []string{"kafka.sasl.mechanism: plain without TLS sends the credentials in plaintext"}},
		{name: "sasl scram without tls", sasl: SASLConfig{Mechanism: "scram-sha-256", Username: "u"},
			want: []string{"kafka.sasl.mechanism: scram-sha-256 without TLS"}},
		{name: "sasl plaintext allowed", sasl: allowed, plaintext: true},
		{name: "sasl over tls", tls: TLSConfig{Enabled: true}, sasl: plain},
		{name: "allowPlaintext with tls", tls: TLSConfig{Enabled: true}, sasl: allowed,
			want: []string{"kafka.sasl.allowPlaintext: only applies without TLS"}},
		{name: "credentials without mechanism", sasl: SASLConfig{Username: "u"},
			want: []string{"kafka.sasl.mechanism: required when username"}},
		{name: "bogus mechanism", tls: TLSConfig{Enabled: true}, sasl: SASLConfig{Mechanism: "bogus", Username: "u"},
			want: []string{`kafka.sasl.mechanism: unknown mechanism "bogus"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSecurity("kafka", tt.tls, tt.sasl)
			got := fielderr.Flatten(err)
			require.Len(t, got, len(tt.want), "%v", err)
			for i, w := range tt.want {
				var fe *fielderr.Error
				require.ErrorAs(t, got[i], &fe)
				require.True(t, strings.HasPrefix(got[i].Error(), w), "got %q, want %q...", got[i], w)
				if tt.sasl.Password != "" {
					require.NotContains(t, got[i].Error(), tt.sasl.Password)
				}
			}
			require.Equal(t, tt.plaintext, Plaintext(tt.tls, tt.sasl) && err == nil)
			_, nerr := New([]string{"127.0.0.1:1"}, "c", tt.tls, tt.sasl)
			require.Equal(t, err == nil, nerr == nil, "New and ValidateSecurity must agree: %v", nerr)
		})
	}
}
