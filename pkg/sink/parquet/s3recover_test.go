package parquet

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/internal/parquetcheck"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
	"github.com/streamd/streamd/pkg/sink"
)

// minioStore starts MinIO with a bucket "lake" and returns a store on it.
// MinIO lists multipart uploads only for an exact object name, so these
// tests fail wherever recovery relies on listing uploads by prefix.
func minioStore(t *testing.T) store.Store {
	t.Helper()
	endpoint, ak, sk := testenv.StartMinIO(t)
	testenv.MinIOBucket(t, endpoint, ak, sk, "lake")
	sc := s3store.DefaultConfig()
	sc.Bucket, sc.Endpoint, sc.PathStyle, sc.AccessKey, sc.SecretKey = "lake", endpoint, true, ak, sk
	st, err := s3store.New(sc, nil, nil)
	require.NoError(t, err)
	return st
}

func minioSink(t *testing.T, st store.Store, prefix string, mutate func(*Config)) *Sink {
	return txnSink(t, prefix, st, func(c *Config) {
		c.PartSize = store.MinPartSize
		if mutate != nil {
			mutate(c)
		}
	})
}

// intents lists the staging intents below prefix.
func intents(t *testing.T, st store.Store, prefix string) []string {
	t.Helper()
	objs, err := st.List(context.Background(), prefix+"/"+intentDir)
	require.NoError(t, err)
	var out []string
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}

// openUploads returns the open uploads of the exact keys.
func openUploads(t *testing.T, st store.Store, keys ...string) []store.UploadInfo {
	t.Helper()
	var out []store.UploadInfo
	for _, k := range keys {
		ups, err := st.ListUploads(context.Background(), k)
		require.NoError(t, err)
		for _, u := range ups {
			if u.Key == k {
				out = append(out, u)
			}
		}
	}
	return out
}

func TestLongRunOnMinIOReadBackByThreeReaders(t *testing.T) {
	parquetcheck.Require(t)
	st := minioStore(t)
	ids := longRun(t, func() *Sink { return minioSink(t, st, "events", longRunConfig) })
	dir := t.TempDir()
	keys := download(t, st, "events/", dir)
	checkLongRun(t, parquetFiles(t, dir), ids)
	for i := range keys {
		keys[i] = "events/" + keys[i]
	}
	require.Empty(t, openUploads(t, st, keys...), "no upload left open")
	require.Empty(t, intents(t, st, "events"), "no staging intent left")
}

// TestMinIORestoreFromSavepointEqualsUninterrupted stops a run with a
// savepoint (prepare, commit, close) and restarts it from that savepoint,
// against an uninterrupted run of the same input: the files hold the same
// rows, value by value.
func TestMinIORestoreFromSavepointEqualsUninterrupted(t *testing.T) {
	ctx := context.Background()
	st := minioStore(t)
	mutate := func(c *Config) { c.Partition, c.RollRows = "dt={date}/hour={hour}/t={tenant}", 400 }

	// Uninterrupted.
	s := minioSink(t, st, "ref", mutate)
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 0, 1500, "")
	final, err := w.(*Writer).PrepareFinal(ctx, 1)
	require.NoError(t, err)
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Commit(ctx, "w", final))
	require.NoError(t, s.Close(ctx))

	// Stopped with a savepoint after 700 rows (files open in both
	// partitions), then restarted from it.
	s = minioSink(t, st, "run", mutate)
	w, err = s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 0, 700, "")
	savepoint := prepare(t, w, 1)
	require.NoError(t, s.Commit(ctx, "w", savepoint))
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Close(ctx))
	sp, err := decodeState(savepoint)
	require.NoError(t, err)
	require.NotEmpty(t, sp.Open, "the savepoint has open files to resume")

	s = minioSink(t, st, "run", mutate)
	require.NoError(t, s.Recover(ctx, map[string][]byte{"w": savepoint}), "restore from the savepoint on MinIO")
	w, err = s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 700, 1500, "")
	final, err = w.(*Writer).PrepareFinal(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Commit(ctx, "w", final))
	require.NoError(t, s.Close(ctx))

	refDir, runDir := t.TempDir(), t.TempDir()
	refKeys := download(t, st, "ref/", refDir)
	runKeys := download(t, st, "run/", runDir)
	require.Equal(t, refKeys, runKeys, "the same files under the same names")
	q := `SELECT * EXCLUDE (filename), regexp_extract(filename, '[^/]+/[^/]+/[^/]+/[^/]+$') AS file
		FROM read_parquet('%s/**/*.parquet', filename=true, hive_partitioning=false) ORDER BY id`
	ref := duckdb.Query(t, fmt.Sprintf(q, refDir))
	require.Len(t, ref, 1500)
	require.Equal(t, ref, duckdb.Query(t, fmt.Sprintf(q, runDir)))
	require.Empty(t, intents(t, st, "run"))
}

// TestMinIOCrashLeavesNoAbandonedUpload crashes after a checkpoint with
// uploads the checkpoint does not know (a new partition, parts past the
// checkpoint), and requires the next start to abort them, idempotently, and
// to leave no upload and no staging intent behind at the end.
func TestMinIOCrashLeavesNoAbandonedUpload(t *testing.T) {
	ctx := context.Background()
	st := minioStore(t)
	mutate := func(c *Config) { c.Partition = "t={tenant}" }
	s := minioSink(t, st, "out", mutate)
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 0, 100, "")
	cp := prepare(t, w, 1)
	require.NoError(t, s.Commit(ctx, "w", cp))
	writeIDs(t, w, 100, 150, "")
	writeIDs(t, w, 150, 160, "lost") // a file no checkpoint knows
	lost := "out/t=lost/part-w-000002.parquet"
	require.Len(t, openUploads(t, st, lost), 1)
	// Crash: the writer is dropped.

	for range 2 { // a second start from the same checkpoint finds nothing more to do
		s = minioSink(t, st, "out", mutate)
		require.NoError(t, s.Recover(ctx, map[string][]byte{"w": cp}))
		require.Empty(t, openUploads(t, st, lost), "the abandoned upload is aborted")
		require.Len(t, intents(t, st, "out"), 2, "only the checkpoint's files keep their intents")
	}
	w, err = s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 1000, 1050, "")
	final, err := w.(sink.Preparer).Prepare(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, s.Commit(ctx, "w", final))
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Close(ctx))
	// A restart from the last checkpoint finishes its open files.
	s = minioSink(t, st, "out", mutate)
	require.NoError(t, s.Recover(ctx, map[string][]byte{"w": final}))
	require.NoError(t, s.Close(ctx))

	dir := t.TempDir()
	keys := download(t, st, "out/", dir)
	require.ElementsMatch(t, []string{"t=acme/part-w-000000.parquet", "t=we%2Fird %22co%22/part-w-000001.parquet"}, keys)
	require.Empty(t, openUploads(t, st, lost, "out/"+keys[0], "out/"+keys[1]))
	require.Empty(t, intents(t, st, "out"))
	require.Equal(t, append(ids(0, 100), ids(1000, 1050)...), publishedIDs(t, dir))
}
