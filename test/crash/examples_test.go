package crash_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/internal/modroot"
	"github.com/streamd/streamd/internal/testenv"
)

// world holds the servers the matrix cells share; they outlive every
// daemon process.
type world struct {
	t       *testing.T
	root    string
	brokers []string
	gate    *testenv.Gate
	kafka   *kgo.Client

	minioOnce             sync.Once
	minio, minioAK, minSK string
	s3                    *faultyS3
	s3c                   *s3.Client

	kinesisOnce sync.Once
	kinesis     string
	kc          *kinesis.Client

	disks map[string]*disk
}

func newWorld(t *testing.T, root string) *world {
	t.Helper()
	brokers, g := startGatedKafka(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordRetries(1000), kgo.RetryTimeout(time.Minute))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return &world{t: t, root: root, brokers: brokers, gate: g, kafka: cl, disks: map[string]*disk{}}
}

// needMinIO starts MinIO (once) with the fault proxy in front of it.
func (w *world) needMinIO(t *testing.T) {
	t.Helper()
	w.minioOnce.Do(func() {
		w.minio, w.minioAK, w.minSK = testenv.StartMinIO(w.t)
		testenv.MinIOBucket(w.t, w.minio, w.minioAK, w.minSK, "lake")
		w.s3 = startFaultyS3(w.t, w.minio, 42)
		w.s3c = testenv.MinIOClient(w.minio, w.minioAK, w.minSK)
	})
	if w.minio == "" {
		t.Skip("minio is not available")
	}
}

func (w *world) needKinesis(t *testing.T) {
	t.Helper()
	w.kinesisOnce.Do(func() {
		w.kinesis = testenv.StartKinesis(w.t)
		w.kc = testenv.KinesisClient(w.kinesis)
	})
}

// createTopic creates a topic on the gated cluster.
func (w *world) createTopic(t *testing.T, name string, partitions int32) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	tp := kmsg.NewCreateTopicsRequestTopic()
	tp.Topic, tp.NumPartitions, tp.ReplicationFactor = name, partitions, 1
	req.Topics = append(req.Topics, tp)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, w.kafka)
	require.NoError(t, err)
	require.NoError(t, kerrOf(resp.Topics[0].ErrorCode), "create topic %s", name)
}

func kerrOf(code int16) error {
	if code == 0 {
		return nil
	}
	return fmt.Errorf("kafka error code %d", code)
}

// produce writes records to topic partitions, retrying through outages.
func (w *world) produce(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return retry(ctx, "produce", func(ctx context.Context) error {
		return w.kafka.ProduceSync(ctx, recs...).FirstErr()
	})
}

// newRun prepares a run of an example: input, output and checkpoint
// locations of its own, placed on a small disk for the diskfull fault and
// behind the fault proxy for the s3 fault.
func (w *world) newRun(t *testing.T, example, fault, store string) *exampleRun {
	t.Helper()
	id := fault + "-" + store
	dir := filepath.Join(w.root, example, id)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	data := dir
	if fault == "diskfull" {
		dk := newDisk(t, dir)
		w.disks[dir] = dk
		data = dk.dir
	}
	switch example {
	case "kafka-logs":
		return w.logsRun(t, id, dir, data, fault, store)
	case "kinesis-sensors":
		return w.sensorsRun(t, id, dir, data)
	case "line-monitoring":
		return w.lineRun(t, dir, data, fault)
	}
	t.Fatalf("unknown example %q", example)
	return nil
}

// exampleFile is the path of a shipped example.
func exampleFile(t *testing.T, name string) string {
	t.Helper()
	root, err := modroot.Dir()
	require.NoError(t, err)
	return filepath.Join(root, "examples", name)
}

// The log example's input: access-log records over 4 partitions, event
// times 50 ms apart with up to 2 s of jitter (never late), latencies in
// quarters so every sum is exact, a unique message per record, and a
// sentinel per partition an hour ahead so every minute window closes.
const (
	logsPartitions = 4
	logsStep       = 50 * time.Millisecond
)

