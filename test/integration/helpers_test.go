package integration_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

// waitTimeout bounds every wait for a condition; each test stays well
// under a minute even on a loaded machine.
const waitTimeout = 40 * time.Second

// running is a pipeline started by startPipeline.
type running struct {
	rt     *operator.Runtime
	cancel context.CancelFunc
	done   chan error
	// stopped is set once stop returned, so the cleanup does not wait twice.
	stopped bool
}

// startPipeline parses doc with env as the only environment, builds it and
// runs it in the background. The pipeline is stopped at the end of the test
// if stop was not called.
//
// ${CHK} is a fresh directory for the pipeline's checkpoints unless env
// names one.
func startPipeline(t testing.TB, doc string, env map[string]string) *running {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["CHK"]; !ok {
		env["CHK"] = t.TempDir()
	}
	cfg, err := pipeline.Parse([]byte(doc), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	require.NoError(t, err)
	log := zap.NewNop()
	if tt, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
	}
	job, err := pipeline.Build(cfg, pipeline.Options{Logger: log})
	require.NoError(t, err)
	rt, err := operator.New(job, log, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{rt: rt, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		if !r.stopped {
			r.cancel()
			<-r.done //nolint:errcheck // cancelled: its error is the cancellation
		}
	})
	return r
}

// stop stops the pipeline as SIGTERM does (with savepointOnStop: false, as
// most of these tests have, the sources stop, open windows fire and the
// final checkpoint publishes the output) and requires a clean exit.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.stopped = true
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("the pipeline did not stop within the timeout")
	}
}

// read is the number of records read by the splits this runtime holds now.
func (r *running) read() int64 {
	var n int64
	for _, s := range r.rt.Status().Splits {
		n += s.Records
	}
	return n
}

// failed reports a pipeline that ended on its own, with an error.
func (r *running) failed() error {
	select {
	case err := <-r.done:
		r.done <- err
		if err == nil {
			return errors.New("the pipeline ended by itself")
		}
		return err
	default:
		return nil
	}
}

// waitFor polls cond until it holds, failing the test after waitTimeout or
// when one of the pipelines failed.
func waitFor(t testing.TB, what string, cond func() bool, pipelines ...*running) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		for _, p := range pipelines {
			if err := p.failed(); err != nil {
				t.Fatalf("waiting for %s: pipeline failed: %v", what, err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not reached within %s", what, waitTimeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// kafkaClient returns a franz-go client for producing and consuming in
// tests; records go to the partition they name.
func kafkaClient(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	all := append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(100_000),
	}, opts...)
	cl, err := kgo.NewClient(all...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

// produceKafka writes values round robin over partitions, value i to
// partition i%partitions, so each partition keeps the values' order.
func produceKafka(t testing.TB, cl *kgo.Client, topic string, partitions int, values [][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: v}
	}
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
}

// readJSONLines reads a JSON-lines file; a missing file has no lines.
func readJSONLines(t testing.TB, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

// countLines counts the complete lines of a file written concurrently.
func countLines(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "\n")
}

// downloadS3 copies every object under s3://bucket/prefix into a new
// temporary directory, keeping the key layout, and returns the directory.
func downloadS3(t testing.TB, endpoint, accessKey, secretKey, bucket, prefix string) string {
	t.Helper()
	cfg := s3store.DefaultConfig()
	cfg.Bucket, cfg.Prefix = bucket, prefix
	cfg.Endpoint, cfg.PathStyle = endpoint, true
	cfg.AccessKey, cfg.SecretKey = accessKey, secretKey
	st, err := s3store.New(cfg, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	objs, err := st.List(ctx, "")
	require.NoError(t, err)
	dir := t.TempDir()
	for _, o := range objs {
		rc, err := st.Get(ctx, o.Key)
		require.NoError(t, err)
		dst := filepath.Join(dir, filepath.FromSlash(o.Key))
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		f, err := os.Create(dst)
		require.NoError(t, err)
		n, err := io.Copy(f, rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		require.NoError(t, f.Close())
		require.Equal(t, o.Size, n, "size of %s", o.Key)
	}
	return dir
}

// requireTool finds a command-line tool: a missing one skips the test, or
// fails it when CI is set.
func requireTool(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not installed: run %s", name, install)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}
