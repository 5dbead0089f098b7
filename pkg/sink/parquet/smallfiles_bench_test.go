package parquet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// BenchmarkSmallFiles measures how many files, and how large, an hour of
// a live log stream leaves in its partition: four tasks, 10,000 log
// records a minute in event time, a checkpoint every minute, the wall
// clock following event time, the watermark 5 s behind. "rollAge=1m" is
// the layout the log example used to ship (files rolled every minute);
// "hourly-commit" is today's example (rollAge 30m, sortBy, partition
// commit at the end of the hour plus 5 minutes). It reports files per
// partition and their mean and minimum size.
func BenchmarkSmallFiles(b *testing.B) {
	schema := record.MustSchema(
		record.Field{Name: "ts", Type: record.TypeTimestamp},
		record.Field{Name: "service", Type: record.TypeString},
		record.Field{Name: "level", Type: record.TypeString},
		record.Field{Name: "host", Type: record.TypeString},
		record.Field{Name: "path", Type: record.TypeString},
		record.Field{Name: "status", Type: record.TypeInt},
		record.Field{Name: "latency_ms", Type: record.TypeFloat},
		record.Field{Name: "trace", Type: record.TypeString},
	)
	services := []string{"checkout", "search", "auth", "catalog", "payments"}
	for _, bc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"rollAge=1m", func(c *Config) { c.RollAge = time.Minute }},
		{"hourly-commit", func(c *Config) {
			c.RollAge, c.RollSize, c.RowGroupSize = 30*time.Minute, 256<<20, 128<<20
			c.SortBy = []string{"service", "ts"}
			c.PartitionCommit = PartitionCommitConfig{Enabled: true, AllowedLateness: 5 * time.Minute}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var files, bytes, minSize int64
			for b.Loop() {
				dir := b.TempDir()
				cfg := DefaultConfig()
				cfg.Name, cfg.Dir, cfg.Partition, cfg.Transactional = "bench", dir, "dt={date}/hour={hour}", true
				bc.mutate(&cfg)
				s, err := New(cfg, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				tasks := []string{"t0", "t1", "t2", "t3"}
				writers := make([]sink.Writer, len(tasks))
				for i, task := range tasks {
					if writers[i], err = s.NewWriter(task, schema); err != nil {
						b.Fatal(err)
					}
					writers[i].(*Writer).now = func() time.Time { return time.UnixMilli(baseMs) }
				}
				const perSecondPerTask = 10_000 / 60 / 4
				n := 0
				start := baseMs // 05:00
				for sec := int64(0); sec < 66*60; sec++ {
					now := start + sec*1000
					for i, w := range writers {
						w.(*Writer).now = func() time.Time { return time.UnixMilli(now) }
						if sec < 3600 {
							batch := record.NewBatch(schema.Len(), perSecondPerTask)
							for k := range perSecondPerTask {
								ms := now + int64(k*1000/perSecondPerTask)
								r := batch.AppendRow(ms)
								r[0] = record.Timestamp(ms * 1000)
								r[1] = record.String(services[n%5])
								r[2] = record.String([]string{"info", "info", "warn", "error"}[n%4])
								r[3] = record.String(fmt.Sprintf("web-%02d", n%16))
								r[4] = record.String(fmt.Sprintf("/api/v1/orders/%d", n%1000))
								r[5] = record.Int(int64([]int{200, 200, 201, 404, 500}[n%5]))
								r[6] = record.Float(float64(n*7919%100_000) / 1000)
								r[7] = record.String(fmt.Sprintf("%016x", uint64(n)*0x9e3779b97f4a7c15))
								n++
							}
							if err := w.Write(ctx, batch); err != nil {
								b.Fatal(err)
							}
						}
						if err := w.(sink.Ticker).Tick(ctx, now, now-5000); err != nil {
							b.Fatal(err)
						}
						_ = i
					}
					if sec%60 == 59 {
						for i, w := range writers {
							st, err := w.(sink.Preparer).Prepare(ctx, sec)
							if err != nil {
								b.Fatal(err)
							}
							if err := s.Commit(ctx, tasks[i], st); err != nil {
								b.Fatal(err)
							}
						}
					}
				}
				hour := filepath.Join(dir, "dt=2025-11-21", "hour=05")
				entries, err := os.ReadDir(hour)
				if err != nil {
					b.Fatal(err)
				}
				files, bytes, minSize = 0, 0, 0
				var names []string
				for _, e := range entries {
					if !strings.HasSuffix(e.Name(), ".parquet") || strings.HasPrefix(e.Name(), ".") {
						continue
					}
					fi, err := e.Info()
					if err != nil {
						b.Fatal(err)
					}
					files++
					bytes += fi.Size()
					if minSize == 0 || fi.Size() < minSize {
						minSize = fi.Size()
					}
					names = append(names, e.Name())
				}
				slices.Sort(names)
				if bc.name == "hourly-commit" {
					if _, err := os.Stat(filepath.Join(hour, successName)); err != nil {
						b.Fatalf("hour 05 not committed: %v", err)
					}
				}
				for _, w := range writers {
					_ = w.Close(ctx)
				}
				_ = s.Close(ctx)
			}
			b.ReportMetric(float64(files), "files/partition")
			b.ReportMetric(float64(bytes)/float64(files)/(1<<20), "MiB/file")
			b.ReportMetric(float64(minSize)/(1<<20), "min-MiB/file")
		})
	}
}
