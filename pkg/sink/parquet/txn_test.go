package parquet

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/duckdb"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
)

// txnSink makes a transactional sink on dir (a local directory, or the key
// prefix in st when st is set).
func txnSink(t *testing.T, dir string, st store.Store, mutate func(*Config)) *Sink {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.Dir, cfg.Store = "test", dir, st
	cfg.Partition = "t={tenant}"
	cfg.Transactional = true
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg, nil, nil)
	require.NoError(t, err)
	return s
}

// writeIDs writes one row per id, tenants alternating; tenant overrides the
// tenant of every row when set.
func writeIDs(t *testing.T, w sink.Writer, from, to int, tenant string) {
	t.Helper()
	b := record.NewBatch(testSchema.Len(), to-from)
	for n := from; n < to; n++ {
		r := b.AppendRow(baseMs)
		fillRow(r, n)
		if tenant != "" {
			r[6] = record.String(tenant)
		}
	}
	require.NoError(t, w.Write(context.Background(), b))
}

func ids(from, to int) []int64 {
	var out []int64
	for n := from; n < to; n++ {
		out = append(out, int64(n))
	}
	return out
}

// published lists the published files below dir.
func published(t *testing.T, dir string) []string {
	var out []string
	for _, f := range listFiles(t, dir) {
		if !strings.HasPrefix(filepath.Base(f), ".") {
			out = append(out, f)
		}
	}
	return out
}

// staged lists the staged (in-progress) files below dir.
func staged(t *testing.T, dir string) []string {
	var out []string
	for _, f := range listFiles(t, dir) {
		if strings.HasSuffix(f, stagedSuffix) {
			out = append(out, f)
		}
	}
	return out
}

// publishedIDs reads the ids of every published file with DuckDB.
func publishedIDs(t *testing.T, dir string) []int64 {
	t.Helper()
	files := published(t, dir)
	if len(files) == 0 {
		return nil
	}
	quoted := make([]string, len(files))
	for i, f := range files {
		quoted[i] = "'" + filepath.Join(dir, f) + "'"
	}
	rows := duckdb.Query(t, fmt.Sprintf(`SELECT id FROM read_parquet([%s]) ORDER BY id`, strings.Join(quoted, ",")))
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = int64(r["id"].(float64))
	}
	return out
}

func prepare(t *testing.T, w sink.Writer, id int64) []byte {
	t.Helper()
	st, err := w.(sink.Preparer).Prepare(context.Background(), id)
	require.NoError(t, err)
	return st
}

func TestTransactionalPublishesOnlyCommitted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := txnSink(t, dir, nil, func(c *Config) { c.Partition, c.RollRows = "", 25 })
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)

	writeIDs(t, w, 0, 10, "")
	s1 := prepare(t, w, 1)
	writeIDs(t, w, 10, 30, "") // the file rolls at 25 rows
	require.Empty(t, published(t, dir), "a rolled file waits for its checkpoint")
	s2 := prepare(t, w, 2)

	require.NoError(t, s.Commit(ctx, "w", s1))
	require.Empty(t, published(t, dir), "checkpoint 1 completed no file")
	require.NoError(t, s.Commit(ctx, "w", s2))
	require.Equal(t, []string{"part-w-000000.parquet"}, published(t, dir))
	require.NoError(t, s.Commit(ctx, "w", s2), "commit is idempotent")
	require.Equal(t, ids(0, 25), publishedIDs(t, dir))

	// The committed file is not listed again; the open one is.
	s3 := prepare(t, w, 3)
	st, err := decodeState(s3)
	require.NoError(t, err)
	require.Empty(t, st.Completed)
	require.Len(t, st.Open, 1)
	require.Equal(t, uint64(1), st.Open[0].Seq)

	writeIDs(t, w, 30, 40, "") // after the last checkpoint: deleted on Close
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Commit(ctx, "w", s3))
	require.NoError(t, s.Close(ctx))
	require.Equal(t, []string{".part-w-000001.parquet.inprogress"}, staged(t, dir), "the open file stays staged for a restart")
	require.Equal(t, ids(0, 25), publishedIDs(t, dir))

	require.Error(t, w.Write(ctx, record.NewBatch(testSchema.Len(), 0)), "write after close")
}

func TestTransactionalCloseDeletesUnpreparedFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := txnSink(t, dir, nil, func(c *Config) { c.RollRows = 5 })
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 0, 12, "")
	require.NotEmpty(t, staged(t, dir))
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Close(ctx))
	require.Empty(t, listFiles(t, dir), "no checkpoint refers to any file")
}

func TestCrashAndRecover(t *testing.T) {
	for _, tc := range []struct {
		name string
		// finish ends the second run: it returns the state to commit.
		final bool
	}{
		{"final checkpoint publishes", true},
		{"restart finishes the files", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := txnSink(t, dir, nil, nil)
			w, err := s.NewWriter("w-0", testSchema)
			require.NoError(t, err)
			writeIDs(t, w, 0, 100, "")
			s1 := prepare(t, w, 1)
			require.NoError(t, s.Commit(ctx, "w-0", s1))
			writeIDs(t, w, 100, 150, "")      // lost in the crash
			writeIDs(t, w, 150, 160, "lost")  // a file no checkpoint knows
			require.Len(t, staged(t, dir), 3) // crash: the writer is dropped

			s = txnSink(t, dir, nil, nil)
			require.NoError(t, s.Recover(ctx, map[string][]byte{"w-0": s1}))
			require.Len(t, staged(t, dir), 2, "the lost partition's file is deleted")
			w, err = s.NewWriter("w-0", testSchema)
			require.NoError(t, err)
			writeIDs(t, w, 1000, 1050, "")
			writeIDs(t, w, 1050, 1060, "new")
			var s2 []byte
			if tc.final {
				s2, err = w.(*Writer).PrepareFinal(ctx, 2)
				require.NoError(t, err)
			} else {
				s2 = prepare(t, w, 2)
			}
			require.NoError(t, w.Close(ctx))
			require.NoError(t, s.Commit(ctx, "w-0", s2))
			require.NoError(t, s.Close(ctx))
			if !tc.final {
				require.Empty(t, published(t, dir))
				s = txnSink(t, dir, nil, nil)
				require.NoError(t, s.Recover(ctx, map[string][]byte{"w-0": s2}))
				require.NoError(t, s.Close(ctx), "no writer claims the files: the sink finishes them")
			}
			require.Empty(t, staged(t, dir))
			require.ElementsMatch(t, []string{
				"t=acme/part-w-0-000000.parquet",
				"t=we%2Fird %22co%22/part-w-0-000001.parquet",
				"t=new/part-w-0-000002.parquet", // the lost file's name is free again
			}, published(t, dir), "one file per partition, names continue after the checkpoint's")
			require.Equal(t, append(ids(0, 100), ids(1000, 1060)...), publishedIDs(t, dir))
		})
	}
}

func TestRecoverTwiceFromSameCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := txnSink(t, dir, nil, func(c *Config) { c.RollRows = 30 })
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 0, 80, "") // each partition rolls once
	s1 := prepare(t, w, 1)
	// Crash before Commit; recover, write, crash again; recover once more.
	for range 2 {
		s = txnSink(t, dir, nil, func(c *Config) { c.RollRows = 30 })
		require.NoError(t, s.Recover(ctx, map[string][]byte{"w": s1}))
		w, err = s.NewWriter("w", testSchema)
		require.NoError(t, err)
		writeIDs(t, w, 500, 540, "")
	}
	final, err := w.(*Writer).PrepareFinal(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Commit(ctx, "w", final))
	require.NoError(t, s.Close(ctx))
	require.Empty(t, staged(t, dir))
	require.Equal(t, append(ids(0, 80), ids(500, 540)...), publishedIDs(t, dir))
}

func TestManyCheckpointsKeepOneFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := txnSink(t, dir, nil, nil)
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	var maxState int
	for i := range 50 {
		writeIDs(t, w, i*10, i*10+10, "")
		st := prepare(t, w, int64(i+1))
		maxState = max(maxState, len(st))
		require.NoError(t, s.Commit(ctx, "w", st))
		require.Len(t, staged(t, dir), 2)
		require.Empty(t, published(t, dir))
	}
	require.Less(t, maxState, 64<<10, "the state carries small tails")
	final, err := w.(*Writer).PrepareFinal(ctx, 51)
	require.NoError(t, err)
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Commit(ctx, "w", final))
	require.Len(t, published(t, dir), 2)
	require.Equal(t, ids(0, 500), publishedIDs(t, dir))
}

func TestFirstPrepareSwitchesToTransactional(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := txnSink(t, dir, nil, func(c *Config) { c.Partition, c.RollRows, c.Transactional = "", 10, false })
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 0, 10, "")
	require.Equal(t, []string{"part-w-000000.parquet"}, published(t, dir), "published on roll without checkpoints")
	st := prepare(t, w, 1)
	writeIDs(t, w, 10, 20, "")
	require.Equal(t, []string{"part-w-000000.parquet"}, published(t, dir))
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Commit(ctx, "w", st))
	require.Equal(t, []string{"part-w-000000.parquet"}, published(t, dir))
}

func TestCommitAndRecoverReject(t *testing.T) {
	ctx := context.Background()
	s := txnSink(t, t.TempDir(), nil, nil)
	w, err := s.NewWriter("a", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 0, 5, "")
	st := prepare(t, w, 1)
	require.ErrorContains(t, s.Commit(ctx, "b", st), `state belongs to task "a"`)
	require.ErrorContains(t, s.Commit(ctx, "a", st[:len(st)-1]), "corrupt")
	require.ErrorContains(t, s.Recover(ctx, map[string][]byte{"a": []byte("junk!")}), "corrupt")

	// A checkpoint whose staged file vanished cannot be restored.
	for _, f := range staged(t, s.cfg.Dir) {
		require.NoError(t, os.Remove(filepath.Join(s.cfg.Dir, f)))
	}
	s2 := txnSink(t, s.cfg.Dir, nil, nil)
	require.ErrorContains(t, s2.Recover(ctx, map[string][]byte{"a": st}), "missing")
}

func TestStoreCrashAndRecover(t *testing.T) {
	ctx := context.Background()
	st := startFakeStore(t)
	mutate := func(c *Config) {
		c.Partition, c.PartSize, c.RowGroupSize = "", store.MinPartSize, 1<<20
	}
	write := func(w sink.Writer, from, to int) {
		buf := make([]byte, 0, 1100)
		for n := from; n < to; {
			b := record.NewBatch(testSchema.Len(), 500)
			for ; b.Len() < 500 && n < to; n++ {
				noisyRow(b.AppendRow(baseMs), n, buf)
			}
			require.NoError(t, w.Write(ctx, b))
		}
	}
	s := txnSink(t, "out", st, mutate)
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	write(w, 0, 9000) // several parts uploaded, a tail pending
	s1 := prepare(t, w, 1)
	dec, err := decodeState(s1)
	require.NoError(t, err)
	require.Len(t, dec.Open, 1)
	require.NotEmpty(t, dec.Open[0].Parts)
	require.NoError(t, s.Commit(ctx, "w", s1))
	write(w, 20000, 28000) // lost: more parts uploaded after the checkpoint

	s = txnSink(t, "out", st, mutate)
	require.NoError(t, s.Recover(ctx, map[string][]byte{"w": s1}))
	w, err = s.NewWriter("w", testSchema)
	require.NoError(t, err)
	write(w, 50000, 53000)
	final, err := w.(*Writer).PrepareFinal(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Commit(ctx, "w", final))
	require.NoError(t, s.Close(ctx))

	ups, err := st.ListUploads(ctx, "")
	require.NoError(t, err)
	require.Empty(t, ups, "no upload left open")
	dir := t.TempDir()
	require.Equal(t, []string{"part-w-000000.parquet"}, download(t, st, "out/", dir))
	require.Equal(t, append(ids(0, 9000), ids(50000, 53000)...), publishedIDs(t, dir))
}

