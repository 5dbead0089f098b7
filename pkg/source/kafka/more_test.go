package kafka

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/source"
)

// readFirst opens split and returns the first message read.
func readFirst(t *testing.T, src *Source, split string, start *source.Position) source.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	r, err := src.Open(ctx, source.Split{ID: split}, start)
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Close()) }()
	var b source.Batch
	require.NoError(t, r.Read(ctx, &b, 1))
	require.Len(t, b.Messages, 1)
	return b.Messages[0]
}

func TestStartPositions(t *testing.T) {
	brokers := testenv.StartKafka(t, "pos:2")
	base := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	var recs []*kgo.Record
	for p := range 2 {
		for i := range 10 {
			recs = append(recs, &kgo.Record{Topic: "pos", Partition: int32(p), Value: fmt.Appendf(nil, "%d", i),
				Timestamp: base.Add(time.Duration(i) * time.Second)})
		}
	}
	produce(t, brokers, recs)

	tests := []struct {
		name    string
		start   string
		offsets map[string]int64
		pos     *source.Position
		split   string
		want    int64
	}{
		{name: "earliest", start: StartEarliest, split: "pos/0", want: 0},
		{name: "timestamp", start: base.Add(5 * time.Second).Format(time.RFC3339), split: "pos/1", want: 5},
		{name: "offsets listed", start: StartOffsets, offsets: map[string]int64{"pos/0": 7}, split: "pos/0", want: 7},
		{name: "offsets not listed start earliest", start: StartOffsets, offsets: map[string]int64{"pos/0": 7}, split: "pos/1", want: 0},
		{name: "explicit position wins", start: StartOffsets, offsets: map[string]int64{"pos/0": 7}, pos: &source.Position{Offset: 3}, split: "pos/0", want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(brokers, "pos")
			cfg.StartOffset, cfg.Offsets = tt.start, tt.offsets
			src := newSource(t, cfg, nil)
			m := readFirst(t, src, tt.split, tt.pos)
			require.Equal(t, tt.want, m.Position.Offset)
			require.Equal(t, fmt.Sprint(tt.want), string(m.Value))
		})
	}

	t.Run("latest", func(t *testing.T) {
		cfg := testConfig(brokers, "pos")
		cfg.StartOffset = StartLatest
		src := newSource(t, cfg, nil)
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		r, err := src.Open(ctx, source.Split{ID: "pos/0"}, nil)
		require.NoError(t, err)
		defer r.Close()
		got := make(chan source.Message, 1)
		go func() {
			var b source.Batch
			if err := r.Read(ctx, &b, 1); err == nil {
				got <- b.Messages[0]
			}
			close(got)
		}()
		// The reader resolves "latest" when it starts fetching: keep adding
		// records until one arrives; none of the first ten may.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case m, ok := <-got:
				require.True(t, ok, "read failed")
				require.GreaterOrEqual(t, m.Position.Offset, int64(10))
				require.Equal(t, "new", string(m.Value))
				return
			case <-tick.C:
				produce(t, brokers, []*kgo.Record{{Topic: "pos", Partition: 0, Value: []byte("new")}})
			}
		}
	})
}

func TestGroupStartsAtCommittedOffset(t *testing.T) {
	brokers := testenv.StartKafka(t, "c:1")
	produce(t, brokers, records("c", 1, 20))
	cfg := testConfig(brokers, "c")
	cfg.Group = "gc"
	cfg.DisableAutoCommit = true

	// First member commits offset 12 through Commit and leaves.
	src := newSource(t, cfg, nil)
	ctx, cancel := context.WithCancel(context.Background())
	out := newSeen()
	r := startRunner(ctx, t, src, out)
	out.waitFor(t, "20 records", func(s *seen) bool { return s.total == 20 })
	require.NoError(t, src.Commit(context.Background(), map[string]int64{"c/0": 12, "other/0": 3}))
	require.Equal(t, map[string]int64{"c/0": 12}, fetchCommitted(t, brokers, "gc", "c", 1))
	cancel()
	r.wg.Wait()

	// The next member of the group resumes there.
	src2 := newSource(t, cfg, nil)
	ctx2, cancel2 := context.WithCancel(context.Background())
	out2 := newSeen()
	r2 := startRunner(ctx2, t, src2, out2)
	out2.waitFor(t, "8 records", func(s *seen) bool { return s.total == 8 })
	cancel2()
	r2.wg.Wait()
	require.Equal(t, int64(12), out2.offsets["c/0"][0])
}

