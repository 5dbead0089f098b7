package crash_test

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/testenv"
	kafkasrc "github.com/streamd/streamd/pkg/source/kafka"
)

// Defaults of the short form; CRASH_KILLS and CRASH_SEED override them.
const (
	defaultKills        = 20
	defaultKinesisKills = 20
	kafkaPerSplit       = 50_000 // 4 partitions: 200k records
	kafkaStep           = 50 * time.Millisecond
	// kinesis-local accepts only a few hundred records per second, so the
	// Kinesis input is smaller and spread wider in event time.
	kinesisPerSplit    = 3_000
	kinesisStep        = 500 * time.Millisecond
	checkpointInterval = "300ms"
	// checkpointTimeout bounds how long a checkpoint that cannot complete
	// holds the pipeline up.
	checkpointTimeout = "10s"
	// rollAge rolls files soon after the last window fired, so every row
	// gets published before the daemon is stopped (a stop with a savepoint
	// keeps open files staged, to resume them).
	rollAge        = "1s"
	minRun, maxRun = 300 * time.Millisecond, 2500 * time.Millisecond
)

// backend is the input server: it outlives every daemon process.
type backend interface {
	// splits is the number of partitions or shards of each input.
	splits() int
	// create makes an empty input named name.
	create(t *testing.T, name string)
	// produce appends records to the input, split s's records to split s,
	// in order.
	produce(ctx context.Context, name string, splits [][]point) error
	// source is the YAML of the pipeline source reading input name.
	source(name, group string) string
	// ends maps split IDs to their end offsets once in is fully produced,
	// or nil when positions are not offsets.
	ends(name string, in *input) map[string]int64
	// env is the daemon's extra environment.
	env() []string
}

func TestCrashKafka(t *testing.T) {
	skipShort(t)
	parts := strconv.Itoa(testenv.KafkaDefaultPartitions)
	brokers := testenv.StartKafka(t, "ref:"+parts, "crash:"+parts)
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	runCrash(t, &kafkaBackend{brokers: brokers, client: client}, kafkaPerSplit, kafkaStep, kills(t, defaultKills))
}

func TestCrashKinesis(t *testing.T) {
	skipShort(t)
	endpoint := testenv.StartKinesis(t)
	kills := kills(t, defaultKinesisKills)
	runCrash(t, &kinesisBackend{endpoint: endpoint, client: testenv.KinesisClient(endpoint), hashKeys: make(map[string][]string)}, kinesisPerSplit, kinesisStep, kills)
}

// skipShort skips the crash tests under -short: each runs for minutes.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("crash test runs for minutes; skipped with -short")
	}
}

func kills(t *testing.T, def int) int {
	t.Helper()
	v := os.Getenv("CRASH_KILLS")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "CRASH_KILLS")
	require.GreaterOrEqual(t, n, 0, "CRASH_KILLS")
	return n
}

func seed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv("CRASH_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "CRASH_SEED")
		return s
	}
	return uint64(time.Now().UnixNano())
}

