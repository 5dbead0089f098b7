package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint/store"
)

// Options adapts the suite to a backend's known gaps.
type Options struct {
	// SkipConditionalComplete skips the cases that need CompleteUpload to
	// refuse replacing an existing object (If-None-Match on
	// CompleteMultipartUpload), for servers that ignore the header.
	SkipConditionalComplete bool
	// ListUploadsExactKey lists uploads by their exact key instead of a
	// directory prefix, for servers (MinIO) whose ListMultipartUploads only
	// matches a whole object name.
	ListUploadsExactKey bool
	// ListPagingKeys is how many keys the paging case writes; 0 skips it.
	// Above 1000 it crosses S3's page size.
	ListPagingKeys int
}

// Run runs every case against stores from newStore. Each case uses its own
// key prefix, so newStore may return the same store every time.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, opts Options) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.conditionalComplete && opts.SkipConditionalComplete {
				t.Skip("backend ignores If-None-Match on CompleteMultipartUpload")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			tc.run(t, ctx, newStore(t), "conf/"+tc.name+"/", opts)
		})
	}
}

type testCase struct {
	name                string
	conditionalComplete bool
	run                 func(t *testing.T, ctx context.Context, s store.Store, p string, opts Options)
}

// onlyReader hides io.Seeker, so backends see a plain stream.
type onlyReader struct{ io.Reader }

// uploadsPrefix is the prefix a case lists uploads with: its directory, or
// the exact key on servers that need it.
func uploadsPrefix(opts Options, dir, key string) string {
	if opts.ListUploadsExactKey {
		return key
	}
	return dir
}

func put(ctx context.Context, t *testing.T, s store.Store, key string, data []byte) {
	t.Helper()
	require.NoError(t, s.Put(ctx, key, bytes.NewReader(data), int64(len(data))))
}

func get(ctx context.Context, t *testing.T, s store.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(ctx, key)
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	return data
}

func keys(infos []store.ObjectInfo) []string {
	out := make([]string, len(infos))
	for i, o := range infos {
		out[i] = o.Key
	}
	return out
}

// payload returns n deterministic bytes that differ per seed.
func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