func TestAutoCommitIsVisibleToLagTooling(t *testing.T) {
	brokers := testenv.StartKafka(t, "ac:2")
	produce(t, brokers, records("ac", 2, 30))
	cfg := testConfig(brokers, "ac")
	cfg.Group = "gac"
	cfg.CommitInterval = 50 * time.Millisecond
	src := newSource(t, cfg, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newSeen()
	r := startRunner(ctx, t, src, out)
	out.waitFor(t, "60 records", func(s *seen) bool { return s.total == 60 })
	deadline := time.Now().Add(testTimeout)
	for {
		got := fetchCommitted(t, brokers, "gac", "ac", 2)
		if got["ac/0"] == 30 && got["ac/1"] == 30 {
			break
		}
		require.True(t, time.Now().Before(deadline), "offsets not committed: %v", got)
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	r.wg.Wait()
}

func TestRebalanceLosesNothing(t *testing.T) {
	const partitions = 4
	brokers := testenv.StartKafka(t, fmt.Sprintf("rb:%d", partitions))
	cfg := testConfig(brokers, "rb")
	cfg.Group = "grb"
	cfg.CommitInterval = 100 * time.Millisecond

	// Produce continuously until the rebalances are over.
	var produced sync.WaitGroup
	stopProducing := make(chan struct{})
	var mu sync.Mutex
	total := 0
	produced.Go(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Error(err)
			return
		}
		defer cl.Close()
		for i := 0; ; i++ {
			select {
			case <-stopProducing:
				return
			default:
			}
			recs := records("rb", partitions, 5)
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			total += len(recs)
			mu.Unlock()
			time.Sleep(10 * time.Millisecond) // pacing, not an assertion
		}
	})

	outA, outB := newSeen(), newSeen()
	srcA := newSource(t, cfg, nil)
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	rA := startRunner(ctxA, t, srcA, outA)
	rA.waitActive(t, partitions)
	outA.waitFor(t, "first records", func(s *seen) bool { return s.total > 0 })

	// A second member joins: partitions move to it and are revoked from A.
	srcB := newSource(t, cfg, nil)
	ctxB, cancelB := context.WithCancel(context.Background())
	rB := startRunner(ctxB, t, srcB, outB)
	rB.waitActive(t, partitions/2)
	rA.waitActive(t, partitions/2)
	outB.waitFor(t, "records at the second member", func(s *seen) bool { return s.total > 0 })
	// Every partition the second member got was revoked from the first.
	movedToB := map[string]bool{}
	rB.mu.Lock()
	for _, ev := range rB.events {
		if !ev.Revoked {
			movedToB[ev.Split.ID] = true
		}
	}
	rB.mu.Unlock()
	require.Len(t, movedToB, partitions/2)
	revokedA := rA.revoked()
	for id := range movedToB {
		require.Contains(t, revokedA, id, "revoke for a partition that moved")
	}

	// It leaves again: A gets everything back.
	cancelB()
	rB.wg.Wait()
	rA.waitActive(t, partitions)
	close(stopProducing)
	produced.Wait()

	mu.Lock()
	want := total / partitions
	mu.Unlock()
	covered := func(s *seen) bool {
		for p := range partitions {
			split := SplitID("rb", p)
			if !contiguous(append(append([]int64(nil), outA.offsets[split]...), outB.offsets[split]...), want) {
				return false
			}
		}
		return true
	}
	// Lock order: outA is held by waitFor; outB is read under its own lock.
	outA.waitFor(t, "every offset", func(s *seen) bool {
		outB.mu.Lock()
		defer outB.mu.Unlock()
		return covered(s)
	})
	cancelA()
	rA.wg.Wait()
}

