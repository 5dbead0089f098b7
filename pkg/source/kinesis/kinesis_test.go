package kinesis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
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
	"github.com/streamd/streamd/pkg/source"
)

var streamSeq atomic.Int64

// newStream creates a stream with a name unique within the test binary.
func newStream(t testing.TB, shards int32) (*kinesis.Client, string) {
	t.Helper()
	client := testenv.KinesisClient(endpoint(t))
	name := fmt.Sprintf("test-%s-%d", strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), streamSeq.Add(1))
	if len(name) > 120 {
		name = name[len(name)-120:]
	}
	testenv.KinesisCreateStream(t, client, name, shards)
	return client, name
}

func testConfig(t testing.TB, stream string) Config {
	cfg := DefaultConfig()
	cfg.Stream = stream
	cfg.Region = testenv.KinesisRegion
	cfg.Endpoint = endpoint(t)
	cfg.Credentials = testenv.KinesisCredentials()
	cfg.PollInterval = 10 * time.Millisecond
	cfg.ShardSyncInterval = 100 * time.Millisecond
	return cfg
}

func newTestSource(t testing.TB, cfg Config, reg prometheus.Registerer) *Source {
	t.Helper()
	s, err := New(cfg, nil, reg)
	require.NoError(t, err)
	return s
}

// put writes records one at a time, so records of one key keep their order.
func put(t testing.TB, client *kinesis.Client, stream, key string, values ...string) []string {
	t.Helper()
	var seqs []string
	for _, v := range values {
		out, err := client.PutRecord(context.Background(), &kinesis.PutRecordInput{
			StreamName: aws.String(stream), PartitionKey: aws.String(key), Data: []byte(v),
		})
		require.NoError(t, err)
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
	}
	return seqs
}

type got struct {
	shard, key, value, seq string
}

// harness plays the runtime: it reads every assigned split in its own
// goroutine, with short read deadlines as the runtime's tick does, and logs
// the messages in the order they were returned.
type harness struct {
	mu      sync.Mutex
	got     []got
	ended   []string
	errs    []error
	changed chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func run(t *testing.T, src *Source) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{changed: make(chan struct{}, 1), cancel: cancel}
	t.Cleanup(h.stop)
	splits, err := src.Splits(ctx)
	require.NoError(t, err)
	for _, sp := range splits {
		h.start(ctx, src, sp)
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		err := src.Watch(ctx, func(ev source.Event) error {
			h.start(ctx, src, ev.Split)
			return nil
		})
		h.fail(err)
	}()
	return h
}

func (h *harness) fail(err error) {
	if err == nil {
		return
	}
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
}

func (h *harness) start(ctx context.Context, src *Source, sp source.Split) {
	r, err := src.Open(ctx, sp, nil)
	if err != nil {
		h.fail(err)
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer r.Close()
		var b source.Batch
		for ctx.Err() == nil {
			readCtx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
			err := r.Read(readCtx, &b, 37)
			cancel()
			h.mu.Lock()
			for _, m := range b.Messages {
				h.got = append(h.got, got{shard: sp.ID, key: string(m.Key), value: string(m.Value), seq: m.Position.Sequence})
			}
			if errors.Is(err, source.ErrEndOfSplit) {
				h.ended = append(h.ended, sp.ID)
			}
			h.mu.Unlock()
			b.Reset()
			select {
			case h.changed <- struct{}{}:
			default:
			}
			switch {
			case err == nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			case errors.Is(err, source.ErrEndOfSplit):
				return
			default:
				h.fail(err)
				return
			}
		}
	}()
}

// wait returns the messages once n have arrived.
func (h *harness) wait(t *testing.T, n int) []got {
	t.Helper()
	deadline := time.After(40 * time.Second)
	for {
		h.mu.Lock()
		out := append([]got(nil), h.got...)
		errs := errors.Join(h.errs...)
		h.mu.Unlock()
		require.NoError(t, errs)
		if len(out) >= n {
			return out
		}
		select {
		case <-h.changed:
		case <-deadline:
			t.Fatalf("got %d of %d messages", len(out), n)
		}
	}
}

func (h *harness) stop() {
	h.cancel()
	h.wg.Wait()
}

