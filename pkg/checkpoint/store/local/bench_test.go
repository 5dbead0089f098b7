package local_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/streamd/streamd/pkg/checkpoint/store/local"
)

// BenchmarkPut measures durable writes (fsync of file and directories),
// which bound how fast checkpoints of many small state blobs can go.
func BenchmarkPut(b *testing.B) {
	s, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, size := range []int{4 << 10, 4 << 20} {
		data := bytes.Repeat([]byte{'x'}, size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := range b.N {
				if err := s.Put(ctx, fmt.Sprintf("chk/%d/state", i), bytes.NewReader(data), int64(size)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