// runCrash runs the reference and the crash run and compares them.
func runCrash(t *testing.T, b backend, perSplit int, step time.Duration, kills int) {
	bin := buildDaemon(t)
	in := newInput(b.splits(), perSplit, step)
	want := in.expected()
	done := in.doneWatermark()
	dir := workDir(t)
	ctx := context.Background()
	s := seed(t)
	t.Logf("input: %d records over %d splits, %d expected window results; kills %d, seed %d (rerun with CRASH_SEED=%d); work dir %s",
		in.records(), b.splits(), len(want), kills, s, s, dir)

	// Reference: the whole input is in the server before the daemon starts,
	// and the daemon runs undisturbed.
	start := time.Now()
	b.create(t, "ref")
	require.NoError(t, b.produce(ctx, "ref", in.splits), "produce reference input")
	t.Logf("reference input produced in %s", time.Since(start).Round(time.Millisecond))
	refCfg := writeConfig(t, dir, "ref", b.source("ref", "crash-ref"))
	d := startDaemon(t, bin, refCfg, filepath.Join(dir, "ref.log"), b.env())
	d.waitReading(b.splits())
	d.finish(done, b.ends("ref", in), filepath.Join(dir, "ref", "out"))
	refElapsed := time.Since(start)
	ref, refFiles := readResults(t, filepath.Join(dir, "ref", "out"))
	t.Logf("reference run: %d rows in %d files (%d staged files left), %s", rowCount(ref), refFiles, staged(filepath.Join(dir, "ref", "out")), refElapsed.Round(time.Millisecond))
	if d := compare(want, ref); !d.ok() {
		t.Errorf("reference run differs from the expected results: %s", d)
	}

	// Crash run: the input arrives in chunks, one while each daemon process
	// runs, and each process is killed at a random moment after it read
	// its splits and completed a checkpoint of its own; the last process reads the last chunk (with the sentinels)
	// and stops cleanly.
	rng := rand.New(rand.NewPCG(s, 0))
	start = time.Now()
	b.create(t, "crash")
	chunks := in.chunks(kills + 1)
	crashCfg := writeConfig(t, dir, "crash", b.source("crash", "crash-run"))
	crashLog := filepath.Join(dir, "crash.log")
	var restarts int
	var lastCheckpoints []string
	for i := range kills {
		d := startDaemon(t, bin, crashCfg, crashLog, b.env())
		if i > 0 {
			restarts++
		}
		d.waitWorking(b.splits())
		run := minRun + time.Duration(rng.Int64N(int64(maxRun-minRun)))
		fed := make(chan error, 1)
		go func() { fed <- feed(ctx, b, "crash", chunks[i], run) }()
		time.Sleep(run) // lets the daemon work; nothing is asserted on timing
		ckpt := "?"
		if id, err := d.lastCheckpoint(); err == nil {
			ckpt = strconv.FormatInt(id, 10)
		}
		d.kill()
		require.NoError(t, <-fed, "feed chunk %d", i)
		lastCheckpoints = append(lastCheckpoints, ckpt)
		if testing.Verbose() {
			t.Logf("kill %d/%d after %s of reading (last checkpoint %s)", i+1, kills, run.Round(time.Millisecond), ckpt)
		}
	}
	d = startDaemon(t, bin, crashCfg, crashLog, b.env())
	if kills > 0 {
		restarts++
	}
	d.waitReading(b.splits())
	require.NoError(t, b.produce(ctx, "crash", chunks[kills]), "produce last chunk")
	d.finish(done, b.ends("crash", in), filepath.Join(dir, "crash", "out"))
	crashElapsed := time.Since(start)
	got, gotFiles := readResults(t, filepath.Join(dir, "crash", "out"))
	t.Logf("crash run: %d rows in %d files (%d staged files left), %d kills, %d restarts, %s; checkpoint id at each kill: %s",
		rowCount(got), gotFiles, staged(filepath.Join(dir, "crash", "out")), kills, restarts, crashElapsed.Round(time.Millisecond), strings.Join(lastCheckpoints, " "))

	if d := compare(ref, got); !d.ok() {
		t.Errorf("crash run differs from the reference run (seed %d): %s", s, d)
	}
	if d := compare(want, got); !d.ok() {
		t.Errorf("crash run differs from the expected results (seed %d): %s", s, d)
	}
}

// workDir is the test's directory for pipeline files, logs, checkpoints
// and output. It is kept when the test fails, for diagnosis, or when
// CRASH_KEEP is set.
func workDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "streamd-"+t.Name()+"-")
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CRASH_KEEP") != "" {
			t.Logf("work dir kept: %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

func rowCount(rows map[resultRow]int) int {
	n := 0
	for _, c := range rows {
		n += c
	}
	return n
}

// feed produces chunk spread over about d, in ten slices, as a live input
// would arrive while the daemon runs.
func feed(ctx context.Context, b backend, name string, chunk [][]point, d time.Duration) error {
	const slices = 10
	for i := range slices {
		part := make([][]point, len(chunk))
		for s, pts := range chunk {
			part[s] = pts[i*len(pts)/slices : (i+1)*len(pts)/slices]
		}
		if err := b.produce(ctx, name, part); err != nil {
			return err
		}
		if i < slices-1 {
			time.Sleep(d / slices)
		}
	}
	return nil
}

// writeConfig writes the pipeline file of one run: source → decode →
// keyBy machine+tag → 1-minute tumbling count/sum/min/max → Parquet, with
// checkpoints every 300ms in its own directory.
func writeConfig(t *testing.T, dir, run, source string) string {
	t.Helper()
	root := filepath.Join(dir, run)
	require.NoError(t, os.MkdirAll(root, 0o755))
	doc := fmt.Sprintf(`name: crash
parallelism: 2
checkpoint: {dir: %q, interval: %s, timeout: %s}
sources:
  - name: sensors
%s
    decode:
      fields:
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
        - {name: machine, type: string, required: true}
        - {name: tag, type: string, required: true}
        - {name: value, type: float, required: true}
    eventTime: {field: ts}
    watermark: {strategy: bounded, maxOutOfOrderness: %s}
stages:
  - name: minutes
    keyBy: [machine, tag]
    window: {type: tumbling, size: 1m}
    aggregates:
      - {fn: count, as: n}
      - {fn: sum, field: value, as: total}
      - {fn: min, field: value, as: lo}
      - {fn: max, field: value, as: hi}
sinks:
  - name: out
    input: minutes
    type: parquet
    parquet: {path: %q, partition: "dt={date}/hour={hour}", rollAge: %s}
`, filepath.Join(root, "chk"), checkpointInterval, checkpointTimeout, source, maxOutOfOrderness, filepath.Join(root, "out"), rollAge)
	path := filepath.Join(root, "pipeline.yaml")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o644))
	return path
}