func TestReadTwoShardsExactlyOnce(t *testing.T) {
	client, stream := newStream(t, 2)
	const n = 200
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("v%03d", i))
		put(t, client, stream, "key-"+strconv.Itoa(i%13), want[i])
	}
	h := run(t, newTestSource(t, testConfig(t, stream), nil))
	msgs := h.wait(t, n)
	var values []string
	shards := map[string]bool{}
	for _, m := range msgs {
		values = append(values, m.value)
		shards[m.shard] = true
		require.True(t, strings.HasPrefix(m.key, "key-"))
	}
	require.ElementsMatch(t, want, values)
	require.Len(t, shards, 2)
	h.stop()
	require.Len(t, h.got, n)
}

// TestReshardDuringRead splits a shard and then merges two while records
// are produced and read; every record must arrive once, and each key's
// records in the order they were written, which holds only if a parent
// shard is read to its end before its children start.
func TestReshardDuringRead(t *testing.T) {
	client, stream := newStream(t, 2)
	h := run(t, newTestSource(t, testConfig(t, stream), nil))
	const keys, perPhase = 16, 120
	next := make([]int, keys)
	produce := func() {
		for i := range perPhase {
			k := i % keys
			put(t, client, stream, "k"+strconv.Itoa(k), fmt.Sprintf("k%d/%d", k, next[k]))
			next[k]++
		}
	}
	shardsOf := func() []types.Shard {
		out, err := client.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
		require.NoError(t, err)
		return out.Shards
	}
	open := func() []types.Shard {
		var o []types.Shard
		for _, s := range shardsOf() {
			if s.SequenceNumberRange.EndingSequenceNumber == nil {
				o = append(o, s)
			}
		}
		return o
	}

	produce()
	first := open()[0]
	lo, _ := new(big.Int).SetString(*first.HashKeyRange.StartingHashKey, 10)
	hi, _ := new(big.Int).SetString(*first.HashKeyRange.EndingHashKey, 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	_, err := client.SplitShard(context.Background(), &kinesis.SplitShardInput{
		StreamName: aws.String(stream), ShardToSplit: first.ShardId, NewStartingHashKey: aws.String(mid.String()),
	})
	require.NoError(t, err)
	testenv.KinesisWaitActive(t, client, stream)
	produce()

	// Merge the two adjacent open shards with the highest hash keys.
	o := open()
	require.Len(t, o, 3)
	byStart := func(s types.Shard) *big.Int {
		v, _ := new(big.Int).SetString(*s.HashKeyRange.StartingHashKey, 10)
		return v
	}
	a, b := o[0], o[1]
	for _, s := range o {
		for _, u := range o {
			ea, _ := new(big.Int).SetString(*s.HashKeyRange.EndingHashKey, 10)
			if new(big.Int).Add(ea, big.NewInt(1)).Cmp(byStart(u)) == 0 {
				a, b = s, u
			}
		}
	}
	_, err = client.MergeShards(context.Background(), &kinesis.MergeShardsInput{
		StreamName: aws.String(stream), ShardToMerge: a.ShardId, AdjacentShardToMerge: b.ShardId,
	})
	require.NoError(t, err)
	testenv.KinesisWaitActive(t, client, stream)
	produce()
	require.Len(t, shardsOf(), 5)

	msgs := h.wait(t, 3*perPhase)
	seen := map[string]int{}
	last := make([]int, keys)
	for i := range last {
		last[i] = -1
	}
	readShards := map[string]bool{}
	for _, m := range msgs {
		seen[m.value]++
		readShards[m.shard] = true
		var k, i int
		_, err := fmt.Sscanf(m.value, "k%d/%d", &k, &i)
		require.NoError(t, err)
		require.Equal(t, last[k]+1, i, "key k%d: %s after %d (shard %s)", k, m.value, last[k], m.shard)
		last[k] = i
	}
	for v, c := range seen {
		require.Equal(t, 1, c, v)
	}
	require.Len(t, seen, 3*perPhase)
	require.Len(t, readShards, 5)
}

func TestStartPositions(t *testing.T) {
	client, stream := newStream(t, 1)
	shard := source.Split{ID: "shardId-000000000000"}
	before := []string{"b0", "b1", "b2", "b3", "b4", "b5"}
	seqs := put(t, client, stream, "k", before...)

	readAll := func(t *testing.T, r source.Reader, n int) []string {
		t.Helper()
		var out []string
		var b source.Batch
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for len(out) < n {
			require.NoError(t, r.Read(ctx, &b, 100))
			for _, m := range b.Messages {
				out = append(out, string(m.Value))
			}
			b.Reset()
		}
		return out
	}
	// ready reads until the reader holds an iterator, so records written
	// afterwards are after its LATEST position.
	ready := func(t *testing.T, r source.Reader) {
		kr := r.(*Reader)
		var b source.Batch
		for kr.iter == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			err := r.Read(ctx, &b, 10)
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Empty(t, b.Messages)
		}
	}

	t.Run("TRIM_HORIZON", func(t *testing.T) {
		src := newTestSource(t, testConfig(t, stream), nil)
		r, err := src.Open(context.Background(), shard, nil)
		require.NoError(t, err)
		defer r.Close()
		require.Equal(t, before, readAll(t, r, len(before)))
	})
	t.Run("AFTER_SEQUENCE_NUMBER", func(t *testing.T) {
		src := newTestSource(t, testConfig(t, stream), nil)
		r, err := src.Open(context.Background(), shard, &source.Position{Sequence: seqs[2]})
		require.NoError(t, err)
		defer r.Close()
		require.Equal(t, before[3:], readAll(t, r, 3))
	})
	var latestWritten []string
	t.Run("LATEST", func(t *testing.T) {
		cfg := testConfig(t, stream)
		cfg.StartPosition = Latest
		src := newTestSource(t, cfg, nil)
		r, err := src.Open(context.Background(), shard, nil)
		require.NoError(t, err)
		defer r.Close()
		ready(t, r)
		latestWritten = []string{"l0", "l1"}
		put(t, client, stream, "k", latestWritten...)
		require.Equal(t, latestWritten, readAll(t, r, 2))
	})
	t.Run("AT_TIMESTAMP", func(t *testing.T) {
		// Find the arrival time of the last record, then write after it.
		src := newTestSource(t, testConfig(t, stream), nil)
		r, err := src.Open(context.Background(), shard, &source.Position{Sequence: seqs[len(seqs)-1]})
		require.NoError(t, err)
		var b source.Batch
		require.NoError(t, r.Read(context.Background(), &b, 100))
		require.NotEmpty(t, b.Messages)
		lastTS := b.Messages[len(b.Messages)-1].Timestamp
		require.NoError(t, r.Close())
		from := time.UnixMilli(lastTS + 1)
		for time.Now().Before(from.Add(10 * time.Millisecond)) {
			time.Sleep(time.Millisecond)
		}
		after := []string{"t0", "t1", "t2"}
		put(t, client, stream, "k", after...)

		cfg := testConfig(t, stream)
		cfg.StartPosition = AtTimestamp
		cfg.Timestamp = from
		src = newTestSource(t, cfg, nil)
		r, err = src.Open(context.Background(), shard, nil)
		require.NoError(t, err)
		defer r.Close()
		require.Equal(t, after, readAll(t, r, 3))
	})
}

