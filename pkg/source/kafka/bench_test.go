package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/source"
)

// BenchmarkKafkaSource reads pre-produced 200-byte JSON records from four
// partitions of an in-process broker, one reader goroutine per partition.
func BenchmarkKafkaSource(b *testing.B) {
	const (
		partitions = 4
		total      = 500_000
	)
	brokers := testenv.StartKafka(b, fmt.Sprintf("bench:%d", partitions))
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	pad := strings.Repeat("x", 200)
	var wg sync.WaitGroup
	for i := range total {
		v := fmt.Appendf(nil, `{"ts":%d,"host":"web-%03d","msg":"%s"}`, 1767225600000+i, i%1000, pad)
		v = v[:200]
		v[199] = '}'
		wg.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Topic: "bench", Partition: int32(i % partitions), Value: v},
			func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
				wg.Done()
			})
	}
	wg.Wait()
	cl.Close()

	src, err := New(testConfig(brokers, "bench"), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var bytes int64
	for b.Loop() {
		var mu sync.Mutex
		var rg sync.WaitGroup
		for p := range partitions {
			rg.Go(func() {
				ctx := context.Background()
				r, err := src.Open(ctx, source.Split{ID: SplitID("bench", p)}, &source.Position{Offset: 0})
				if err != nil {
					b.Error(err)
					return
				}
				defer r.Close()
				var batch source.Batch
				var n, nb int64
				for n < total/partitions {
					batch.Reset()
					if err := r.Read(ctx, &batch, 1000); err != nil {
						b.Error(err)
						return
					}
					for _, m := range batch.Messages {
						nb += int64(len(m.Value))
					}
					n += int64(len(batch.Messages))
				}
				mu.Lock()
				bytes += nb
				mu.Unlock()
			})
		}
		rg.Wait()
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(total*b.N)/secs, "records/s")
	b.ReportMetric(float64(bytes)/secs/1e6, "MB/s")
}
