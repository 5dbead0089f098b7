package parquet

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/internal/testenv"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	s3store "github.com/streamd/streamd/pkg/checkpoint/store/s3"
	"github.com/streamd/streamd/pkg/record"
)

// download copies every object of st below prefix into dir, keeping keys
// as paths, and returns the keys relative to prefix.
func download(t *testing.T, st store.Store, prefix, dir string) []string {
	t.Helper()
	ctx := context.Background()
	objs, err := st.List(ctx, prefix)
	require.NoError(t, err)
	var keys []string
	for _, o := range objs {
		rel := o.Key[len(prefix):]
		keys = append(keys, rel)
		rc, err := st.Get(ctx, o.Key)
		require.NoError(t, err)
		p := filepath.Join(dir, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		f, err := os.Create(p)
		require.NoError(t, err)
		_, err = io.Copy(f, rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		require.NoError(t, f.Close())
	}
	return keys
}

func TestWriteToMinIOReadBackWithDuckDB(t *testing.T) {
	endpoint, ak, sk := testenv.StartMinIO(t)
	testenv.MinIOBucket(t, endpoint, ak, sk, "lake")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	// The route a pipeline file takes: an s3:// dir and an s3 block.
	cfg := DefaultConfig()
	cfg.Name = "test"
	cfg.Dir = "s3://lake/events/v1"
	cfg.Partition = "dt={date}/hour={hour}/t={tenant}"
	cfg.S3.Endpoint, cfg.S3.PathStyle, cfg.S3.AccessKey, cfg.S3.SecretKey = endpoint, true, ak, sk
	s, err := New(cfg, nil, nil)
	require.NoError(t, err)
	w, err := s.NewWriter("window-0", testSchema)
	require.NoError(t, err)

	var want []record.Row
	n := 0
	for range 5 {
		b := record.NewBatch(testSchema.Len(), 97)
		for range 97 {
			fillRow(b.AppendRow(rowTime(n)), n)
			n++
		}
		for i := range b.Len() {
			row := append(record.Row(nil), b.Row(i)...)
			row[1], row[6] = row[1].Clone(), row[6].Clone()
			want = append(want, row)
		}
		require.NoError(t, w.Write(ctx, b))
	}
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Close(ctx))

	sc := s3store.DefaultConfig()
	sc.Bucket, sc.Endpoint, sc.PathStyle, sc.AccessKey, sc.SecretKey = "lake", endpoint, true, ak, sk
	st, err := s3store.New(sc, nil, nil)
	require.NoError(t, err)
	ups, err := st.ListUploads(ctx, "events/v1/dt=2025-11-21/hour=05/t=acme/part-window-0-000000.parquet")
	require.NoError(t, err)
	require.Empty(t, ups, "no upload left open")
	dir := t.TempDir()
	require.ElementsMatch(t, []string{
		"dt=2025-11-21/hour=05/t=acme/part-window-0-000000.parquet",
		"dt=2025-11-21/hour=06/t=we%2Fird %22co%22/part-window-0-000001.parquet",
	}, download(t, st, "events/v1/", dir))

	got := duckdb.Query(t, fmt.Sprintf(`SELECT *
		FROM read_parquet('%s/**/*.parquet', hive_partitioning=true, hive_types={'hour': VARCHAR})
		ORDER BY id`, dir))
	require.Len(t, got, len(want))
	names := []string{"id", "s", "i", "f", "b", "ts", "tenant"}
	for r, row := range want {
		for c, name := range names {
			require.Equal(t, wantJSON(row[c]), got[r][name], "row %d field %s", r, name)
		}
		require.Equal(t, row[6].S, got[r]["t"], "row %d partition value", r)
	}
}

// startFakeStore runs gofakes3 in process and returns a store on it.
func startFakeStore(t testing.TB) store.Store {
	t.Helper()
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket("lake"))
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	sc := s3store.DefaultConfig()
	sc.Bucket, sc.Endpoint, sc.PathStyle, sc.AccessKey, sc.SecretKey = "lake", srv.URL, true, "ak", "sk"
	st, err := s3store.New(sc, nil, nil)
	require.NoError(t, err)
	return st
}