type logRec struct {
	TS        int64   `json:"ts"`
	Service   string  `json:"service"`
	Level     string  `json:"level"`
	Host      string  `json:"host"`
	Path      string  `json:"path"`
	Status    int     `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
	Msg       string  `json:"msg"`
}

func logsInput(perPart int) [][]logRec {
	out := make([][]logRec, logsPartitions)
	levels := []string{"info", "warn", "error"}
	for p := range logsPartitions {
		rng := rand.New(rand.NewPCG(uint64(p)+7, 0x1095))
		var newest int64
		for i := range perPart {
			ts := inputStart.Add(time.Duration(i)*logsStep).UnixMilli() - rng.Int64N(inputJitter.Milliseconds())
			newest = max(newest, ts)
			out[p] = append(out[p], logRec{
				TS: ts, Service: fmt.Sprintf("svc%d", rng.IntN(4)), Level: levels[rng.IntN(3)],
				Host: fmt.Sprintf("h%d", rng.IntN(6)), Path: fmt.Sprintf("/api/%d", rng.IntN(5)),
				Status: []int{200, 200, 200, 404, 500}[rng.IntN(5)], LatencyMS: float64(rng.Int64N(4000)) / 4,
				Msg: fmt.Sprintf("p%d-%06d", p, i),
			})
		}
		out[p] = append(out[p], logRec{TS: newest + sentinelAhead.Milliseconds(), Service: sentinelKey, Level: "info", Msg: fmt.Sprintf("sentinel-%d", p)})
	}
	return out
}

// logsPerPart is the size of the log example's input per partition; the
// long form makes it larger so that hundreds of kills land in its middle.
func logsPerPart(kills int) int { return max(6000, kills*400) }

func (w *world) logsRun(t *testing.T, id, dir, data, fault, store string) *exampleRun {
	t.Helper()
	kills := matrixKills(t)
	in := logsInput(logsPerPart(kills))
	topic := "logs-" + id
	w.createTopic(t, topic, logsPartitions)
	windows := map[string]bool{}
	total := 0
	for _, part := range in {
		for _, r := range part {
			total++
			if r.Service != sentinelKey {
				windows[fmt.Sprintf("%s/%s/%d", r.Service, r.Level, r.TS/60000)] = true
			}
		}
	}
	s3Endpoint := ""
	if store == "minio" {
		s3Endpoint = w.minio
		if fault == "s3" {
			s3Endpoint = w.s3.url
		}
	}
	r := &exampleRun{
		name: "kafka-logs", file: exampleFile(t, "kafka-logs-to-s3.yaml"), dir: dir, splits: logsPartitions,
		want: map[string]int{"raw-logs": total, "minutes": len(windows)},
	}
	output := func(inst string) string {
		if store == "minio" {
			return "s3://lake/" + id + "/out-" + inst
		}
		return filepath.Join(data, "out-"+inst)
	}
	checkpoints := func(inst string) string {
		if store == "minio" {
			return "s3://lake/" + id + "/chk-" + inst
		}
		return filepath.Join(data, "chk-"+inst)
	}
	r.env = func(inst string) []string {
		env := []string{
			"KAFKA_BROKER=" + w.brokers[0], "KAFKA_TOPIC=" + topic, "KAFKA_GROUP=g-" + id, "KAFKA_SESSION_TIMEOUT=6s",
			"CHECKPOINT_INTERVAL=" + checkpointInterval, "ROLL_AGE=" + rollAge,
			"OUTPUT=" + output(inst), "CHECKPOINTS=" + checkpoints(inst), "DEADLETTERS=" + filepath.Join(data, "dead-"+inst+".jsonl"),
		}
		if s3Endpoint != "" {
			env = append(env, "S3_ENDPOINT="+s3Endpoint, "S3_ACCESS_KEY="+w.minioAK, "S3_SECRET_KEY="+w.minSK)
		}
		return env
	}
	r.feed = func(ctx context.Context, i, n int, d time.Duration) error {
		return feedSlices(ctx, d, func(ctx context.Context, k, slices int) error {
			var recs []*kgo.Record
			for p, part := range in {
				chunk := part[i*len(part)/n : (i+1)*len(part)/n]
				for _, rec := range chunk[k*len(chunk)/slices : (k+1)*len(chunk)/slices] {
					v, _ := json.Marshal(rec)
					recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(p), Key: []byte(rec.Service), Value: v})
				}
			}
			return w.produce(ctx, recs)
		})
	}
	r.published = func(insts []string) (map[string]rowSet, error) {
		out := map[string]rowSet{"raw-logs": {}, "minutes": {}}
		for _, inst := range insts {
			local := output(inst)
			if store == "minio" {
				local = filepath.Join(dir, "mirror-"+inst)
				if err := mirror(w.s3c, "lake", id+"/out-"+inst+"/", local); err != nil {
					return nil, err
				}
			}
			// The sentinels' windows close only by idle advance, at a moment
			// that depends on the run: they are not compared.
			for sink, sub := range map[string]string{"raw-logs": "raw", "minutes": "per-minute"} {
				where := ""
				if sink == "minutes" {
					where = "service <> '" + sentinelKey + "'"
				}
				rows, err := parquetRows(w.t, filepath.Join(local, sub), where)
				if err != nil {
					return nil, err
				}
				for row, c := range rows {
					out[sink][row] += c
				}
			}
		}
		return out, nil
	}
	// With two instances each computes the windows of the partitions it
	// holds: per service, level and minute, their request counts add up.
	r.perInstance = map[string]func(rowSet) rowSet{"minutes": func(rows rowSet) rowSet {
		type key struct{ service, level, start any }
		sums := map[key]float64{}
		for row, c := range rows {
			var m map[string]any
			_ = json.Unmarshal([]byte(row), &m)
			n, _ := m["requests"].(float64)
			sums[key{m["service"], m["level"], m["window_start"]}] += n * float64(c)
		}
		out := rowSet{}
		for k, n := range sums {
			out[canonical(map[string]any{"service": k.service, "level": k.level, "window_start": k.start, "requests": n})] = 1
		}
		return out
	}}
	return r
}

// feedSlices calls produce for ten slices of a chunk spread over d, as a
// live input would arrive.
func feedSlices(ctx context.Context, d time.Duration, produce func(ctx context.Context, k, slices int) error) error {
	const slices = 10
	for k := range slices {
		if err := produce(ctx, k, slices); err != nil {
			return err
		}
		if k < slices-1 && d > 0 {
			time.Sleep(d / slices)
		}
	}
	return nil
}

// parquetRows reads every published Parquet file under dir with DuckDB
// (hidden staged files do not match), keeping the rows where is true.
func parquetRows(t *testing.T, dir, where string, drop ...string) (rowSet, error) {
	files := 0
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "part-") && strings.HasSuffix(d.Name(), ".parquet") {
			files++
		}
		return nil
	})
	out := rowSet{}
	if files == 0 {
		return out, nil
	}
	glob := strings.ReplaceAll(filepath.ToSlash(dir), "'", "''") + "/**/part-*.parquet"
	q := "SELECT * FROM read_parquet('" + glob + "', hive_partitioning = false)"
	if where != "" {
		q += " WHERE " + where
	}
	for _, m := range duckdb.Query(t, q) {
		out[canonical(m, drop...)]++
	}
	return out, nil
}

// mirror downloads the published objects under prefix that are not in dir
// yet (objects are immutable once published).
func mirror(c *s3.Client, bucket, prefix, dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasSuffix(key, ".parquet") {
				continue
			}
			dst := filepath.Join(dir, strings.TrimPrefix(key, prefix))
			if _, err := os.Stat(dst); err == nil {
				continue
			}
			obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				return fmt.Errorf("get %s: %w", key, err)
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			f, err := os.CreateTemp(filepath.Dir(dst), ".dl-*")
			if err != nil {
				return err
			}
			_, err = f.ReadFrom(obj.Body)
			_ = obj.Body.Close()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(f.Name(), dst)
			}
			if err != nil {
				return fmt.Errorf("download %s: %w", key, err)
			}
		}
	}
	return nil
}

// The sensor example's input: readings of 4 sensors per site over 2
// shards (a site per shard), 500 ms apart in event time with up to 2 s of
// jitter, values in quarters up to 100 (MAX_TEMP 95 makes some minutes
// alert), and a sentinel per shard an hour ahead.
const sensorShards = 2

type sensorRec struct {
	TS     int64   `json:"ts"`
	Site   string  `json:"site"`
	Sensor string  `json:"sensor"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
}