// When the group rebalances, every partition is revoked while the ending
// generation can still commit: a member that drains a partition and commits
// its position in the revocation hands it over exactly, and the next owner
// starts at that offset (a revocation after the new assignment could no
// longer commit, and the next owner started from an older offset).
func TestGenerationEndRevokesEveryPartition(t *testing.T) {
	const partitions = 4
	brokers := testenv.StartKafka(t, fmt.Sprintf("gen:%d", partitions))
	produce(t, brokers, records("gen", partitions, 200))
	cfg := testConfig(brokers, "gen")
	cfg.Group = "ggen"
	cfg.DisableAutoCommit = true // offsets are committed by the revocation only

	outA, outB := newSeen(), newSeen()
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	rA := newRunner(t, newSource(t, cfg, nil), outA)
	rA.commitOnRevoke = true
	rA.start(ctxA)
	rA.waitActive(t, partitions)
	outA.waitFor(t, "every record at the first member", func(s *seen) bool { return s.total == partitions*200 })

	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	rB := startRunner(ctxB, t, newSource(t, cfg, nil), outB)
	rB.waitActive(t, partitions/2)
	rA.waitActive(t, partitions/2)

	rA.mu.Lock()
	var order []string
	for _, ev := range rA.events {
		kind := "+"
		if ev.Revoked {
			kind = "-"
		}
		order = append(order, kind+ev.Split.ID)
	}
	require.Empty(t, rA.commitErrs, "commits in the revocation go through the ending generation")
	require.Len(t, rA.committed, partitions, "every partition was revoked and committed")
	rA.mu.Unlock()
	require.Equal(t, []string{"+gen/0", "+gen/1", "+gen/2", "+gen/3", "-gen/0", "-gen/1", "-gen/2", "-gen/3"}, order[:8],
		"every partition is revoked before the next generation assigns any")
	require.Len(t, order, 10)

	// The second member starts each of its partitions where the first
	// stopped: it reads nothing again.
	time.Sleep(300 * time.Millisecond) // a read of already-read records would show up by now
	outB.mu.Lock()
	require.Zero(t, outB.total, "the next owner starts at the committed offset")
	outB.mu.Unlock()
	produce(t, brokers, records("gen", partitions, 1))
	outB.waitFor(t, "new records at the second member", func(s *seen) bool { return s.total == partitions/2 })
	outB.mu.Lock()
	for split, offs := range outB.offsets {
		require.Equal(t, []int64{200}, offs, "split %s", split)
	}
	outB.mu.Unlock()
	cancelB()
	rB.wg.Wait()
	cancelA()
	rA.wg.Wait()
}

// contiguous reports whether offs covers 0..n-1.
func contiguous(offs []int64, n int) bool {
	have := make([]bool, n)
	for _, o := range offs {
		if o < int64(n) {
			have[o] = true
		}
	}
	for _, h := range have {
		if !h {
			return false
		}
	}
	return true
}

func TestCompressionCodecs(t *testing.T) {
	brokers := testenv.StartKafka(t, "z:1")
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	var next int64
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			var recs []*kgo.Record
			for i := range 50 {
				recs = append(recs, &kgo.Record{Topic: "z", Value: fmt.Appendf(nil, `{"codec":%q,"i":%d,"pad":"%s"}`, c.name, i, strings.Repeat("x", 100))})
			}
			produce(t, brokers, recs, kgo.ProducerBatchCompression(c.codec))
			src := newSource(t, testConfig(brokers, "z"), nil)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			r, err := src.Open(ctx, source.Split{ID: "z/0"}, &source.Position{Offset: next})
			require.NoError(t, err)
			defer r.Close()
			var got []string
			var b source.Batch
			for len(got) < 50 {
				b.Reset()
				require.NoError(t, r.Read(ctx, &b, 50-len(got)))
				for _, m := range b.Messages {
					got = append(got, string(m.Value))
				}
			}
			for i, v := range got {
				require.Equal(t, string(recs[i].Value), v)
			}
			next += 50
		})
	}
}

