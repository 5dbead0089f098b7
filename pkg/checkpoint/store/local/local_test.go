package local_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/checkpoint/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := local.New(t.TempDir())
		require.NoError(t, err)
		return s
	}, storetest.Options{ListPagingKeys: 1100})
}

func TestLayout(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *local.Store)
	}{
		{"objects are plain files", func(t *testing.T, s *local.Store) {
			require.NoError(t, s.Put(context.Background(), "a/b", bytes.NewReader([]byte("x")), 1))
			data, err := os.ReadFile(filepath.Join(s.Dir(), "a", "b"))
			require.NoError(t, err)
			require.Equal(t, "x", string(data))
		}},
		{"reserved directory is not a key", func(t *testing.T, s *local.Store) {
			require.Error(t, s.Put(context.Background(), ".store/x", bytes.NewReader(nil), 0))
			got, err := s.List(context.Background(), "")
			require.NoError(t, err)
			require.Empty(t, got)
		}},
		{"short read fails and leaves nothing", func(t *testing.T, s *local.Store) {
			require.Error(t, s.Put(context.Background(), "short", bytes.NewReader([]byte("ab")), 5))
			_, err := s.Get(context.Background(), "short")
			require.ErrorIs(t, err, store.ErrNotFound)
		}},
		{"completing after a crash between link and cleanup", func(t *testing.T, s *local.Store) {
			ctx := context.Background()
			id, err := s.CreateUpload(ctx, "f")
			require.NoError(t, err)
			etag, err := s.UploadPart(ctx, "f", id, 1, bytes.NewReader([]byte("data")), 4)
			require.NoError(t, err)
			// The object is in place but the upload directory survived.
			require.NoError(t, s.Put(ctx, "f", bytes.NewReader([]byte("data")), 4))
			require.NoError(t, s.CompleteUpload(ctx, "f", id, []store.Part{{Num: 1, ETag: etag}}))
			ups, err := s.ListUploads(ctx, "")
			require.NoError(t, err)
			require.Empty(t, ups)
		}},
		{"check", func(t *testing.T, s *local.Store) {
			require.NoError(t, s.Check(context.Background()))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := local.New(t.TempDir())
			require.NoError(t, err)
			tc.run(t, s)
		})
	}
}

func FuzzValidKey(f *testing.F) {
	for _, k := range []string{"a", "a/b", "", "/a", "a/", "a//b", "..", "a/./b", "dt=2026/x.parquet"} {
		f.Add(k)
	}
	root := f.TempDir()
	s, err := local.New(root)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, key string) {
		if store.ValidKey(key) != nil {
			return
		}
		// A valid key never escapes the root.
		rel, err := filepath.Rel(root, filepath.Join(root, filepath.FromSlash(key)))
		require.NoError(t, err)
		require.NotEqual(t, "..", rel)
		require.False(t, len(rel) > 2 && rel[:3] == "../", "key %q escapes: %s", key, rel)
		_, _ = s.Get(context.Background(), key)
	})
}