func sensorsInput(perShard int) [][]sensorRec {
	out := make([][]sensorRec, sensorShards)
	for s := range sensorShards {
		rng := rand.New(rand.NewPCG(uint64(s)+11, 0x5e45))
		var newest int64
		for i := range perShard {
			ts := inputStart.Add(time.Duration(i)*500*time.Millisecond).UnixMilli() - rng.Int64N(inputJitter.Milliseconds())
			newest = max(newest, ts)
			out[s] = append(out[s], sensorRec{TS: ts, Site: fmt.Sprintf("site%d", s), Sensor: fmt.Sprintf("t%d", rng.IntN(4)), Value: float64(rng.Int64N(401)) / 4, Unit: "C"})
		}
		out[s] = append(out[s], sensorRec{TS: newest + sentinelAhead.Milliseconds(), Site: sentinelKey, Sensor: sentinelKey, Unit: "C"})
	}
	return out
}

// sensorsPerShard is the input size per shard: kinesis-local takes a few
// hundred records per second.
func sensorsPerShard(kills int) int { return max(1200, kills*60) }

func (w *world) sensorsRun(t *testing.T, id, dir, data string) *exampleRun {
	t.Helper()
	w.needKinesis(t)
	in := sensorsInput(sensorsPerShard(matrixKills(t)))
	stream, topic := "sensors-"+id, "alerts-"+id
	testenv.KinesisCreateStream(t, w.kc, stream, sensorShards)
	hashKeys := shardHashKeys(t, w.kc, stream)
	w.createTopic(t, topic, 2)
	windows := map[string]float64{}
	for _, shard := range in {
		for _, r := range shard {
			if r.Site == sentinelKey {
				continue
			}
			k := fmt.Sprintf("%s/%s/%d", r.Site, r.Sensor, r.TS/60000)
			windows[k] = max(windows[k], r.Value)
		}
	}
	alerts := 0
	for _, mx := range windows {
		if mx > 95 {
			alerts++
		}
	}
	require.Positive(t, alerts)
	r := &exampleRun{
		name: "kinesis-sensors", file: exampleFile(t, "kinesis-sensors-alerts.yaml"), dir: dir, splits: sensorShards,
		want: map[string]int{"minutes": len(windows), "alerts-to-kafka": alerts},
	}
	r.env = func(inst string) []string {
		return []string{
			"KINESIS_STREAM=" + stream, "KINESIS_ENDPOINT=" + w.kinesis, "AWS_REGION=" + testenv.KinesisRegion,
			"AWS_ACCESS_KEY_ID=streamdtest", "AWS_SECRET_ACCESS_KEY=streamdtest",
			"KAFKA_BROKER=" + w.brokers[0], "ALERTS_TOPIC=" + topic, "MAX_TEMP=95",
			"OUT_DIR=" + filepath.Join(data, "out-"+inst), "CHECKPOINTS=" + filepath.Join(data, "chk-"+inst),
			"CHECKPOINT_INTERVAL=" + checkpointInterval,
		}
	}
	r.feed = func(ctx context.Context, i, n int, d time.Duration) error {
		return feedSlices(ctx, d, func(ctx context.Context, k, slices int) error {
			for s, shard := range in {
				chunk := shard[i*len(shard)/n : (i+1)*len(shard)/n]
				part := chunk[k*len(chunk)/slices : (k+1)*len(chunk)/slices]
				for len(part) > 0 {
					m := min(500, len(part))
					entries := make([]types.PutRecordsRequestEntry, m)
					for j, rec := range part[:m] {
						v, _ := json.Marshal(rec)
						entries[j] = types.PutRecordsRequestEntry{Data: v, PartitionKey: aws.String(rec.Sensor), ExplicitHashKey: aws.String(hashKeys[s])}
					}
					out, err := w.kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
					if err != nil {
						return fmt.Errorf("put records: %w", err)
					}
					if f := aws.ToInt32(out.FailedRecordCount); f > 0 {
						return fmt.Errorf("put records: %d of %d failed", f, m)
					}
					part = part[m:]
				}
			}
			return nil
		})
	}
	r.published = func(insts []string) (map[string]rowSet, error) {
		out := map[string]rowSet{"minutes": {}, "alerts-to-kafka": {}}
		for _, inst := range insts {
			rows, err := jsonLines(filepath.Join(data, "out-"+inst, "minutes.jsonl"))
			if err != nil {
				return nil, err
			}
			for row, c := range rows {
				out["minutes"][row] += c
			}
		}
		rows, err := w.topicRows(topic)
		if err != nil {
			return nil, err
		}
		out["alerts-to-kafka"] = rows
		return out, nil
	}
	return r
}

