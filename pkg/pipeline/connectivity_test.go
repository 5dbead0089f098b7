package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

const kafkaPipeline = `
name: logs
http: {listen: "off"}
checkpoint: {enabled: false}
sources:
  - name: logs
    type: kafka
    kafka: {brokers: [%q], topics: [%q], maxWait: 100ms}
    decode:
      fields: [{name: msg, type: string}]
sinks:
  - {name: out, input: logs, type: file, file: {path: %q}}
`

func buildKafka(t *testing.T, broker, topic string) operator.Job {
	t.Helper()
	cfg, err := pipeline.Parse([]byte(fmt.Sprintf(kafkaPipeline, broker, topic, t.TempDir()+"/out.jsonl")), nil)
	require.NoError(t, err)
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	return job
}

// Startup checks name the component and what is wrong, instead of failing
// at the first read or flush.
func TestCheckConnectivity(t *testing.T) {
	brokers := testenv.StartKafka(t, "logs:2")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, pipeline.CheckConnectivity(ctx, buildKafka(t, brokers[0], "logs")))

	err = pipeline.CheckConnectivity(ctx, buildKafka(t, brokers[0], "no-such-topic"))
	require.Error(t, err)
	require.Contains(t, err.Error(), `source "logs"`)
	require.Contains(t, err.Error(), "no-such-topic")

	err = pipeline.CheckConnectivity(ctx, buildKafka(t, dead, "logs"))
	require.Error(t, err)
	require.Contains(t, err.Error(), `source "logs"`)
	require.Contains(t, err.Error(), dead)
}

// A broker that goes away makes the pipeline not ready while its reads
// fail and are retried (past the failing grace, short here).
func TestReadyReflectsLostBroker(t *testing.T) {
	cluster := testenv.StartKafkaCluster(t, testenv.MustKafkaTopicOpts(t, "logs:1")...)
	job := buildKafka(t, cluster.ListenAddrs()[0], "logs")
	job.FailingGrace = time.Second
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("pipeline stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("pipeline did not stop")
		}
	}()
	require.Eventually(t, rt.Ready, 20*time.Second, 10*time.Millisecond, "ready while the broker serves")
	cluster.Close()
	require.Eventually(t, func() bool { return !rt.Ready() }, 30*time.Second, 20*time.Millisecond, "not ready once reads fail")
}
