package checkpoint

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/source"
)

func sampleManifest(id int64) *Manifest {
	return &Manifest{
		Version: ManifestVersion, ID: id, Pipeline: "p", Created: time.Unix(1_700_000_000, 0).UTC(), KeyGroups: 128,
		Splits: []SplitState{{Source: "s", Split: "t/0", Next: source.Position{Offset: 42}, Watermark: 1000}},
		Stages: []StageState{{Stage: "w", Blobs: []StateBlob{{Key: "k", Size: 10, Watermark: 900, Groups: []KeyGroupRange{{KeyGroup: 3, Offset: 0, Length: 10}}}}}},
	}
}

func TestManifestRoundTripAndLatest(t *testing.T) {
	st, err := local.New(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	for _, id := range []int64{1, 2, 10} {
		data, err := sampleManifest(id).Encode()
		require.NoError(t, err)
		require.NoError(t, st.PutIfAbsent(ctx, ManifestKey("pipelines/p", id), data))
	}
	infos, err := List(ctx, st, "pipelines/p")
	require.NoError(t, err)
	require.Len(t, infos, 3)
	m, err := Latest(ctx, st, "pipelines/p")
	require.NoError(t, err)
	require.Equal(t, sampleManifest(10), m)
	_, err = Latest(ctx, st, "pipelines/other")
	require.ErrorIs(t, err, ErrNoCheckpoint)
}

func TestDecodeManifestRejects(t *testing.T) {
	for name, mut := range map[string]func(*Manifest){
		"version":    func(m *Manifest) { m.Version = 99 },
		"id":         func(m *Manifest) { m.ID = 0 },
		"key groups": func(m *Manifest) { m.KeyGroups = 0 },
		"range":      func(m *Manifest) { m.Stages[0].Blobs[0].Groups[0].Length = 11 },
		"kg":         func(m *Manifest) { m.Stages[0].Blobs[0].Groups[0].KeyGroup = 200 },
	} {
		t.Run(name, func(t *testing.T) {
			m := sampleManifest(1)
			mut(m)
			data, err := m.Encode()
			require.NoError(t, err)
			_, err = DecodeManifest(data)
			require.Error(t, err)
		})
	}
}

func FuzzDecodeManifest(f *testing.F) {
	data, _ := sampleManifest(7).Encode()
	f.Add(data)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeManifest(data)
		if err != nil {
			return
		}
		again, err := m.Encode()
		require.NoError(t, err)
		m2, err := DecodeManifest(again)
		require.NoError(t, err)
		require.Equal(t, m.ID, m2.ID)
	})
}