// shardHashKeys returns the starting hash keys of a stream's shards, in
// order, so records for shard s go there.
func shardHashKeys(t *testing.T, kc *kinesis.Client, stream string) []string {
	t.Helper()
	out, err := kc.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	sort.Slice(out.Shards, func(i, j int) bool {
		a, _ := new(big.Int).SetString(aws.ToString(out.Shards[i].HashKeyRange.StartingHashKey), 10)
		b, _ := new(big.Int).SetString(aws.ToString(out.Shards[j].HashKeyRange.StartingHashKey), 10)
		return a.Cmp(b) < 0
	})
	var keys []string
	for _, sh := range out.Shards {
		keys = append(keys, aws.ToString(sh.HashKeyRange.StartingHashKey))
	}
	return keys
}

// jsonLines reads a JSON-lines file as canonical rows; a missing file is
// empty, an incomplete last line is not read yet.
func jsonLines(path string, drop ...string) (rowSet, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return rowSet{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := rowSet{}
	for len(data) > 0 {
		i := strings.IndexByte(string(data), '\n')
		if i < 0 {
			break
		}
		var m map[string]any
		if err := json.Unmarshal(data[:i], &m); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		out[canonical(m, drop...)]++
		data = data[i+1:]
	}
	return out, nil
}

// topicRows reads every message of a topic as canonical rows.
func (w *world) topicRows(topic string) (rowSet, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := w.topicEnds(topic)
	if err != nil {
		return nil, err
	}
	out := rowSet{}
	read := map[int32]int64{}
	done := func() bool {
		for p, end := range ends {
			if read[p] < end {
				return false
			}
		}
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !done() {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read topic %s: %w", topic, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			var m map[string]any
			if json.Unmarshal(r.Value, &m) == nil {
				out[canonical(m)]++
			}
			read[r.Partition] = r.Offset + 1
		})
	}
	return out, nil
}