func TestStateRoundTrip(t *testing.T) {
	s := txnSink(t, t.TempDir(), nil, nil)
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 0, 20, "")
	b := prepare(t, w, 1)
	st, err := decodeState(b)
	require.NoError(t, err)
	again, err := encodeState(nil, st)
	require.NoError(t, err)
	require.Equal(t, b, again)
	require.Equal(t, "w", st.Task)
	require.Equal(t, testSchema.Fields(), st.Fields)
	require.Len(t, st.Open, 2)
	require.NoError(t, w.Close(context.Background()))
}

// TestStateVersion1Decodes reads a state in the encoding before layout
// flags, as a checkpoint taken by an earlier release holds it.
func TestStateVersion1Decodes(t *testing.T) {
	s := txnSink(t, t.TempDir(), nil, func(c *Config) { c.TimestampUnit = "millis" })
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	writeIDs(t, w, 0, 20, "")
	b := prepare(t, w, 1)
	require.NoError(t, w.Close(context.Background()))
	st, err := decodeState(b)
	require.NoError(t, err)
	require.True(t, st.Layout.timestampMillis)

	// Version 1 is version 2 without the flags uvarint after the fields
	// and without the watermark and partitions at the end.
	require.Empty(t, st.Parts)
	trailer := len(binary.AppendVarint(nil, st.Watermark)) + 1
	at := 1 + 1 + len(st.Task) + 1
	for _, f := range st.Fields {
		at += 1 + len(f.Name) + 1
	}
	require.Equal(t, byte(layoutTimestampMillis), b[at])
	v1 := append([]byte{1}, b[1:at]...)
	v1 = append(v1, b[at+1:len(b)-4-trailer]...)
	v1 = appendChecksum(v1, 0)
	old, err := decodeState(v1)
	require.NoError(t, err)
	require.False(t, old.Layout.timestampMillis, "version 1 files were written in microseconds")
	old.Layout, old.Watermark = st.Layout, st.Watermark
	require.Equal(t, st, old)
}

// A partition's source ranges travel in the state (version 4, written
// only when there are some) and come back as they were.
func TestStateKeepsSourceRanges(t *testing.T) {
	st := &taskState{Task: "w", Fields: testSchema.Fields(), Parts: map[string]partStats{
		"dt=a": {EndMs: 3_600_000, Rows: 5, MinMs: 1, MaxMs: 9, Files: []partFileInfo{{Seq: 1, Rows: 5, Size: 100}},
			Sources: map[originKey]posRange{{"logs", "logs/1"}: {"0", "4"}, {"logs", "logs/0"}: {"98", "1020"}}},
		"dt=b": {EndMs: 7_200_000, Rows: 1},
	}}
	b, err := encodeState(nil, st)
	require.NoError(t, err)
	require.Equal(t, byte(4), b[0])
	got, err := decodeState(b)
	require.NoError(t, err)
	require.Equal(t, st.Parts, got.Parts)

	st.Parts["dt=a"] = partStats{EndMs: 3_600_000, Rows: 5}
	b, err = encodeState(nil, st)
	require.NoError(t, err)
	require.Equal(t, byte(2), b[0], "without ranges the state stays readable by older binaries")

	bad := &taskState{Task: "w", Fields: testSchema.Fields(), Parts: map[string]partStats{
		"dt=a": {Sources: map[originKey]posRange{{"s", "p"}: {"x", "1"}}}}}
	b, err = encodeState(nil, bad)
	require.NoError(t, err)
	_, err = decodeState(b)
	require.ErrorContains(t, err, "bad source range")
}

func TestLessPos(t *testing.T) {
	require.True(t, lessPos("9", "10"))
	require.True(t, lessPos("49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692540925702759324208523137515618"))
	require.False(t, lessPos("10", "10"))
	require.False(t, lessPos("100", "99"))
}