func TestKPLAggregates(t *testing.T) {
	client, stream := newStream(t, 1)
	shard := source.Split{ID: "shardId-000000000000"}
	users := []userRecord{
		{key: []byte("dev-1"), data: []byte(`{"n":0}`)},
		{key: []byte("dev-2"), data: []byte(`{"n":1}`)},
		{key: []byte("dev-1"), data: []byte(`{"n":2}`)},
		{key: []byte("dev-3"), data: []byte(`{"n":3}`)},
	}
	agg := appendAggregate(nil, users)
	corrupt := bytes.Clone(agg)
	corrupt[len(corrupt)-1] ^= 1
	put(t, client, stream, "outer", string(agg))
	put(t, client, stream, "plain", "raw")
	put(t, client, stream, "outer", string(corrupt))

	src := newTestSource(t, testConfig(t, stream), nil)
	read := func(start *source.Position, max, n int) []source.Message {
		r, err := src.Open(context.Background(), shard, start)
		require.NoError(t, err)
		defer r.Close()
		var out []source.Message
		var b source.Batch
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for len(out) < n {
			require.NoError(t, r.Read(ctx, &b, max))
			for _, m := range b.Messages {
				m.Value, m.Key = bytes.Clone(m.Value), bytes.Clone(m.Key)
				out = append(out, m)
			}
			b.Reset()
		}
		return out
	}
	// max 3 splits the aggregate across two reads.
	msgs := read(nil, 3, 6)
	require.Len(t, msgs, 6)
	for i, u := range users {
		require.Equal(t, string(u.data), string(msgs[i].Value))
		require.Equal(t, string(u.key), string(msgs[i].Key))
		require.True(t, strings.HasSuffix(msgs[i].Position.Sequence, ":"+strconv.Itoa(i)), msgs[i].Position.Sequence)
	}
	require.Equal(t, "raw", string(msgs[4].Value))
	require.Equal(t, "plain", string(msgs[4].Key))
	require.Equal(t, corrupt, msgs[5].Value, "a corrupt aggregate is delivered raw")
	require.NotContains(t, msgs[5].Position.Sequence, ":")

	// Resuming after sub-record 1 delivers sub-records 2 and 3, then the rest.
	again := read(&msgs[1].Position, 100, 4)
	require.Equal(t, `{"n":2}`, string(again[0].Value))
	require.Equal(t, `{"n":3}`, string(again[1].Value))
	require.Equal(t, "raw", string(again[2].Value))
	// Resuming after the last sub-record skips the whole aggregate.
	again = read(&msgs[3].Position, 100, 2)
	require.Equal(t, "raw", string(again[0].Value))
}

