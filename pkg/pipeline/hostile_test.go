package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fixtures are every example and every testdata pipeline.
func fixtures(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"testdata/*.yaml", "../../examples/*.yaml", "../../examples/*/*.yaml"} {
		m, err := filepath.Glob(pattern)
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.GreaterOrEqual(t, len(files), 10)
	for i, f := range files {
		abs, err := filepath.Abs(f)
		require.NoError(t, err)
		files[i] = abs
	}
	return files
}

// TestValidateAndRunAgree runs what `streamd validate` runs (Load, Check)
// and what `streamd run` runs (Load, Build, which opens sources and sinks)
// over every example and every fixture: both must report exactly the same
// problems, so a file validate accepts is never refused by run, nor the
// other way round.
func TestValidateAndRunAgree(t *testing.T) {
	lookup := env("OUTPUT_DIR", t.TempDir())
	for _, f := range fixtures(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// Build creates output directories; keep them out of the tree.
			t.Chdir(t.TempDir())
			validate := func() string {
				cfg, err := Load(f, lookup)
				if err == nil {
					err = Check(cfg).Err()
				}
				if err == nil {
					return ""
				}
				return err.Error()
			}()
			run := func() string {
				cfg, err := Load(f, lookup)
				if err == nil {
					_, err = Build(cfg, Options{})
				}
				if err == nil {
					return ""
				}
				return err.Error()
			}()
			require.Equal(t, validate, run, "validate and run disagree on %s", f)
			if strings.HasPrefix(filepath.Base(f), "invalid-") {
				require.NotEmpty(t, validate, "%s must be refused", f)
			}
		})
	}
}

// TestConnectorProblems: connector settings are validated by validate,
// each problem at its own YAML path and line, with suggestions for
// misspelt values, and no secret is repeated.
func TestConnectorProblems(t *testing.T) {
	cfg, err := Load("testdata/invalid-connectors.yaml", env())
	require.NoError(t, err)
	ps := Check(cfg)
	var got []string
	for _, p := range ps {
		got = append(got, p.Error())
	}
	require.Equal(t, []string{
		`line 10: sources[0].kafka.startOffset: "earlest" is not earliest, latest, offsets or an RFC 3339 timestamp (did you mean "earliest"?)`,
		`line 12: sources[0].kafka.tls.insecureSkipVerify: is set but enabled is not true: set enabled: true to use TLS, or remove the setting (TLS is never turned on implicitly, nor a setting ignored)`,
		`line 14: sources[0].kafka.sasl.mechanism: unknown mechanism "bogus" (want plain, scram-sha-256, scram-sha-512)`,
		`line 25: sources[1].kinesis.startPosition: unknown start position "TRIM_HORIZONN" (did you mean "TRIM_HORIZON"? want TRIM_HORIZON, LATEST, AT_TIMESTAMP)`,
		`line 27: sources[1].decode.invalidUTF8: unknown policy "replac" (did you mean "replace"? want deadLetter, replace)`,
		`line 28: sources[1].decode.emptyRecords: unknown policy "drop" (want skip, deadLetter)`,
		`line 38: sinks[0].kafka.sasl.mechanism: plain without TLS sends the credentials in plaintext: set tls.enabled: true, or sasl.allowPlaintext: true to accept that`,
	}, got)
	require.NotContains(t, ps.Error(), "hunter2")
}

// TestTLSDowngradeRefused: the configuration that read 1.8 M records from
// a plaintext broker is refused by validate and by run, at its line.
func TestTLSDowngradeRefused(t *testing.T) {
	for name, check := range map[string]func(*Config) error{
		"validate": func(c *Config) error { return Check(c).Err() },
		"run":      func(c *Config) error { _, err := Build(c, Options{}); return err },
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load("testdata/invalid-tls-downgrade.yaml", env())
			require.NoError(t, err)
			err = check(cfg)
			require.ErrorContains(t, err, "line 10: sources[0].kafka.tls.insecureSkipVerify: is set but enabled is not true")
		})
	}
}

func TestHTTPProblems(t *testing.T) {
	cfg, err := Load("testdata/invalid-http.yaml", env())
	require.NoError(t, err)
	var got []string
	for _, p := range Check(cfg) {
		got = append(got, p.Error())
	}
	require.Equal(t, []string{
		"line 4: http.probeListen: must differ from http.listen",
		"line 5: http.tls.certFile: required with http.tls (the server certificate)",
		"line 5: http.tls.keyFile: required with http.tls (the server key)",
		"line 8: http.auth.readTokenFile: must differ from tokenFile: a read-only token that can also write is not read-only",
	}, got)
}

// TestPlaintextSASLWarns: allowPlaintext makes the file valid, and both
// validate (Warnings) and run (the log) say what it costs.
func TestPlaintextSASLWarns(t *testing.T) {
	doc := strings.Replace(sourceDoc("type: kafka", "kafka:", "  brokers: [127.0.0.1:1]", "  topics: [t]",
		"  sasl: {mechanism: scram-sha-256, username: u, password: p4ss-w0rd-secret, allowPlaintext: true}",
		"decode: {fields: [{name: msg, type: string}]}"), "input: gen", "input: gen", 1)
	// Build opens what the pipeline uses; no checkpoint directory here.
	doc += "checkpoint: {enabled: false}\n"
	cfg, err := Parse([]byte(doc), env())
	require.NoError(t, err)
	require.Empty(t, Check(cfg))
	ws := Warnings(cfg)
	require.Len(t, ws, 1)
	require.Equal(t, "line 8: sources[0].kafka.sasl.allowPlaintext: SASL scram-sha-256 credentials are sent to the brokers without TLS", ws[0].Error())

	core, logs := observer.New(zap.WarnLevel)
	_, err = Build(cfg, Options{Logger: zap.New(core)})
	require.NoError(t, err)
	warned := logs.FilterMessage("SASL scram-sha-256 credentials are sent to the brokers without TLS").All()
	require.Len(t, warned, 1)
	require.Equal(t, "sources[0].kafka.sasl.allowPlaintext", warned[0].ContextMap()["setting"])
	for _, e := range logs.All() {
		require.NotContains(t, e.Message, "p4ss-w0rd-secret")
		for _, v := range e.ContextMap() {
			require.NotContains(t, fmt.Sprint(v), "p4ss-w0rd-secret")
		}
	}
}

func TestPipelineFileSizeLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	require.NoError(t, os.WriteFile(path, []byte(baseDoc+"# "+strings.Repeat("x", 5000)+"\n"), 0o600))
	_, err := LoadLimit(path, env(), 4096)
	require.ErrorContains(t, err, "over the limit of 4096 bytes (--max-config-bytes)")
	_, err = LoadLimit(path, env(), 8192)
	require.NoError(t, err)

	// A pipe has no size in advance: the limit still holds.
	if _, err := os.Stat("/dev/stdin"); err == nil {
		r, w, err := os.Pipe()
		require.NoError(t, err)
		go func() {
			_, _ = w.Write([]byte(baseDoc + "# " + strings.Repeat("x", 5000) + "\n"))
			_ = w.Close()
		}()
		defer r.Close()
		_, err = LoadLimit("/dev/fd/"+strconv.Itoa(int(r.Fd())), env(), 4096)
		require.ErrorContains(t, err, "over the limit of 4096 bytes")
	}
}
