package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/streamd/streamd/internal/kafkaconn"
	"github.com/streamd/streamd/internal/testenv"
)

func TestSASL(t *testing.T) {
	c := testenv.StartKafkaCluster(t,
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "plain-user", "plain-pass"),
		kfake.Superuser("SCRAM-SHA-256", "scram-user", "scram-pass"),
		kfake.Superuser("SCRAM-SHA-512", "scram512-user", "scram512-pass"),
		kfake.SeedTopics(1, "secure"),
	)
	brokers := c.ListenAddrs()
	produce(t, brokers, []*kgo.Record{{Topic: "secure", Value: []byte("hello")}},
		kgo.SASL(plain.Auth{User: "plain-user", Pass: "plain-pass"}.AsMechanism()))

	tests := []struct {
		name    string
		sasl    kafkaconn.SASLConfig
		wantErr string
	}{
		{name: "plain", sasl: kafkaconn.SASLConfig{Mechanism: "plain", Username: "plain-user", Password: "plain-pass"}},
		{name: "scram-sha-256", sasl: kafkaconn.SASLConfig{Mechanism: "scram-sha-256", Username: "scram-user", Password: "scram-pass"}},
		{name: "scram-sha-512", sasl: kafkaconn.SASLConfig{Mechanism: "scram-sha-512", Username: "scram512-user", Password: "scram512-pass"}},
		{name: "plain bad password", sasl: kafkaconn.SASLConfig{Mechanism: "plain", Username: "plain-user", Password: "wrong"},
			wantErr: "check sasl.mechanism, sasl.username and sasl.password"},
		{name: "scram bad password", sasl: kafkaconn.SASLConfig{Mechanism: "scram-sha-256", Username: "scram-user", Password: "wrong"},
			wantErr: "check sasl.mechanism, sasl.username and sasl.password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(brokers, "secure")
			cfg.SASL = tt.sasl
			// kfake serves SASL without TLS: say so explicitly.
			cfg.SASL.AllowPlaintext = true
			src := newSource(t, cfg, nil)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			err := src.Check(ctx)
			if tt.wantErr != "" {
				t.Log(err)
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), tt.sasl.Password)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "hello", string(readFirst(t, src, "secure/0", nil).Value))
		})
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	serverCert := issue(t, ca, caKey, "kafka", false)
	clientCert := issue(t, ca, caKey, "streamd", true)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	writePEM(t, filepath.Join(dir, "client.pem"), "CERTIFICATE", clientCert.Certificate[0])
	keyDER, err := x509.MarshalECPrivateKey(clientCert.PrivateKey.(*ecdsa.PrivateKey))
	require.NoError(t, err)
	writePEM(t, filepath.Join(dir, "client-key.pem"), "EC PRIVATE KEY", keyDER)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c := testenv.StartKafkaCluster(t,
		kfake.TLS(&tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS12,
		}),
		kfake.SeedTopics(1, "tls"),
	)
	brokers := c.ListenAddrs()
	produce(t, brokers, []*kgo.Record{{Topic: "tls", Value: []byte("secret")}},
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}))

	tests := []struct {
		name    string
		tls     kafkaconn.TLSConfig
		wantErr string
	}{
		{name: "client certificate", tls: kafkaconn.TLSConfig{Enabled: true, CAFile: filepath.Join(dir, "ca.pem"),
			CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")}},
		{name: "no client certificate", tls: kafkaconn.TLSConfig{Enabled: true, CAFile: filepath.Join(dir, "ca.pem")},
			wantErr: "set tls.certFile and tls.keyFile"},
		{name: "unknown CA", tls: kafkaconn.TLSConfig{Enabled: true,
			CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem")},
			wantErr: "check tls.caFile and tls.serverName"},
		{name: "plaintext to a TLS port", wantErr: "check whether the listener expects tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(brokers, "tls")
			cfg.TLS = tt.tls
			src := newSource(t, cfg, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := src.Check(ctx)
			if tt.wantErr != "" {
				t.Log(err)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "secret", string(readFirst(t, src, "tls/0", nil).Value))
		})
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return ca, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, client bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}