var cases = []testCase{
	{name: "put-get-overwrite", run: func(t *testing.T, ctx context.Context, s store.Store, p string, _ Options) {
		put(ctx, t, s, p+"a/b.bin", []byte("one"))
		require.Equal(t, []byte("one"), get(ctx, t, s, p+"a/b.bin"))
		put(ctx, t, s, p+"a/b.bin", []byte("second"))
		require.Equal(t, []byte("second"), get(ctx, t, s, p+"a/b.bin"))
		put(ctx, t, s, p+"empty", nil)
		require.Empty(t, get(ctx, t, s, p+"empty"))
	}},
	{name: "put-plain-reader", run: func(t *testing.T, ctx context.Context, s store.Store, p string, _ Options) {
		data := payload(100_000, 7)
		require.NoError(t, s.Put(ctx, p+"stream", onlyReader{bytes.NewReader(data)}, int64(len(data))))
		require.Equal(t, data, get(ctx, t, s, p+"stream"))
	}},
	{name: "get-missing", run: func(t *testing.T, ctx context.Context, s store.Store, p string, _ Options) {
		_, err := s.Get(ctx, p+"missing")
		require.ErrorIs(t, err, store.ErrNotFound)
	}},
	{name: "put-if-absent", run: func(t *testing.T, ctx context.Context, s store.Store, p string, _ Options) {
		key := p + "manifest-000001.json"
		require.NoError(t, s.PutIfAbsent(ctx, key, []byte(`{"n":1}`)))
		require.ErrorIs(t, s.PutIfAbsent(ctx, key, []byte(`{"n":2}`)), store.ErrExists)
		require.NoError(t, s.PutIfAbsent(ctx, key, []byte(`{"n":1}`)), "same content is an idempotent retry")
		require.Equal(t, []byte(`{"n":1}`), get(ctx, t, s, key))
	}},
	{name: "put-if-absent-race", run: func(t *testing.T, ctx context.Context, s store.Store, p string, _ Options) {
		const writers = 8
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() { errs[i] = s.PutIfAbsent(ctx, p+"contended", []byte(fmt.Sprintf("writer %d", i))) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "two writers won")
				winner = i
				continue
			}
			require.ErrorIs(t, err, store.ErrExists)
		}
		require.NotEqual(t, -1, winner, "no writer won")
		require.Equal(t, fmt.Sprintf("writer %d", winner), string(get(ctx, t, s, p+"contended")))
	}},
	{name: "list-sorted-prefix", run: func(t *testing.T, ctx context.Context, s store.Store, p string, _ Options) {
		for _, k := range []string{"chk/000002/m", "chk/000010/state/kg-1", "chk/000001/m", "chk/0000x", "other/a", "chk-not/a"} {
			put(ctx, t, s, p+k, []byte(k))
		}
		got, err := s.List(ctx, p+"chk/")
		require.NoError(t, err)
		require.Equal(t, []string{p + "chk/000001/m", p + "chk/000002/m", p + "chk/000010/state/kg-1", p + "chk/0000x"}, keys(got))
		require.Equal(t, int64(len("chk/000001/m")), got[0].Size)
		require.WithinDuration(t, time.Now(), got[0].Modified, time.Hour)
		got, err = s.List(ctx, p+"chk/00000")
		require.NoError(t, err)
		require.Equal(t, []string{p + "chk/000001/m", p + "chk/000002/m"}, keys(got), "prefix is a string prefix")
		got, err = s.List(ctx, p+"nothing/")
		require.NoError(t, err)
		require.Empty(t, got)
	}},
	{name: "list-paging", run: func(t *testing.T, ctx context.Context, s store.Store, p string, opts Options) {
		if opts.ListPagingKeys == 0 {
			t.Skip("paging case disabled for this backend")
		}
		want := make([]string, opts.ListPagingKeys)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		errs := make([]error, len(want))
		for i := range want {
			want[i] = fmt.Sprintf("%sk/%05d", p, i)
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				errs[i] = s.Put(ctx, want[i], bytes.NewReader(nil), 0)
			})
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		got, err := s.List(ctx, p+"k/")
		require.NoError(t, err)
		require.Equal(t, want, keys(got))
	}},
	{name: "delete-idempotent", run: func(t *testing.T, ctx context.Context, s store.Store, p string, _ Options) {
		put(ctx, t, s, p+"a", []byte("a"))
		put(ctx, t, s, p+"d/b", []byte("b"))
		put(ctx, t, s, p+"keep", []byte("k"))
		require.NoError(t, s.Delete(ctx, p+"a", p+"d/b", p+"never-existed"))
		require.NoError(t, s.Delete(ctx, p+"a"))
		require.NoError(t, s.Delete(ctx))
		got, err := s.List(ctx, p)
		require.NoError(t, err)
		require.Equal(t, []string{p + "keep"}, keys(got))
		_, err = s.Get(ctx, p+"a")
		require.ErrorIs(t, err, store.ErrNotFound)
	}},
	{name: "invalid-keys", run: func(t *testing.T, ctx context.Context, s store.Store, p string, _ Options) {
		for _, k := range []string{"", "/abs", p + "trailing/", p + "a//b", p + "a/../b", p + "./a"} {
			require.Error(t, s.Put(ctx, k, bytes.NewReader(nil), 0), "key %q", k)
			_, err := s.Get(ctx, k)
			require.Error(t, err, "key %q", k)
		}
	}},
	{name: "multipart-complete", run: func(t *testing.T, ctx context.Context, s store.Store, p string, opts Options) {
		key := p + "dt=2026-11-21/part-0.parquet"
		id, err := s.CreateUpload(ctx, key)
		require.NoError(t, err)
		_, err = s.Get(ctx, key)
		require.ErrorIs(t, err, store.ErrNotFound, "nothing visible before completion")
		first, last := payload(store.MinPartSize, 1), payload(1234, 2)
		// Parts may be uploaded out of order and a part may be re-sent.
		e2, err := s.UploadPart(ctx, key, id, 2, bytes.NewReader(last), int64(len(last)))
		require.NoError(t, err)
		_, err = s.UploadPart(ctx, key, id, 1, bytes.NewReader(payload(store.MinPartSize, 9)), store.MinPartSize)
		require.NoError(t, err)
		e1, err := s.UploadPart(ctx, key, id, 1, onlyReader{bytes.NewReader(first)}, int64(len(first)))
		require.NoError(t, err)
		ups, err := s.ListUploads(ctx, uploadsPrefix(opts, p, key))
		require.NoError(t, err)
		require.Len(t, ups, 1)
		require.Equal(t, key, ups[0].Key)
		require.Equal(t, id, ups[0].UploadID)

		parts := []store.Part{{Num: 2, ETag: e2}, {Num: 1, ETag: e1}}
		require.NoError(t, s.CompleteUpload(ctx, key, id, parts))
		require.Equal(t, append(slices.Clone(first), last...), get(ctx, t, s, key))
		require.NoError(t, s.CompleteUpload(ctx, key, id, parts), "completing again is idempotent")
		ups, err = s.ListUploads(ctx, uploadsPrefix(opts, p, key))
		require.NoError(t, err)
		require.Empty(t, ups)
		got, err := s.List(ctx, p)
		require.NoError(t, err)
		require.Equal(t, []string{key}, keys(got))
	}},
	{name: "multipart-abort", run: func(t *testing.T, ctx context.Context, s store.Store, p string, _ Options) {
		key := p + "aborted"
		id, err := s.CreateUpload(ctx, key)
		require.NoError(t, err)
		etag, err := s.UploadPart(ctx, key, id, 1, bytes.NewReader([]byte("x")), 1)
		require.NoError(t, err)
		other, err := s.CreateUpload(ctx, p+"other")
		require.NoError(t, err)
		require.NoError(t, s.AbortUpload(ctx, key, id))
		require.NoError(t, s.AbortUpload(ctx, key, id), "aborting again is not an error")
		ups, err := s.ListUploads(ctx, key)
		require.NoError(t, err)
		require.Empty(t, ups)
		ups, err = s.ListUploads(ctx, p+"other")
		require.NoError(t, err)
		require.Len(t, ups, 1)
		require.Equal(t, other, ups[0].UploadID)
		err = s.CompleteUpload(ctx, key, id, []store.Part{{Num: 1, ETag: etag}})
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.Get(ctx, key)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.NoError(t, s.AbortUpload(ctx, p+"other", other))
	}},
	{name: "multipart-never-replaces", conditionalComplete: true, run: func(t *testing.T, ctx context.Context, s store.Store, p string, _ Options) {
		key := p + "taken"
		id, err := s.CreateUpload(ctx, key)
		require.NoError(t, err)
		etag, err := s.UploadPart(ctx, key, id, 1, bytes.NewReader([]byte("new")), 3)
		require.NoError(t, err)
		put(ctx, t, s, key, []byte("old"))
		err = s.CompleteUpload(ctx, key, id, []store.Part{{Num: 1, ETag: etag}})
		require.ErrorIs(t, err, store.ErrExists)
		require.Equal(t, []byte("old"), get(ctx, t, s, key))
		require.NoError(t, s.AbortUpload(ctx, key, id))
	}},
}