// topicEnds returns the end offset of every partition of a topic.
func (w *world) topicEnds(topic string) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range int32(2) {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, w.kafka)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerrOf(p.ErrorCode); err != nil {
				return nil, err
			}
			out[p.Partition] = p.Offset
		}
	}
	return out, nil
}

// The line-monitoring demo reads its built-in generator: a bounded input
// (DEMO_COUNT per split) with a fixed DEMO_START, so every run plays the
// same records; it ends by itself in a final checkpoint.
// Its records per split: enough to outlast every kill (a run reads up to
// 2.5 s, 1000 records/s per split), or a 20 s full disk.
func lineCount(kills int, fault string) int {
	if strings.HasSuffix(fault, "diskfull") {
		return 40_000
	}
	return max(6000, kills*2500)
}

func (w *world) lineRun(t *testing.T, dir, data, fault string) *exampleRun {
	t.Helper()
	count := lineCount(matrixKills(t), fault)
	r := &exampleRun{name: "line-monitoring", file: exampleFile(t, "line-monitoring.yaml"), dir: dir, splits: 4, bounded: true, input: strconv.Itoa(count)}
	// DEMO_RATE 4000 over 4 splits: 1000 records/s per split.
	r.paced = time.Duration(count) * time.Millisecond
	out := func(inst string) string { return filepath.Join(data, "out-"+inst) }
	r.env = func(inst string) []string {
		return []string{
			"DEMO_COUNT=" + strconv.Itoa(count), "DEMO_RATE=4000", "DEMO_START=2026-03-01T00:00:00Z",
			"DEMO_OUT=" + out(inst), "DEMO_CHECKPOINT_INTERVAL=" + checkpointInterval,
		}
	}
	r.feed = func(context.Context, int, int, time.Duration) error { return nil } // the generator is the input
	r.published = func(insts []string) (map[string]rowSet, error) {
		res := map[string]rowSet{}
		for _, inst := range insts {
			for sink, read := range map[string]func() (rowSet, error){
				"windows-parquet": func() (rowSet, error) { return parquetRows(w.t, filepath.Join(out(inst), "windows"), "") },
				"hottest-parquet": func() (rowSet, error) { return hottestRows(w.t, filepath.Join(out(inst), "hottest")) },
				// The watermark that made a record late and the time a dead
				// letter was written depend on the moment, not the input.
				"late":        func() (rowSet, error) { return jsonLines(filepath.Join(out(inst), "late.jsonl"), "_watermark") },
				"deadletters": func() (rowSet, error) { return jsonLines(filepath.Join(out(inst), "deadletters.jsonl"), "time") },
			} {
				rows, err := read()
				if err != nil {
					return nil, err
				}
				if res[sink] == nil {
					res[sink] = rowSet{}
				}
				for row, c := range rows {
					res[sink][row] += c
				}
			}
		}
		return res, nil
	}
	// The counts are those of the reference run (the generator's records
	// are computed again by the e2e tests); they are filled in when the
	// reference has run.
	r.want = map[string]int{"windows-parquet": 0, "hottest-parquet": 0, "late": 0, "deadletters": 0}
	return r
}

// hottestRows reads the hottest-machine results. For the on/off tag
// machine_running most machines tie (average 1), and max_by keeps the
// first of equals it sees, which depends on the order the per-machine
// results arrive in: the machine is not compared there, the maximum is.
func hottestRows(t *testing.T, dir string) (rowSet, error) {
	rows, err := parquetRows(t, dir, "tag <> 'machine_running'")
	if err != nil {
		return nil, err
	}
	ties, err := parquetRows(t, dir, "tag = 'machine_running'", "hottest_machine")
	if err != nil {
		return nil, err
	}
	for r, c := range ties {
		rows[r] += c
	}
	return rows, nil
}

// matrixKills is the kills per cell of this run of the matrix.
func matrixKills(t *testing.T) int {
	if v := os.Getenv("MATRIX_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		return n
	}
	return shortKills
}