// throttler answers a share of GetRecords calls with the error Kinesis
// returns when a shard's read limit is exceeded.
type throttler struct {
	client   *http.Client
	calls    atomic.Int64
	injected atomic.Int64
}

func (th *throttler) Do(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".GetRecords") && th.calls.Add(1)%3 == 0 {
		th.injected.Add(1)
		body := `{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard"}`
		return &http.Response{
			StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:  http.Header{"Content-Type": []string{"application/x-amz-json-1.1"}},
			Body:    io.NopCloser(strings.NewReader(body)),
			Request: req, ContentLength: int64(len(body)),
		}, nil
	}
	return th.client.Do(req)
}

func TestThrottledReadsLoseNothing(t *testing.T) {
	client, stream := newStream(t, 2)
	const n = 150
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("r%03d", i))
		put(t, client, stream, "p"+strconv.Itoa(i%11), want[i])
	}
	th := &throttler{client: &http.Client{}}
	cfg := testConfig(t, stream)
	cfg.HTTPClient = th
	cfg.Limit = 20 // many calls, so many are refused
	reg := prometheus.NewRegistry()
	src := newTestSource(t, cfg, reg)
	h := run(t, src)
	msgs := h.wait(t, n)
	h.stop()
	var values []string
	for _, m := range h.got {
		values = append(values, m.value)
	}
	require.ElementsMatch(t, want, values)
	require.Len(t, msgs, n)
	require.Positive(t, th.injected.Load())
	require.Equal(t, float64(th.injected.Load()), testutil.ToFloat64(src.m.throttles.WithLabelValues(stream)))
	require.Equal(t, float64(n), testutil.ToFloat64(src.m.records.WithLabelValues(stream)))
}

