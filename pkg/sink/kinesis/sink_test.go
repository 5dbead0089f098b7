package kinesis

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/record"
)

// kinesisLocal serves every test of the package.
var kinesisLocal testenv.SharedKinesis

func endpoint(t testing.TB) string { return kinesisLocal.Endpoint(t) }

func TestMain(m *testing.M) { os.Exit(kinesisLocal.Main(m)) }

var schema = record.MustSchema(
	record.Field{Name: "device", Type: record.TypeString},
	record.Field{Name: "n", Type: record.TypeInt},
)

// faulty fails chosen PutRecords entries the way Kinesis does under load:
// the entries are not written and the response marks them failed.
type faulty struct {
	client *http.Client
	// fail decides per entry data whether this attempt fails.
	fail     func(data []byte) bool
	injected atomic.Int64
}

type putEntry struct {
	Data         []byte `json:"Data"`
	PartitionKey string `json:"PartitionKey"`
}

type putResult struct {
	SequenceNumber string `json:"SequenceNumber,omitempty"`
	ShardID        string `json:"ShardId,omitempty"`
	ErrorCode      string `json:"ErrorCode,omitempty"`
	ErrorMessage   string `json:"ErrorMessage,omitempty"`
}

func (f *faulty) Do(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".PutRecords") {
		return f.client.Do(req)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	var entries []putEntry
	if err := json.Unmarshal(in["Records"], &entries); err != nil {
		return nil, err
	}
	var pass []putEntry
	failed := make([]bool, len(entries))
	for i, e := range entries {
		if f.fail(e.Data) {
			failed[i] = true
			f.injected.Add(1)
			continue
		}
		pass = append(pass, e)
	}
	results := make([]putResult, 0, len(entries))
	var passed []putResult
	if len(pass) > 0 {
		in["Records"], _ = json.Marshal(pass)
		fwd, _ := json.Marshal(in)
		out, err := http.NewRequestWithContext(req.Context(), http.MethodPost, req.URL.String(), bytes.NewReader(fwd))
		if err != nil {
			return nil, err
		}
		out.Header = req.Header.Clone()
		out.ContentLength = int64(len(fwd))
		resp, err := f.client.Do(out)
		if err != nil {
			return nil, err
		}
		respBody, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("forward put records: %s: %s", resp.Status, respBody)
		}
		var o struct{ Records []putResult }
		if err := json.Unmarshal(respBody, &o); err != nil {
			return nil, err
		}
		passed = o.Records
	}
	nFailed := 0
	for i := range entries {
		if failed[i] {
			nFailed++
			results = append(results, putResult{ErrorCode: "ProvisionedThroughputExceededException", ErrorMessage: "Rate exceeded for shard"})
			continue
		}
		results = append(results, passed[0])
		passed = passed[1:]
	}
	respBody, _ := json.Marshal(map[string]any{"FailedRecordCount": nFailed, "Records": results})
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": []string{"application/x-amz-json-1.1"}},
		Body:    io.NopCloser(bytes.NewReader(respBody)),
		Request: req, ContentLength: int64(len(respBody)),
	}, nil
}

func newStream(t *testing.T, client *kinesis.Client) string {
	t.Helper()
	name := "sink-" + strings.ReplaceAll(t.Name(), "/", "-")
	testenv.KinesisCreateStream(t, client, name, 1)
	return name
}

func readBack(t *testing.T, client *kinesis.Client, stream string, n int) []types.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	require.NoError(t, err)
	iter := it.ShardIterator
	var out []types.Record
	for len(out) < n {
		r, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		require.NoError(t, err)
		out = append(out, r.Records...)
		iter = r.NextShardIterator
		if len(r.Records) == 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("read back %d of %d records", len(out), n)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return out
}

func rows(n int) *record.Batch {
	b := record.NewBatch(schema.Len(), n)
	for i := range n {
		row := b.AppendRow(int64(i))
		row[0] = record.String("dev-" + strconv.Itoa(i%5))
		row[1] = record.Int(int64(i))
	}
	return b
}

