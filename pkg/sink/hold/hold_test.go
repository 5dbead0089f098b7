package hold

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink/jsonl"
)

var schema = record.MustSchema(record.Field{Name: "alert_id", Type: record.TypeString}, record.Field{Name: "value", Type: record.TypeFloat})

func batch(ids ...string) *record.Batch {
	b := record.NewBatch(2, len(ids))
	for i, id := range ids {
		row := b.AppendRow(int64(i))
		row[0], row[1] = record.String(id), record.Float(float64(i)+0.5)
	}
	return b
}

func lines(t *testing.T, path string) []string {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	return strings.Fields(string(data))
}

// Rows reach the wrapped sink only when the checkpoint holding them
// commits; rows after the last barrier are lost with a crash and produced
// again by the restored pipeline.
func TestHoldUntilCommit(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	inner, err := jsonl.New(jsonl.Config{Name: "alerts", Path: path}, nil, nil)
	require.NoError(t, err)
	s := New(inner)
	w, err := s.NewWriter("stage-0", schema)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, batch("a", "b")))
	st1, err := w.(*Writer).Prepare(ctx, 1)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, batch("c")))
	require.Empty(t, lines(t, path), "nothing is delivered before its checkpoint completes")
	// Checkpoint 2 fails: its rows stay held and travel in checkpoint 3.
	_, err = w.(*Writer).Prepare(ctx, 2)
	require.NoError(t, err)
	st3, err := w.(*Writer).Prepare(ctx, 3)
	require.NoError(t, err)
	require.NoError(t, s.Commit(ctx, "stage-0", st1))
	require.Len(t, lines(t, path), 2)
	require.NoError(t, s.Commit(ctx, "stage-0", st3))
	require.NoError(t, s.Commit(ctx, "stage-0", st3), "committing again delivers nothing twice")
	require.NoError(t, s.Close(ctx))
	require.Len(t, lines(t, path), 3)
	require.Contains(t, lines(t, path)[2], `"alert_id":"c"`)

	// A crash after checkpoint 1 (never committed "c"): recovery delivers
	// checkpoint 1's rows again, unless its commit is known to be complete.
	path2 := filepath.Join(t.TempDir(), "alerts.jsonl")
	inner2, err := jsonl.New(jsonl.Config{Name: "alerts", Path: path2}, nil, nil)
	require.NoError(t, err)
	s2 := New(inner2)
	require.NoError(t, s2.Recover(ctx, map[string][]byte{"stage-0": st1}))
	require.NoError(t, s2.Close(ctx))
	require.Len(t, lines(t, path2), 2)
	path3 := filepath.Join(t.TempDir(), "alerts.jsonl")
	inner3, err := jsonl.New(jsonl.Config{Name: "alerts", Path: path3}, nil, nil)
	require.NoError(t, err)
	s3 := New(inner3)
	require.NoError(t, s3.RecoverCommitted(ctx, map[string][]byte{"stage-0": st1}))
	require.NoError(t, s3.Close(ctx))
	require.Empty(t, lines(t, path3))
}

func FuzzDecodeState(f *testing.F) {
	w := &Writer{s: New(nil), schema: schema}
	_ = w.Write(context.Background(), batch("x", "y"))
	st, _ := w.Prepare(context.Background(), 1)
	f.Add(st)
	f.Add([]byte{1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _, _ = decodeState(data, 0)
	})
}

// Closing at a stop drops rows no checkpoint covers (the restored pipeline
// produces them again); at the end of the input the runtime delivers them
// through PrepareFinal and Commit.
func TestCloseDropsAndFinalDelivers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	inner, err := jsonl.New(jsonl.Config{Name: "alerts", Path: path}, nil, nil)
	require.NoError(t, err)
	s := New(inner)
	w, err := s.NewWriter("stage-0", schema)
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, batch("a")))
	require.NoError(t, w.Close(ctx))
	w2, err := s.NewWriter("stage-1", schema)
	require.NoError(t, err)
	require.NoError(t, w2.Write(ctx, batch("b")))
	st, err := w2.(*Writer).PrepareFinal(ctx, 0)
	require.NoError(t, err)
	require.NoError(t, w2.Close(ctx))
	require.NoError(t, s.Commit(ctx, "stage-1", st))
	require.NoError(t, s.Close(ctx))
	got := lines(t, path)
	require.Len(t, got, 1)
	require.Contains(t, got[0], `"alert_id":"b"`)
}