func TestCheck(t *testing.T) {
	_, stream := newStream(t, 1)
	tests := []struct {
		name    string
		stream  string
		wantErr []string
	}{
		{name: "existing", stream: stream},
		{name: "missing", stream: "no-such-stream", wantErr: []string{`"no-such-stream"`, "not found", endpoint(t)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newTestSource(t, testConfig(t, tt.stream), nil)
			err := src.Check(context.Background())
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.wantErr {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{name: "ok", mod: func(*Config) {}},
		{name: "no stream", mod: func(c *Config) { c.Stream = "" }, wantErr: "stream: required"},
		{name: "bad start", mod: func(c *Config) { c.StartPosition = "EARLIEST" }, wantErr: `startPosition: unknown start position "EARLIEST" (want TRIM_HORIZON, LATEST, AT_TIMESTAMP)`},
		{name: "misspelt start", mod: func(c *Config) { c.StartPosition = "TRIM_HORIZONN" }, wantErr: `startPosition: unknown start position "TRIM_HORIZONN" (did you mean "TRIM_HORIZON"?`},
		{name: "timestamp without AT_TIMESTAMP", mod: func(c *Config) { c.Timestamp = time.Unix(1, 0) }, wantErr: "timestamp: only applies to startPosition AT_TIMESTAMP"},
		{name: "timestamp missing", mod: func(c *Config) { c.StartPosition = AtTimestamp }, wantErr: "timestamp: required"},
		{name: "limit", mod: func(c *Config) { c.Limit = 20000 }, wantErr: "limit"},
		{name: "endpoint", mod: func(c *Config) { c.Endpoint = "localhost" }, wantErr: "endpoint"},
		{name: "negative poll", mod: func(c *Config) { c.PollInterval = -1 }, wantErr: "pollInterval"},
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

func BenchmarkReadKinesisLocal(b *testing.B) {
	client, stream := newStream(b, 2)
	const n = 2000
	for off := 0; off < n; off += 500 {
		var entries []types.PutRecordsRequestEntry
		for i := off; i < off+500; i++ {
			entries = append(entries, types.PutRecordsRequestEntry{
				PartitionKey: aws.String("k" + strconv.Itoa(i)),
				Data:         fmt.Appendf(nil, `{"equipmentId":"e-%d","tag":"water_temperature","value":13.45}`, i),
			})
		}
		out, err := client.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		require.NoError(b, err)
		require.Zero(b, aws.ToInt32(out.FailedRecordCount))
	}
	cfg := testConfig(b, stream)
	// readShard reads a shard until it holds want records, or, when want
	// is 0, until it is idle, returning the count.
	readShard := func(src *Source, sp source.Split, want int) int {
		r, err := src.Open(context.Background(), sp, nil)
		require.NoError(b, err)
		defer r.Close()
		var batch source.Batch
		got := 0
		for want == 0 || got < want {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			err := r.Read(ctx, &batch, 1000)
			cancel()
			got += len(batch.Messages)
			batch.Reset()
			if err != nil && want == 0 {
				break
			}
		}
		return got
	}
	src := newTestSource(b, cfg, nil)
	splits, err := src.Splits(context.Background())
	require.NoError(b, err)
	counts := map[string]int{}
	for _, sp := range splits {
		counts[sp.ID] = readShard(src, sp, 0)
	}
	b.ResetTimer()
	total := 0
	for b.Loop() {
		src := newTestSource(b, cfg, nil)
		for _, sp := range splits {
			total += readShard(src, sp, counts[sp.ID])
		}
	}
	require.Equal(b, n*b.N, total)
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
}

// slowClient delays every GetRecords answer.
type slowClient struct {
	client *http.Client
	delay  time.Duration
}

func (s *slowClient) Do(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".GetRecords") {
		time.Sleep(s.delay)
	}
	return s.client.Do(req)
}

// The runtime reads with a short deadline so it can check idleness between
// reads. A GetRecords call slower than that deadline must not be cut off
// and retried forever: its records arrive on a later read.
func TestSlowGetRecordsUnderShortReadDeadlines(t *testing.T) {
	client, stream := newStream(t, 1)
	const n = 30
	for i := range n {
		put(t, client, stream, "k", fmt.Sprintf("r%02d", i))
	}
	cfg := testConfig(t, stream)
	cfg.HTTPClient = &slowClient{client: &http.Client{}, delay: 300 * time.Millisecond}
	src := newTestSource(t, cfg, nil)
	ctx := context.Background()
	splits, err := src.Splits(ctx)
	require.NoError(t, err)
	require.Len(t, splits, 1)
	rd, err := src.Open(ctx, splits[0], nil)
	require.NoError(t, err)
	defer rd.Close()
	var got int
	deadline := time.Now().Add(30 * time.Second)
	for got < n && time.Now().Before(deadline) {
		b := &source.Batch{}
		readCtx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_ = rd.Read(readCtx, b, 100)
		cancel()
		got += len(b.Messages)
	}
	require.Equal(t, n, got, "every record arrives although each GetRecords outlasts the read deadline")
}
