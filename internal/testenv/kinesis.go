package testenv

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/internal/modroot"
)

// KinesisInstall is the command that installs the local Kinesis server.
const KinesisInstall = "bash scripts/install-kinesis-local.sh"

// KinesisRegion is the region the local server and its clients use.
const KinesisRegion = "us-east-1"

// ErrKinesisNotInstalled means the kinesis-local package is missing; run
// KinesisInstall.
var ErrKinesisNotInstalled = errors.New("kinesis-local is not installed")

// kinesisDurations makes stream state changes, which take seconds on AWS,
// settle quickly so tests that reshard finish fast.
var kinesisDurations = []string{
	"CREATE_STREAM_DURATION", "DELETE_STREAM_DURATION", "MERGE_SHARDS_DURATION",
	"SPLIT_SHARD_DURATION", "UPDATE_SHARD_COUNT_DURATION", "UPDATE_STREAM_MODE_DURATION",
	"REGISTER_STREAM_CONSUMER_DURATION", "DEREGISTER_STREAM_CONSUMER_DURATION",
	"START_STREAM_ENCRYPTION_DURATION", "STOP_STREAM_ENCRYPTION_DURATION",
}

// KinesisServer is a running kinesis-local process.
type KinesisServer struct {
	// Endpoint is the plain-HTTP URL of the server.
	Endpoint string
	cmd      *exec.Cmd
	done     chan struct{}
	once     sync.Once
}

// KinesisPackageDir returns the directory of the installed kinesis-local
// package, or ErrKinesisNotInstalled.
func KinesisPackageDir() (string, error) {
	root, err := modroot.Dir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, ".cache", "kinesis-local", "node_modules", "kinesis-local")
	if _, err := os.Stat(filepath.Join(dir, "main.js")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("find kinesis-local in %s: %w", dir, ErrKinesisNotInstalled)
		}
		return "", fmt.Errorf("find kinesis-local: %w", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("find node: %w", ErrKinesisNotInstalled)
	}
	return dir, nil
}

// StartKinesisServer starts kinesis-local on free loopback ports and waits
// until it answers ListStreams. The caller must Stop it.
func StartKinesisServer(ctx context.Context) (*KinesisServer, error) {
	dir, err := KinesisPackageDir()
	if err != nil {
		return nil, err
	}
	plain, err := freePort()
	if err != nil {
		return nil, err
	}
	tls, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("node", filepath.Join(dir, "main.js"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"KINESIS_MOCK_CERT_PATH="+filepath.Join(dir, "server.json"),
		"KINESIS_MOCK_PLAIN_PORT="+strconv.Itoa(plain),
		"KINESIS_MOCK_TLS_PORT="+strconv.Itoa(tls),
		"AWS_REGION="+KinesisRegion,
		"LOG_LEVEL=WARN",
		"SHARD_LIMIT=200",
	)
	for _, d := range kinesisDurations {
		cmd.Env = append(cmd.Env, d+"=50ms")
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kinesis-local: %w", err)
	}
	s := &KinesisServer{Endpoint: "http://127.0.0.1:" + strconv.Itoa(plain), cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	client := KinesisClient(s.Endpoint)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		callCtx, callCancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := client.ListStreams(callCtx, &kinesis.ListStreamsInput{})
		callCancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("start kinesis-local: exited before answering: %w", err)
		case <-ctx.Done():
			s.Stop()
			return nil, fmt.Errorf("start kinesis-local: not answering ListStreams: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills the server process and waits for it to exit.
func (s *KinesisServer) Stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
}

// StartKinesis starts kinesis-local for one test and returns its endpoint;
// the server is killed when the test ends. A missing installation skips the
// test, or fails it when CI is set.
func StartKinesis(t testing.TB) (endpoint string) {
	t.Helper()
	s, err := StartKinesisServer(context.Background())
	if err != nil {
		KinesisSkip(t, err)
	}
	t.Cleanup(s.Stop)
	return s.Endpoint
}

// KinesisSkip ends a test that could not get a server: a missing
// installation skips it outside CI, anything else fails it.
func KinesisSkip(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrKinesisNotInstalled) && os.Getenv("CI") == "" {
		t.Skipf("%v; install with: %s", err, KinesisInstall)
	}
	if errors.Is(err, ErrKinesisNotInstalled) {
		t.Fatalf("%v; install with: %s", err, KinesisInstall)
	}
	t.Fatalf("start kinesis-local: %v", err)
}

// KinesisCredentials are the static credentials tests sign with; the local
// server accepts any.
func KinesisCredentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider("streamdtest", "streamdtest", "")
}

// KinesisClient returns a client of the local server at endpoint.
func KinesisClient(endpoint string) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:       KinesisRegion,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  KinesisCredentials(),
	})
}

// KinesisCreateStream creates a provisioned stream with shards shards and
// waits until it is active.
func KinesisCreateStream(t testing.TB, client *kinesis.Client, name string, shards int32) {
	t.Helper()
	ctx := context.Background()
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName:        aws.String(name),
		ShardCount:        aws.Int32(shards),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeProvisioned},
	})
	if err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	KinesisWaitActive(t, client, name)
}

// KinesisWaitActive waits until the stream is active again after a create
// or a reshard.
func KinesisWaitActive(t testing.TB, client *kinesis.Client, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		out, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("wait for stream %s to be active: %v (last error %v)", name, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// SharedKinesis is one kinesis-local for a whole test package, started on
// first use: it takes seconds to start. The zero value is ready to use.
type SharedKinesis struct {
	once sync.Once
	s    *KinesisServer
	err  error
}

// Endpoint starts the server if needed and returns its URL; it skips (or,
// in CI, fails) t when kinesis-local is not installed.
func (k *SharedKinesis) Endpoint(t testing.TB) string {
	t.Helper()
	k.once.Do(func() { k.s, k.err = StartKinesisServer(context.Background()) })
	if k.err != nil {
		KinesisSkip(t, k.err)
	}
	return k.s.Endpoint
}

// Main runs a package's tests, stops the server, and fails the run on
// leaked goroutines (the HTTP client's idle connections aside).
func (k *SharedKinesis) Main(m *testing.M) int {
	code := m.Run()
	if k.s != nil {
		k.s.Stop()
	}
	if code == 0 {
		if err := goleak.Find(
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	return code
}