// A crash while a completed checkpoint's rows are being handed over to a
// file, before the runtime recorded the commit, makes the restart hand
// them over again: the file is cut back to where that hand-over began
// first, so every row is in it once. A crash before the hand-over began
// cuts nothing.
func TestInterruptedHandoverIsRewound(t *testing.T) {
	ctx := context.Background()
	for _, begun := range []bool{true, false} {
		t.Run(map[bool]string{true: "hand-over begun", false: "hand-over not begun"}[begun], func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "minutes.jsonl")
			inner, err := jsonl.New(jsonl.Config{Name: "minutes", Path: path}, nil, nil)
			require.NoError(t, err)
			s := New(inner)
			w, err := s.NewWriter("stage-0", schema)
			require.NoError(t, err)
			require.NoError(t, w.Write(ctx, batch("a", "b")))
			st1, err := w.(*Writer).Prepare(ctx, 1)
			require.NoError(t, err)
			require.NoError(t, s.CommitCheckpoint(ctx, 1, "stage-0", st1))
			require.NoError(t, w.Write(ctx, batch("c", "d")))
			st2, err := w.(*Writer).Prepare(ctx, 2)
			require.NoError(t, err)
			if begun {
				// Checkpoint 2 completed and its rows reached the file;
				// the process died before the commit was recorded.
				require.NoError(t, s.CommitCheckpoint(ctx, 2, "stage-0", st2))
				require.Len(t, lines(t, path), 4)
			}
			require.NoError(t, inner.Close(ctx))

			// The restarted process restores checkpoint 2, not known to
			// have committed.
			inner2, err := jsonl.New(jsonl.Config{Name: "minutes", Path: path}, nil, nil)
			require.NoError(t, err)
			s2 := New(inner2)
			require.NoError(t, s2.RecoverCheckpoint(ctx, 2, map[string][]byte{"stage-0": st2}, nil))
			require.NoError(t, s2.Close(ctx))
			got := lines(t, path)
			require.Len(t, got, 4, "every row once: %v", got)
			for i, id := range []string{"a", "b", "c", "d"} {
				require.Contains(t, got[i], `"alert_id":"`+id+`"`)
			}
		})
	}
}

// Rows with nested fields are held and restored with their JSON text, so a
// recovered checkpoint delivers them as they were written.
func TestNestedRowsSurviveRecovery(t *testing.T) {
	ctx := context.Background()
	nested := record.MustSchema(
		record.Field{Name: "alert_id", Type: record.TypeString},
		record.Field{Name: "geo", Type: record.TypeStruct, Fields: []record.Field{{Name: "lat", Type: record.TypeFloat}}},
		record.Field{Name: "tags", Type: record.TypeList, Elem: &record.Field{Type: record.TypeString}},
	)
	b := record.NewBatch(3, 2)
	row := b.AppendRow(1)
	row[0], row[1], row[2] = record.String("a"), record.NestedValue(record.TypeStruct, `{"lat":1.5}`), record.NestedValue(record.TypeList, `["x","y"]`)
	row = b.AppendRow(2)
	row[0], row[1], row[2] = record.String("b"), record.NestedValue(record.TypeStruct, `{}`), record.Null
	w := &Writer{s: New(nil), schema: nested}
	require.NoError(t, w.Write(ctx, b))
	st, err := w.Prepare(ctx, 1)
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "alerts.jsonl")
	inner, err := jsonl.New(jsonl.Config{Name: "alerts", Path: path}, nil, nil)
	require.NoError(t, err)
	s := New(inner)
	require.NoError(t, s.Recover(ctx, map[string][]byte{"stage-0": st}))
	require.NoError(t, s.Close(ctx))
	require.Equal(t, []string{
		`{"alert_id":"a","geo":{"lat":1.5},"tags":["x","y"]}`,
		`{"alert_id":"b","geo":{},"tags":null}`,
	}, lines(t, path))
}

// The state of a flat schema keeps the version 1 layout, which older
// binaries read: each field is its name and its type byte. One with a
// nested field is version 2, and a nested type in a version 1 state is
// corrupt rather than misread.
func TestStateVersions(t *testing.T) {
	ctx := context.Background()
	w := &Writer{s: New(nil), schema: schema}
	require.NoError(t, w.Write(ctx, batch("a")))
	st, err := w.Prepare(ctx, 1)
	require.NoError(t, err)
	flat := append([]byte{1, 2, 8}, "alert_id"...)
	flat = append(flat, byte(record.TypeString), 5)
	flat = append(flat, "value"...)
	flat = append(flat, byte(record.TypeFloat))
	require.Equal(t, flat, st[:len(flat)])
	sc, b, _, err := decodeState(st, 0)
	require.NoError(t, err)
	require.Equal(t, schema.String(), sc.String())
	require.Equal(t, 1, b.Len())

	geo := record.Field{Name: "geo", Type: record.TypeStruct, Fields: []record.Field{{Name: "lat", Type: record.TypeFloat}}}
	w = &Writer{s: New(nil), schema: record.MustSchema(geo)}
	st, err = w.Prepare(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, byte(2), st[0])
	sc, _, _, err = decodeState(st, 0)
	require.NoError(t, err)
	require.True(t, sc.Field(0).Equal(geo), "%s", sc)

	v1 := append([]byte{1}, st[1:len(st)-4]...)
	v1 = binary.LittleEndian.AppendUint32(v1, crc32.ChecksumIEEE(v1))
	_, _, _, err = decodeState(v1, 0)
	require.ErrorIs(t, err, errCorrupt)
	require.ErrorContains(t, err, `nested field "geo" in a version 1 state`)
}
