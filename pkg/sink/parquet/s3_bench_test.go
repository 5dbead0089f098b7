package parquet

import (
	"context"
	"fmt"
	"testing"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/record"
)

// BenchmarkWriterMinIO writes 1024-row batches of a typical metrics row to
// a local MinIO server through multipart uploads and reports rows/s.
func BenchmarkWriterMinIO(b *testing.B) {
	endpoint, ak, sk := testenv.StartMinIO(b)
	testenv.MinIOBucket(b, endpoint, ak, sk, "bench")
	schema := record.MustSchema(
		record.Field{Name: "host", Type: record.TypeString},
		record.Field{Name: "metric", Type: record.TypeString},
		record.Field{Name: "value", Type: record.TypeFloat},
		record.Field{Name: "count", Type: record.TypeInt},
		record.Field{Name: "ts", Type: record.TypeTimestamp},
	)
	const rows = 1024
	batch := record.NewBatch(schema.Len(), rows)
	for i := range rows {
		r := batch.AppendRow(baseMs + int64(i))
		r[0] = record.String(fmt.Sprintf("host-%03d.example", i%100))
		r[1] = record.String(fmt.Sprintf("cpu.core%d.user", i%16))
		r[2] = record.Float(float64(i) * 0.37)
		r[3] = record.Int(int64(i * 31))
		r[4] = record.Timestamp((baseMs + int64(i)) * 1000)
	}
	cfg := DefaultConfig()
	cfg.Name = "bench"
	cfg.Dir = "s3://bench/out"
	cfg.Partition = "dt={date}/hour={hour}"
	cfg.RollSize, cfg.RowGroupSize = 32<<20, 4<<20
	cfg.S3.Endpoint, cfg.S3.PathStyle, cfg.S3.AccessKey, cfg.S3.SecretKey = endpoint, true, ak, sk
	s, err := New(cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	w, err := s.NewWriter("bench", schema)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := w.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
}
