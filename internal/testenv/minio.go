package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamd/streamd/internal/modroot"
)

// MinIOInstallHint is the command that installs the MinIO server the tests use.
const MinIOInstallHint = "bash scripts/install-minio.sh"

// MinIOAccessKey and MinIOSecretKey are the root credentials of every test
// server StartMinIO runs.
const (
	MinIOAccessKey = "streamd-test"
	MinIOSecretKey = "streamd-test-secret"
)

// MinIOBinary finds the MinIO server: $STREAMD_MINIO, then
// .cache/bin/minio in the module root (where scripts/install-minio.sh puts
// it), then PATH.
func MinIOBinary() (string, error) {
	if p := os.Getenv("STREAMD_MINIO"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("find minio: STREAMD_MINIO: %w", err)
		}
		return p, nil
	}
	if root, err := modroot.Dir(); err == nil {
		p := filepath.Join(root, ".cache", "bin", "minio")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("minio")
	if err != nil {
		return "", fmt.Errorf("find minio: not in .cache/bin or PATH: %w", err)
	}
	return p, nil
}

func minioFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer collects a server's output for failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartMinIO runs a MinIO server on free loopback ports with its data in a
// temporary directory, waits until it is live, and kills it by PID in
// t.Cleanup. Without the binary the test is skipped, or fails with the
// install command when CI is set.
func StartMinIO(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	bin, err := MinIOBinary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("minio not installed: run %s (%v)", MinIOInstallHint, err)
		}
		t.Skipf("minio not installed: run %s (%v)", MinIOInstallHint, err)
	}
	var lastErr error
	// A free port can be taken between probing and binding; try again then.
	for range 3 {
		endpoint, lastErr = startMinIO(t, bin)
		if lastErr == nil {
			return endpoint, MinIOAccessKey, MinIOSecretKey
		}
	}
	t.Fatalf("start minio: %v", lastErr)
	return "", "", ""
}

func startMinIO(t testing.TB, bin string) (string, error) {
	port, err := minioFreePort()
	if err != nil {
		return "", err
	}
	console, err := minioFreePort()
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "server", t.TempDir(), "--quiet",
		"--address", addr, "--console-address", "127.0.0.1:"+strconv.Itoa(console))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+MinIOAccessKey,
		"MINIO_ROOT_PASSWORD="+MinIOSecretKey,
		"MINIO_UPDATE=off",
		"MINIO_BROWSER=off",
	)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited //nolint:errcheck // killed: its error is the kill
	}
	endpoint := "http://" + addr
	if err := minioWaitLive(endpoint, exited); err != nil {
		stop()
		return "", fmt.Errorf("%w; output: %s", err, out.String())
	}
	t.Cleanup(stop)
	return endpoint, nil
}

// minioWaitLive polls the liveness endpoint until it answers 200, the
// process exits, or 60 s pass (a loaded machine starts MinIO slowly).
func minioWaitLive(endpoint string, exited <-chan error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		resp, err := client.Get(endpoint + "/minio/health/live")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("minio exited before it was live: %w", err)
		case <-tick.C:
		}
	}
	return errors.New("minio not live after 60s")
}

// MinIOClient returns an S3 client for a MinIO server, path-style, with
// the given credentials.
func MinIOClient(endpoint, accessKey, secretKey string) *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
	})
}

// MinIOBucket creates a bucket on a MinIO server.
func MinIOBucket(t testing.TB, endpoint, accessKey, secretKey, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := MinIOClient(endpoint, accessKey, secretKey).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	if err != nil {
		t.Fatalf("create minio bucket %q: %v", name, err)
	}
}