// noisyRow fills a row with hard-to-compress text, so files grow past
// several upload parts.
func noisyRow(r record.Row, n int, buf []byte) {
	x := uint64(n)*0x9e3779b97f4a7c15 + 1
	buf = buf[:0]
	for len(buf) < 1024 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		buf = strconv.AppendUint(buf, x, 36)
	}
	r[0] = record.Int(int64(n))
	r[1] = record.String(string(buf))
	r[6] = record.String("acme")
}

func TestStoreLargeFileSpansParts(t *testing.T) {
	tests := []struct {
		name     string
		rows     int
		rollRows int64
		files    int
	}{
		{"one file of several parts", 12_000, 0, 1},
		{"rolled by rows", 12_000, 5_000, 3},
		{"tiny file is one short part", 3, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := startFakeStore(t)
			cfg := DefaultConfig()
			cfg.Name, cfg.Store, cfg.Dir = "test", st, "out"
			cfg.PartSize, cfg.RowGroupSize, cfg.RollRows = store.MinPartSize, 1<<20, tc.rollRows
			s, err := New(cfg, nil, nil)
			require.NoError(t, err)
			w, err := s.NewWriter("t", testSchema)
			require.NoError(t, err)
			buf := make([]byte, 0, 1100)
			for n := 0; n < tc.rows; {
				b := record.NewBatch(testSchema.Len(), 500)
				for ; b.Len() < 500 && n < tc.rows; n++ {
					noisyRow(b.AppendRow(baseMs), n, buf)
				}
				require.NoError(t, w.Write(ctx, b))
			}
			require.NoError(t, w.Close(ctx))
			objs, err := st.List(ctx, "out/")
			require.NoError(t, err)
			require.Len(t, objs, tc.files)
			var rows int64
			for i, o := range objs {
				require.Equal(t, "out/part-t-"+padSeq(uint64(i))+".parquet", o.Key)
				rc, err := st.Get(ctx, o.Key)
				require.NoError(t, err)
				data, err := io.ReadAll(rc)
				require.NoError(t, err)
				require.NoError(t, rc.Close())
				pf, err := parquet.OpenFile(bytesReaderAt(data), int64(len(data)))
				require.NoError(t, err)
				rows += pf.NumRows()
			}
			require.Equal(t, int64(tc.rows), rows)
			if tc.rows > 10_000 && tc.files == 1 {
				require.Greater(t, objs[0].Size, int64(2*store.MinPartSize), "file spans several parts")
			}
			ups, err := st.ListUploads(ctx, "")
			require.NoError(t, err)
			require.Empty(t, ups)
		})
	}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestStoreRejectedBatchKeepsUpload(t *testing.T) {
	ctx := context.Background()
	st := startFakeStore(t)
	cfg := DefaultConfig()
	cfg.Name, cfg.Store = "test", st
	s, err := New(cfg, nil, nil)
	require.NoError(t, err)
	w, err := s.NewWriter("t", testSchema)
	require.NoError(t, err)
	b := record.NewBatch(testSchema.Len(), 1)
	noisyRow(b.AppendRow(baseMs), 0, nil)
	require.NoError(t, w.Write(ctx, b))
	ups, err := st.ListUploads(ctx, "")
	require.NoError(t, err)
	require.Len(t, ups, 1, "the open file is an open upload")
	bad := record.NewBatch(testSchema.Len(), 1)
	bad.AppendRow(baseMs)[0] = record.String("not an int")
	require.Error(t, w.Write(ctx, bad))
	// A rejected batch leaves the writer usable; a failed upload would not.
	require.NoError(t, w.Close(ctx))
	objs, err := st.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, objs, 1)
}

func TestConfigValidateStore(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"s3 url", func(c *Config) { c.Dir = "s3://b/p" }, ""},
		{"s3 url without bucket", func(c *Config) { c.Dir = "s3:///p" }, "dir"},
		{"small parts", func(c *Config) { c.Dir, c.PartSize = "s3://b/p", 1<<20 }, "partSize"},
		{"bad endpoint", func(c *Config) { c.Dir, c.S3.Endpoint = "s3://b", "nohost" }, "endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}
