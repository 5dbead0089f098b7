package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/checkpoint/store"
)

// BenchmarkMinIO measures Put, Get and multipart throughput against a local
// MinIO server and reports MB/s.
func BenchmarkMinIO(b *testing.B) {
	endpoint, ak, sk := testenv.StartMinIO(b)
	testenv.MinIOBucket(b, endpoint, ak, sk, "bench")
	s := newStore(b, endpoint, ak, sk, "bench", "", nil)
	ctx := context.Background()
	for _, size := range []int{64 << 10, 8 << 20} {
		data := bytes.Repeat([]byte("streamd!"), size/8)
		b.Run(fmt.Sprintf("put/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for i := range b.N {
				if err := s.Put(ctx, fmt.Sprintf("put/%d", i), bytes.NewReader(data), int64(size)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/1e6/b.Elapsed().Seconds(), "MB/s")
		})
		b.Run(fmt.Sprintf("get/%dKiB", size>>10), func(b *testing.B) {
			if err := s.Put(ctx, "get", bytes.NewReader(data), int64(size)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				rc, err := s.Get(ctx, "get")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					b.Fatal(err)
				}
				_ = rc.Close()
			}
			b.ReportMetric(float64(b.N*size)/1e6/b.Elapsed().Seconds(), "MB/s")
		})
	}
	b.Run("multipart/4x8MiB", func(b *testing.B) {
		part := bytes.Repeat([]byte("streamd!"), 1<<20)
		const parts = 4
		b.SetBytes(parts * int64(len(part)))
		for i := range b.N {
			// Completing never replaces, so every run of the loop needs new keys.
			key := fmt.Sprintf("mp/%d-%d", b.N, i)
			id, err := s.CreateUpload(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			var done []store.Part
			for n := 1; n <= parts; n++ {
				etag, err := s.UploadPart(ctx, key, id, n, bytes.NewReader(part), int64(len(part)))
				if err != nil {
					b.Fatal(err)
				}
				done = append(done, store.Part{Num: n, ETag: etag})
			}
			if err := s.CompleteUpload(ctx, key, id, done); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*parts*len(part))/1e6/b.Elapsed().Seconds(), "MB/s")
	})
}
