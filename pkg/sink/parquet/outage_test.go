package parquet

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/internal/s3proxy"
	"github.com/streamd/streamd/internal/testenv"
	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
	"github.com/streamd/streamd/pkg/record"
)

// An S3 endpoint that answers 503 SlowDown to everything for half a
// minute delays a Parquet sink with the default settings, and meanwhile
// the sink says it is retrying; once the endpoint is back the write goes
// through and every row is in the published file.
//
// Before, the sink's first request failed after 5 attempts (about 25 s of
// backoff at most) and failed the pipeline.
func TestS3OutageIsRiddenOut(t *testing.T) {
	endpoint, ak, sk := testenv.StartMinIO(t)
	testenv.MinIOBucket(t, endpoint, ak, sk, "lake")
	p, err := s3proxy.New(s3proxy.Config{Target: endpoint, Seed: 7})
	require.NoError(t, err)
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cfg := DefaultConfig() // s3.retryFor and every other retry setting at its default
	cfg.Name = "outage"
	cfg.Dir = "s3://lake/out"
	cfg.S3.Endpoint, cfg.S3.PathStyle, cfg.S3.AccessKey, cfg.S3.SecretKey = front.URL, true, ak, sk
	s, err := New(cfg, nil, nil)
	require.NoError(t, err)
	w, err := s.NewWriter("window-0", testSchema)
	require.NoError(t, err)

	p.SetRates(1, 0, 0, 0) // every request answers 503 SlowDown
	const rows = 500
	done := make(chan error, 1)
	go func() {
		b := record.NewBatch(testSchema.Len(), rows)
		for n := range rows {
			fillRow(b.AppendRow(rowTime(0)), n)
		}
		if err := w.Write(ctx, b); err != nil {
			done <- err
			return
		}
		done <- w.Close(ctx)
	}()
	outage := time.NewTimer(30 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("the write ended during the outage: %v", err)
	case <-outage.C:
	}
	if rt, ok := any(s).(interface{ Retrying() error }); ok {
		require.ErrorContains(t, rt.Retrying(), "SlowDown", "the sink says it is retrying")
	}
	require.Greater(t, p.Counts().Errors, int64(cfg.S3.MaxAttempts), "more attempts than maxAttempts")
	p.SetRates(0, 0, 0, 0)
	require.NoError(t, <-done, "the write started during the outage")
	require.NoError(t, s.Close(ctx))
	if rt, ok := any(s).(interface{ Retrying() error }); ok {
		require.NoError(t, rt.Retrying())
	}

	sc := s3store.DefaultConfig()
	sc.Bucket, sc.Endpoint, sc.PathStyle, sc.AccessKey, sc.SecretKey = "lake", endpoint, true, ak, sk
	st, err := s3store.New(sc, nil, nil)
	require.NoError(t, err)
	dir := t.TempDir()
	require.Len(t, download(t, st, "out/", dir), 1)
	got := duckdb.Query(t, fmt.Sprintf(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM read_parquet('%s/**/*.parquet')`, dir))
	require.Equal(t, []map[string]any{{"n": float64(rows), "ids": float64(rows)}}, got)
}
