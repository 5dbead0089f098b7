package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/testenv"
)

// e2eRecord is one sensor reading in the JSON shape the test pipeline
// decodes, stamped with the given event time.
func e2eRecord(at time.Time, i int) []byte {
	return fmt.Appendf(nil, `{"timestamp":%d,"equipmentId":"m%d","tag":"t%d","value":%d.5}`, at.UnixMilli(), i%5, i%3, i%100)
}

// startKafkaDev runs the Kafka-protocol development server (one broker on
// a free loopback port, with the given topics) and returns its address
// once it has printed "ready".
func startKafkaDev(ctx context.Context, t *testing.T, dir, bin string, topics ...string) string {
	t.Helper()
	port := freePort(t)
	args := []string{"-host", "127.0.0.1", "-port", fmt.Sprint(port), "-brokers", "1"}
	for _, topic := range topics {
		args = append(args, "-topic", topic)
	}
	p := start(ctx, t, dir, "kafka", bin, args...)
	waitFor(ctx, t, p, 30*time.Second, "kafka dev server ready", func() error {
		if !strings.Contains(p.log(), "ready") {
			return errors.New("not ready yet")
		}
		return nil
	})
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// produceKafka writes n sensor records to topic, spread over its
// partitions, and waits until the broker has acknowledged all of them.
func produceKafka(ctx context.Context, t *testing.T, broker, topic string, n int) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	require.NoError(t, err)
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	now := time.Now()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: e2eRecord(now, i)}
	}
	require.NoError(t, client.ProduceSync(ctx, recs...).FirstErr(), "produce to %s", topic)
}

// kinesisFixture is a kinesis-local server with one stream holding records.
type kinesisFixture struct {
	Endpoint string
	Stream   string
}

// startKinesisServer starts kinesis-local in the background, as it takes
// seconds to boot, and returns a function that waits for it. The server is
// stopped when the test ends, whether or not anyone waited for it.
func startKinesisServer(ctx context.Context, t *testing.T) func() (*testenv.KinesisServer, error) {
	t.Helper()
	type started struct {
		srv *testenv.KinesisServer
		err error
	}
	ch := make(chan started, 1)
	go func() {
		srv, err := testenv.StartKinesisServer(ctx)
		ch <- started{srv, err}
	}()
	wait := sync.OnceValues(func() (*testenv.KinesisServer, error) {
		s := <-ch
		return s.srv, s.err
	})
	t.Cleanup(func() {
		if srv, _ := wait(); srv != nil {
			srv.Stop()
		}
	})
	return wait
}

// kinesisStream creates a stream with shards shards on the server wait
// returns and puts n sensor records into it. It returns nil when
// kinesis-local is not installed and CI is not set, so the caller can
// leave Kinesis out; in CI a missing installation fails the test.
func kinesisStream(ctx context.Context, t *testing.T, wait func() (*testenv.KinesisServer, error), stream string, shards int32, n int) *kinesisFixture {
	t.Helper()
	srv, err := wait()
	if errors.Is(err, testenv.ErrKinesisNotInstalled) && os.Getenv("CI") == "" {
		t.Logf("Kinesis panels not checked: %v; install with: %s", err, testenv.KinesisInstall)
		return nil
	}
	if err != nil {
		testenv.KinesisSkip(t, err)
	}

	// An own transport whose idle connections are closed at the end, so no
	// connection goroutine outlives the test.
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := kinesis.New(kinesis.Options{
		Region:       testenv.KinesisRegion,
		BaseEndpoint: aws.String(srv.Endpoint),
		Credentials:  testenv.KinesisCredentials(),
		HTTPClient:   &http.Client{Transport: tr, Timeout: 10 * time.Second},
	})
	testenv.KinesisCreateStream(t, client, stream, shards)

	now := time.Now()
	entries := make([]types.PutRecordsRequestEntry, n)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{Data: e2eRecord(now, i), PartitionKey: aws.String(fmt.Sprint(i))}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
	require.NoError(t, err, "put records to %s", stream)
	require.Zero(t, aws.ToInt32(out.FailedRecordCount), "records refused by kinesis-local")
	return &kinesisFixture{Endpoint: srv.Endpoint, Stream: stream}
}
