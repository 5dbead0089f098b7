package discard

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

func TestDiscardCounts(t *testing.T) {
	s := New()
	schema := record.MustSchema(record.Field{Name: "x", Type: record.TypeInt})
	a, err := s.NewWriter("a", schema)
	require.NoError(t, err)
	b, err := s.NewWriter("b", schema)
	require.NoError(t, err)
	batch := record.NewBatch(1, 4)
	for i := range 3 {
		batch.AppendRow(int64(i))[0] = record.Int(int64(i))
	}
	require.NoError(t, a.Write(context.Background(), batch))
	require.NoError(t, b.Write(context.Background(), batch))
	require.NoError(t, a.Close(context.Background()))
	require.NoError(t, b.Close(context.Background()))
	require.NoError(t, s.Close(context.Background()))
	require.Equal(t, int64(6), s.Rows())
}