func TestDecodeStateRejects(t *testing.T) {
	good, err := encodeState(nil, &taskState{Task: "w", Fields: testSchema.Fields(),
		Completed: []completedFile{{fileRef: fileRef{Dir: "t=a", Seq: 3, UploadID: "u", Parts: []store.Part{{Num: 1, ETag: "e"}}}, Size: 10, Rows: 2}}})
	require.NoError(t, err)
	_, err = decodeState(good)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		st   taskState
		want string
	}{
		{"escaping dir", taskState{Task: "w", Fields: testSchema.Fields(), Completed: []completedFile{{fileRef: fileRef{Dir: "../x"}}}}, "bad partition directory"},
		{"absolute dir", taskState{Task: "w", Fields: testSchema.Fields(), Completed: []completedFile{{fileRef: fileRef{Dir: "/etc"}}}}, "bad partition directory"},
		{"task with slash", taskState{Task: "a/b", Fields: testSchema.Fields()}, "bad task name"},
		{"no fields", taskState{Task: "w"}, "no fields"},
		{"parts out of order", taskState{Task: "w", Fields: testSchema.Fields(), Completed: []completedFile{{fileRef: fileRef{UploadID: "u", Parts: []store.Part{{Num: 2}}}}}}, "out of order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeState(nil, &tc.st)
			require.NoError(t, err)
			_, err = decodeState(b)
			require.ErrorContains(t, err, tc.want)
		})
	}
	bad := slices.Clone(good)
	bad[0] = 9
	_, err = decodeState(bad)
	require.ErrorContains(t, err, "checksum")
}

func FuzzDecodeState(f *testing.F) {
	seed, err := encodeState(nil, &taskState{Task: "w-0", Fields: testSchema.Fields(), NextSeq: 4,
		Completed: []completedFile{{fileRef: fileRef{Dir: "t=a", Seq: 3, UploadID: "u", Parts: []store.Part{{Num: 1, ETag: "e"}}}, Size: 10, Rows: 2}},
		Open:      []openFile{{fileRef: fileRef{Dir: "t=b", Seq: 2}, OpenedMs: -5}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[1 : len(seed)-4])
	f.Add([]byte{})
	nested, err := encodeState(nil, &taskState{Task: "w-0", Fields: nestedSchema.Fields()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(nested)
	f.Add(nested[1 : len(nested)-4])
	ranged, err := encodeState(nil, &taskState{Task: "w-0", Fields: testSchema.Fields(), Parts: map[string]partStats{
		"dt=a": {EndMs: 10, Rows: 2, Sources: map[originKey]posRange{{"logs", "logs/0"}: {"7", "1200"}}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ranged)
	f.Add(ranged[1 : len(ranged)-4])
	f.Fuzz(func(t *testing.T, b []byte) {
		// The body is fuzzed behind a valid checksum too, or the fuzzer
		// would never get past it.
		for _, in := range [][]byte{b, withChecksum(b)} {
			st, err := decodeState(in)
			if err != nil {
				continue
			}
			again, err := encodeState(nil, st)
			require.NoError(t, err)
			st2, err := decodeState(again)
			require.NoError(t, err)
			require.Equal(t, st, st2)
		}
	})
}

// withChecksum makes b a version-1 state body with a valid checksum.
func withChecksum(b []byte) []byte {
	body := append([]byte{stateVersion}, b...)
	return appendChecksum(body, 0)
}

// TestCommitConcurrentWithWriter commits each checkpoint from another
// goroutine while the writer goes on, as the checkpoint coordinator does.
func TestCommitConcurrentWithWriter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := txnSink(t, dir, nil, func(c *Config) { c.RollRows = 40 })
	w, err := s.NewWriter("w", testSchema)
	require.NoError(t, err)
	states := make(chan []byte)
	errs := make(chan error, 1)
	go func() {
		var err error
		for st := range states {
			if cerr := s.Commit(ctx, "w", st); err == nil {
				err = cerr
			}
		}
		errs <- err
	}()
	for i := range 20 {
		writeIDs(t, w, i*10, i*10+10, "")
		states <- prepare(t, w, int64(i+1))
	}
	final, err := w.(*Writer).PrepareFinal(ctx, 21)
	require.NoError(t, err)
	states <- final
	close(states)
	require.NoError(t, <-errs)
	require.NoError(t, w.Close(ctx))
	require.Empty(t, staged(t, dir))
	require.Equal(t, ids(0, 200), publishedIDs(t, dir))
}