// kafkaBackend is an in-process Kafka cluster with one 4-partition topic per input.
type kafkaBackend struct {
	brokers []string
	client  *kgo.Client
}

func (k *kafkaBackend) splits() int { return testenv.KafkaDefaultPartitions }

// create does nothing: the topics are created with the cluster.
func (k *kafkaBackend) create(*testing.T, string) {}

func (k *kafkaBackend) produce(ctx context.Context, name string, splits [][]point) error {
	var recs []*kgo.Record
	for s, pts := range splits {
		for _, p := range pts {
			recs = append(recs, &kgo.Record{Topic: name, Partition: int32(s), Key: []byte(p.machine), Value: p.json()})
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if err := k.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce to %s: %w", name, err)
	}
	return nil
}

func (k *kafkaBackend) source(name, group string) string {
	return fmt.Sprintf(`    type: kafka
    kafka:
      brokers: [%s]
      topics: [%s]
      group: %s
      startOffset: earliest
      maxWait: 100ms
      sessionTimeout: 6s`, strings.Join(k.brokers, ", "), name, group)
}

func (k *kafkaBackend) ends(name string, in *input) map[string]int64 {
	out := make(map[string]int64, len(in.splits))
	for s, pts := range in.splits {
		out[kafkasrc.SplitID(name, s)] = int64(len(pts))
	}
	return out
}

func (k *kafkaBackend) env() []string { return nil }

// kinesisBackend is kinesis-local with one 2-shard stream per input.
type kinesisBackend struct {
	endpoint string
	client   *kinesis.Client
	// hashKeys are the starting hash keys of each stream's shards, so
	// split s's records go to shard s in order.
	hashKeys map[string][]string
}

const kinesisShards = 2

func (k *kinesisBackend) splits() int { return kinesisShards }

func (k *kinesisBackend) create(t *testing.T, name string) {
	t.Helper()
	testenv.KinesisCreateStream(t, k.client, name, kinesisShards)
	out, err := k.client.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	require.Len(t, out.Shards, kinesisShards)
	sort.Slice(out.Shards, func(i, j int) bool {
		a, _ := new(big.Int).SetString(aws.ToString(out.Shards[i].HashKeyRange.StartingHashKey), 10)
		b, _ := new(big.Int).SetString(aws.ToString(out.Shards[j].HashKeyRange.StartingHashKey), 10)
		return a.Cmp(b) < 0
	})
	for _, sh := range out.Shards {
		k.hashKeys[name] = append(k.hashKeys[name], aws.ToString(sh.HashKeyRange.StartingHashKey))
	}
}

func (k *kinesisBackend) produce(ctx context.Context, name string, splits [][]point) error {
	const maxPut = 500
	for s, pts := range splits {
		for len(pts) > 0 {
			n := min(maxPut, len(pts))
			entries := make([]types.PutRecordsRequestEntry, n)
			for i, p := range pts[:n] {
				entries[i] = types.PutRecordsRequestEntry{Data: p.json(), PartitionKey: aws.String(p.machine), ExplicitHashKey: aws.String(k.hashKeys[name][s])}
			}
			out, err := k.client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
			if err != nil {
				return fmt.Errorf("put records to %s: %w", name, err)
			}
			// A partial failure would reorder a shard's records; the local
			// server does not throttle, so treat it as an error.
			if f := aws.ToInt32(out.FailedRecordCount); f > 0 {
				return fmt.Errorf("put records to %s: %d of %d failed", name, f, n)
			}
			pts = pts[n:]
		}
	}
	return nil
}

func (k *kinesisBackend) source(name, _ string) string {
	return fmt.Sprintf(`    type: kinesis
    kinesis:
      stream: %s
      endpoint: %s
      region: %s
      startPosition: TRIM_HORIZON`, name, k.endpoint, testenv.KinesisRegion)
}

func (k *kinesisBackend) ends(string, *input) map[string]int64 { return nil }

func (k *kinesisBackend) env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=streamdtest", "AWS_SECRET_ACCESS_KEY=streamdtest", "AWS_REGION=" + testenv.KinesisRegion,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}
