// Command produce feeds the example pipelines with demo data on the local
// development servers that `make dev-up` starts, creating what they need
// first (topics, the bucket, the stream), so each example runs with one
// more command.
//
//	go run ./internal/devserver/produce logs     # examples/kafka-logs-to-s3.yaml
//	go run ./internal/devserver/produce sensors  # examples/kinesis-sensors-alerts.yaml
//
// logs creates the Kafka topics "logs" (4 partitions) and the MinIO bucket
// "streamd", then produces JSON access-log records to "logs". sensors
// creates the Kinesis stream "sensors" (2 shards) and the Kafka topic
// "alerts", then puts JSON sensor readings, a few of them too hot, to
// "sensors". Event times are the wall clock. -count and -rate set how many
// records and how fast; the flags below override the dev-server addresses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type options struct {
	broker, s3Endpoint, s3Key, s3Secret, bucket, kinesisEndpoint, stream, region string
	count                                                                        int
	rate                                                                         float64
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "produce:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.StringVar(&o.broker, "broker", env("KAFKA_BROKER", "127.0.0.1:19092"), "Kafka bootstrap broker")
	fs.StringVar(&o.s3Endpoint, "s3-endpoint", env("S3_ENDPOINT", "http://127.0.0.1:9000"), "S3 endpoint (MinIO)")
	fs.StringVar(&o.s3Key, "s3-access-key", env("S3_ACCESS_KEY", "minioadmin"), "S3 access key")
	fs.StringVar(&o.s3Secret, "s3-secret-key", env("S3_SECRET_KEY", "minioadmin"), "S3 secret key")
	fs.StringVar(&o.bucket, "bucket", env("S3_BUCKET", "streamd"), "bucket the logs example writes to")
	fs.StringVar(&o.kinesisEndpoint, "kinesis-endpoint", env("KINESIS_ENDPOINT", "http://127.0.0.1:4567"), "Kinesis endpoint")
	fs.StringVar(&o.stream, "stream", env("KINESIS_STREAM", "sensors"), "Kinesis stream of the sensors example")
	fs.StringVar(&o.region, "region", env("AWS_REGION", "us-east-1"), "AWS region")
	fs.IntVar(&o.count, "count", 20000, "records to produce")
	fs.Float64Var(&o.rate, "rate", 1000, "records per second; 0 is as fast as possible")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: produce [flags] logs|sensors")
		fs.PrintDefaults()
	}
	if len(os.Args) < 2 {
		fs.Usage()
		return errors.New("missing logs or sensors")
	}
	kind := os.Args[1]
	if err := fs.Parse(os.Args[2:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch kind {
	case "logs":
		return produceLogs(ctx, o)
	case "sensors":
		return produceSensors(ctx, o)
	}
	fs.Usage()
	return fmt.Errorf("unknown kind %q: want logs or sensors", kind)
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// pacer spreads records evenly at rate per second.
type pacer struct {
	start time.Time
	rate  float64
}

func (p pacer) wait(ctx context.Context, i int) error {
	if p.rate <= 0 {
		return ctx.Err()
	}
	d := time.Until(p.start.Add(time.Duration(float64(i) / p.rate * float64(time.Second))))
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func produceLogs(ctx context.Context, o options) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.broker), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return fmt.Errorf("connect kafka: %w", err)
	}
	defer cl.Close()
	if err := createTopic(ctx, cl, "logs", 4); err != nil {
		return err
	}
	if err := createBucket(ctx, o); err != nil {
		return err
	}
	services := []string{"checkout", "search", "auth", "catalog", "payments"}
	levels := []string{"info", "info", "info", "info", "warn", "error"}
	rng := rand.New(rand.NewPCG(1, 2))
	p := pacer{start: time.Now(), rate: o.rate}
	var (
		mu         sync.Mutex
		produceErr error
	)
	for i := 0; i < o.count; i++ {
		if err := p.wait(ctx, i); err != nil {
			break
		}
		svc := services[rng.IntN(len(services))]
		status := []int{200, 200, 200, 201, 404, 500}[rng.IntN(6)]
		v := fmt.Appendf(nil, `{"ts":%d,"id":%d,"service":%q,"level":%q,"host":"web-%02d","path":"/api/v1/%s/%d","status":%d,"latency_ms":%.3f,"msg":"request served"}`,
			time.Now().UnixMilli(), i, svc, levels[rng.IntN(len(levels))], rng.IntN(16), svc, rng.IntN(10000), status, rng.ExpFloat64()*40)
		cl.Produce(ctx, &kgo.Record{Topic: "logs", Key: []byte(svc), Value: v}, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && produceErr == nil {
				produceErr = err
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if produceErr != nil {
		return fmt.Errorf("produce to logs: %w", produceErr)
	}
	fmt.Printf("produced %d log records to topic logs on %s\n", o.count, o.broker)
	return nil
}

func produceSensors(ctx context.Context, o options) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.broker))
	if err != nil {
		return fmt.Errorf("connect kafka: %w", err)
	}
	defer cl.Close()
	if err := createTopic(ctx, cl, "alerts", 1); err != nil {
		return err
	}
	kc := kinesis.New(kinesis.Options{
		Region:       o.region,
		BaseEndpoint: aws.String(o.kinesisEndpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("dev", "dev", ""),
	})
	if err := createStream(ctx, kc, o.stream); err != nil {
		return err
	}
	sites := []string{"plant-a", "plant-b"}
	rng := rand.New(rand.NewPCG(3, 4))
	p := pacer{start: time.Now(), rate: o.rate}
	var batch []ktypes.PutRecordsRequestEntry
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(o.stream), Records: batch})
		if err != nil {
			return fmt.Errorf("put records: %w", err)
		}
		if n := aws.ToInt32(out.FailedRecordCount); n > 0 {
			return fmt.Errorf("put records: %d of %d failed", n, len(batch))
		}
		batch = batch[:0]
		return nil
	}
	sent := 0
	for i := 0; i < o.count; i++ {
		if err := p.wait(ctx, i); err != nil {
			break
		}
		sensor := fmt.Sprintf("temp-%02d", i%20)
		value := 55 + 5*rng.NormFloat64()
		if i%20 == 7 && rng.IntN(200) == 0 {
			value = 95 + 5*rng.Float64() // now and then one sensor overheats
		}
		batch = append(batch, ktypes.PutRecordsRequestEntry{
			PartitionKey: aws.String(sensor),
			Data: fmt.Appendf(nil, `{"ts":%d,"site":%q,"sensor":%q,"value":%.2f,"unit":"celsius"}`,
				time.Now().UnixMilli(), sites[(i%20)/10], sensor, value),
		})
		if len(batch) == 500 || o.rate > 0 && len(batch) >= int(o.rate/10)+1 {
			if err := flush(); err != nil {
				return err
			}
		}
		sent = i + 1
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Printf("put %d sensor readings to stream %s on %s\n", sent, o.stream, o.kinesisEndpoint)
	return nil
}

// createTopic creates a Kafka topic unless it exists.
func createTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = topic, partitions, 1
	req.Topics = append(req.Topics, t)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, r := range resp.Topics {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return nil
}

// createBucket creates the bucket unless it exists.
func createBucket(ctx context.Context, o options) error {
	c := s3.New(s3.Options{
		Region:       o.region,
		BaseEndpoint: aws.String(o.s3Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(o.s3Key, o.s3Secret, ""),
	})
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(o.bucket)}); err == nil {
		return nil
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(o.bucket)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", o.bucket, err)
	}
	return nil
}

// createStream creates a 2-shard stream unless it exists and waits until
// it is active.
func createStream(ctx context.Context, kc *kinesis.Client, stream string) error {
	_, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(2)})
	var inUse *ktypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create stream %s: %w", stream, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for stream %s to be active: %w", stream, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