func TestMessageMapping(t *testing.T) {
	brokers := testenv.StartKafka(t, "m:1")
	ts := time.UnixMilli(1767225600123)
	produce(t, brokers, []*kgo.Record{
		{Topic: "m", Key: []byte("k1"), Value: []byte("v1"), Timestamp: ts,
			Headers: []kgo.RecordHeader{{Key: "h1", Value: []byte("a")}, {Key: "h2", Value: []byte("b")}}},
		{Topic: "m", Value: []byte("v2"), Timestamp: ts.Add(time.Second)},
	})
	reg := prometheus.NewRegistry()
	src := newSource(t, testConfig(brokers, "m"), reg)
	splits, err := src.Splits(context.Background())
	require.NoError(t, err)
	require.Equal(t, []source.Split{{ID: "m/0"}}, splits)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	r, err := src.Open(ctx, splits[0], nil)
	require.NoError(t, err)
	var b source.Batch
	for len(b.Messages) < 2 {
		require.NoError(t, r.Read(ctx, &b, 2-len(b.Messages)))
	}
	m0, m1 := b.Messages[0], b.Messages[1]
	require.Equal(t, "k1", string(m0.Key))
	require.Equal(t, "v1", string(m0.Value))
	require.Equal(t, []source.Header{{Key: "h1", Value: []byte("a")}, {Key: "h2", Value: []byte("b")}}, m0.Headers)
	require.Equal(t, ts.UnixMilli(), m0.Timestamp)
	require.Equal(t, int64(0), m0.Position.Offset)
	require.Nil(t, m1.Key)
	require.Empty(t, m1.Headers)
	require.Equal(t, ts.UnixMilli()+1000, m1.Timestamp)
	require.Equal(t, int64(1), m1.Position.Offset)
	require.Equal(t, source.Position{Offset: 2}, r.(*Reader).Position())
	require.Equal(t, 0.0, testutil.ToFloat64(src.lag.WithLabelValues("m", "0")))
	require.NoError(t, r.Close())
	require.Positive(t, testutil.ToFloat64(src.fetches))
	require.Positive(t, testutil.ToFloat64(src.fetchBytes))
}

func TestCheck(t *testing.T) {
	brokers := testenv.StartKafka(t, "present:1")
	tests := []struct {
		name    string
		brokers []string
		topics  []string
		want    []string // substrings of the error; none means success
	}{
		{name: "ok", brokers: brokers, topics: []string{"present"}},
		{name: "unreachable broker", brokers: []string{"127.0.0.1:1"}, topics: []string{"present"},
			want: []string{"no broker reachable", "broker 127.0.0.1:1", "check that the broker runs"}},
		{name: "one of two brokers unreachable", brokers: []string{brokers[0], "127.0.0.1:1"}, topics: []string{"present"},
			want: []string{"broker 127.0.0.1:1"}},
		{name: "missing topic", brokers: brokers, topics: []string{"present", "absent"},
			want: []string{`topic "absent" does not exist`, "create it or fix the topic name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newSource(t, testConfig(tt.brokers, tt.topics...), nil)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			err := src.Check(ctx)
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			t.Log(err)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "present\"")
		})
	}
	t.Run("missing topic from Splits", func(t *testing.T) {
		src := newSource(t, testConfig(brokers, "absent"), nil)
		_, err := src.Splits(context.Background())
		require.ErrorContains(t, err, `"absent" do not exist`)
	})
}

func TestKcatProducedInput(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat not installed: run scripts/install-kcat.sh")
		}
		t.Skip("kcat not installed (scripts/install-kcat.sh)")
	}
	brokers := testenv.StartKafka(t, "kc:1")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-P", "-b", brokers[0], "-t", "kc", "-K:")
	cmd.Stdin = strings.NewReader("k1:{\"a\":1}\nk2:{\"a\":2}\nk3:{\"a\":3}\n")
	outb, err := cmd.CombinedOutput()
	require.NoError(t, err, string(outb))

	src := newSource(t, testConfig(brokers, "kc"), nil)
	r, err := src.Open(ctx, source.Split{ID: "kc/0"}, nil)
	require.NoError(t, err)
	defer r.Close()
	var b source.Batch
	for len(b.Messages) < 3 {
		require.NoError(t, r.Read(ctx, &b, 3-len(b.Messages)))
	}
	for i, m := range b.Messages {
		require.Equal(t, fmt.Sprintf("k%d", i+1), string(m.Key))
		require.Equal(t, fmt.Sprintf(`{"a":%d}`, i+1), string(m.Value))
	}
}