func TestWritePartialFailures(t *testing.T) {
	client := testenv.KinesisClient(endpoint(t))
	tests := []struct {
		name       string
		n          int
		fail       func(seen map[string]int, data []byte) bool
		maxRetries int
		wantErr    string
	}{
		{name: "no failures", n: 30, fail: func(map[string]int, []byte) bool { return false }},
		{
			// Every third row fails twice before it is accepted; 1200 rows
			// take three PutRecords batches.
			name: "failed entries retried", n: 1200,
			fail: func(seen map[string]int, data []byte) bool {
				var v struct{ N int }
				_ = json.Unmarshal(data, &v)
				seen[string(data)]++
				return v.N%3 == 0 && seen[string(data)] <= 2
			},
		},
		{
			name: "retries exhausted", n: 10, maxRetries: 2, wantErr: "giving up after 2 retries",
			fail: func(_ map[string]int, data []byte) bool { return bytes.Contains(data, []byte(`"n":7`)) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := newStream(t, client)
			seen := map[string]int{}
			f := &faulty{client: &http.Client{}, fail: func(d []byte) bool { return tt.fail(seen, d) }}
			cfg := DefaultConfig()
			cfg.Name = "alerts"
			cfg.Stream = stream
			cfg.Region = testenv.KinesisRegion
			cfg.Endpoint = endpoint(t)
			cfg.Credentials = testenv.KinesisCredentials()
			cfg.HTTPClient = f
			cfg.PartitionKey = "device"
			cfg.RetryInterval = time.Millisecond
			if tt.maxRetries > 0 {
				cfg.MaxRetries = tt.maxRetries
			}
			reg := prometheus.NewRegistry()
			s, err := New(cfg, nil, reg)
			require.NoError(t, err)
			w, err := s.NewWriter("window-0", schema)
			require.NoError(t, err)
			err = w.Write(context.Background(), rows(tt.n))
			require.NoError(t, w.Close(context.Background()))
			require.NoError(t, s.Close(context.Background()))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.ErrorContains(t, err, "ProvisionedThroughputExceededException")
				return
			}
			require.NoError(t, err)

			got := readBack(t, client, stream, tt.n)
			require.Len(t, got, tt.n)
			ns := map[int]bool{}
			for _, r := range got {
				var v struct {
					Device string
					N      int
				}
				require.NoError(t, json.Unmarshal(r.Data, &v), string(r.Data))
				require.Equal(t, "dev-"+strconv.Itoa(v.N%5), aws.ToString(r.PartitionKey))
				require.Equal(t, v.Device, aws.ToString(r.PartitionKey))
				require.False(t, ns[v.N], "duplicate %d", v.N)
				ns[v.N] = true
			}
			require.Equal(t, float64(tt.n), testutil.ToFloat64(s.records))
			require.Equal(t, float64(f.injected.Load()), testutil.ToFloat64(s.failures))
		})
	}
}

func TestNewWriterUnknownKeyField(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Stream = "s"
	cfg.Region = testenv.KinesisRegion
	cfg.Endpoint = "http://127.0.0.1:1"
	cfg.Credentials = testenv.KinesisCredentials()
	cfg.PartitionKey = "equipmentId"
	s, err := New(cfg, nil, nil)
	require.NoError(t, err)
	_, err = s.NewWriter("t", schema)
	require.ErrorContains(t, err, `partitionKey field "equipmentId"`)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{name: "ok", mod: func(*Config) {}},
		{name: "no stream", mod: func(c *Config) { c.Stream = "" }, wantErr: "stream: required"},
		{name: "batch too big", mod: func(c *Config) { c.BatchRecords = 501 }, wantErr: "batchRecords"},
		{name: "negative retries", mod: func(c *Config) { c.MaxRetries = -1 }, wantErr: "maxRetries"},
		{name: "bad endpoint", mod: func(c *Config) { c.Endpoint = "::" }, wantErr: "endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Stream = "s"
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// fakePutter accepts everything without a server, to measure the writer.
type fakePutter struct{}

func (fakePutter) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	return &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records)), FailedRecordCount: aws.Int32(0)}, nil
}

func BenchmarkWrite(b *testing.B) {
	s := &Sink{cfg: DefaultConfig(), client: fakePutter{}, records: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}), failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "y"})}
	s.cfg.Stream, s.cfg.PartitionKey = "s", "device"
	w, err := s.NewWriter("t", schema)
	require.NoError(b, err)
	batch := rows(1000)
	b.ReportAllocs()
	for b.Loop() {
		require.NoError(b, w.Write(context.Background(), batch))
	}
	b.ReportMetric(float64(b.N*batch.Len())/b.Elapsed().Seconds(), "records/s")
}
