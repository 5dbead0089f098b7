package parquet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamd/streamd/pkg/record"
)

// BenchmarkWriter writes 1024-row batches of a typical metrics row (two
// strings, two floats, an int and a timestamp) with zstd and reports rows/s
// and MB/s: MB/s is raw input (string bytes plus eight bytes per number),
// file-MB/s is Parquet written.
func BenchmarkWriter(b *testing.B) {
	schema := record.MustSchema(
		record.Field{Name: "host", Type: record.TypeString},
		record.Field{Name: "metric", Type: record.TypeString},
		record.Field{Name: "value", Type: record.TypeFloat},
		record.Field{Name: "p99", Type: record.TypeFloat},
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
		r[3] = record.Float(12.5 + float64(i%7))
		r[4] = record.Int(int64(i * 31))
		r[5] = record.Timestamp((baseMs + int64(i)) * 1000)
	}
	var raw int64
	for _, v := range batch.Values {
		raw += int64(len(v.S))
		if v.T != record.TypeString {
			raw += 8
		}
	}
	for _, bc := range []struct{ name, partition string }{
		{"unpartitioned", ""},
		{"partitioned", "dt={date}/hour={hour}/host={host}"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Dir = b.TempDir()
			cfg.Partition = bc.partition
			s, err := New(cfg, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			w, err := s.NewWriter("bench", schema)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(raw)
			b.ResetTimer()
			for b.Loop() {
				if err := w.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(ctx); err != nil {
				b.Fatal(err)
			}
			elapsed := b.Elapsed().Seconds()
			var size int64
			err = filepath.Walk(cfg.Dir, func(_ string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					size += fi.Size()
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)*rows/elapsed, "rows/s")
			b.ReportMetric(float64(size)/1e6/elapsed, "file-MB/s")
		})
	}
}

// BenchmarkPrepare measures a checkpoint of a writer with open files in
// several partitions, each with a small tail, as at a short checkpoint
// interval: reports checkpoints/s and the state size.
func BenchmarkPrepare(b *testing.B) {
	for _, partitions := range []int{1, 16} {
		b.Run(fmt.Sprintf("partitions=%d", partitions), func(b *testing.B) {
			schema := record.MustSchema(
				record.Field{Name: "host", Type: record.TypeString},
				record.Field{Name: "value", Type: record.TypeFloat},
				record.Field{Name: "ts", Type: record.TypeTimestamp},
			)
			const rows = 256
			batch := record.NewBatch(schema.Len(), rows)
			for i := range rows {
				r := batch.AppendRow(baseMs + int64(i))
				r[0] = record.String(fmt.Sprintf("host-%03d", i%partitions))
				r[1] = record.Float(float64(i) * 0.37)
				r[2] = record.Timestamp((baseMs + int64(i)) * 1000)
			}
			cfg := DefaultConfig()
			cfg.Dir = b.TempDir()
			cfg.Partition = "host={host}"
			cfg.Transactional = true
			s, err := New(cfg, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			w, err := s.NewWriter("bench", schema)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var size int
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := w.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
				st, err := w.(*Writer).Prepare(ctx, int64(i))
				if err != nil {
					b.Fatal(err)
				}
				size = len(st)
			}
			if err := w.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkpoints/s")
			b.ReportMetric(float64(size), "state-bytes")
		})
	}
}
