package file

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/pkg/source"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type line struct {
	Value  string
	Offset int64
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func appendFile(t testing.TB, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(content)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func newSource(t testing.TB, cfg Config) *Source {
	t.Helper()
	s, err := New(cfg, nil, nil)
	require.NoError(t, err)
	return s
}

func openReader(t testing.TB, s *Source, id string, start *source.Position) *Reader {
	t.Helper()
	r, err := s.Open(context.Background(), source.Split{ID: id}, start)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r.(*Reader)
}

// readLines reads with the given max until the end of the split or until
// want lines (when want > 0) have arrived.
func readLines(ctx context.Context, t testing.TB, r source.Reader, max, want int) ([]line, error) {
	t.Helper()
	var got []line
	var b source.Batch
	for want <= 0 || len(got) < want {
		b.Reset()
		err := r.Read(ctx, &b, max)
		require.LessOrEqual(t, len(b.Messages), max)
		for _, m := range b.Messages {
			got = append(got, line{string(m.Value), m.Position.Offset})
		}
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

func TestReadOnce(t *testing.T) {
	content := "{\"a\":1}\n\n{\"b\":2}\r\n\r\n{\"c\":3}\n{\"last\":true}"
	want := []line{{`{"a":1}`, 0}, {`{"b":2}` + "\r", 9}, {`{"c":3}`, 20}, {`{"last":true}`, 28}}
	cases := []struct {
		name    string
		max     int
		bufSize int
	}{
		{"one at a time", 1, initialBuffer},
		{"batches", 3, initialBuffer},
		{"all", 100, initialBuffer},
		{"tiny buffer grows", 2, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.jsonl")
			writeFile(t, path, content)
			r := openReader(t, newSource(t, Config{Paths: []string{path}}), path, nil)
			r.bufSize = tc.bufSize
			got, err := readLines(context.Background(), t, r, tc.max, 0)
			require.ErrorIs(t, err, source.ErrEndOfSplit)
			require.Equal(t, want, got)
			require.Equal(t, int64(len(content)), r.Position().Offset)

			var b source.Batch
			require.ErrorIs(t, r.Read(context.Background(), &b, 10), source.ErrEndOfSplit)
			require.Empty(t, b.Messages)
		})
	}
}

func TestResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	var content strings.Builder
	for i := range 100 {
		content.WriteString(`{"i":` + strings.Repeat("1", i%7+1) + "}\n")
	}
	writeFile(t, path, content.String())
	s := newSource(t, Config{Paths: []string{path}})
	all, err := readLines(context.Background(), t, openReader(t, s, path, nil), 1000, 0)
	require.ErrorIs(t, err, source.ErrEndOfSplit)
	require.Len(t, all, 100)

	// Read part, then resume from the reader's position as a checkpoint would.
	r := openReader(t, s, path, nil)
	first, err := readLines(context.Background(), t, r, 7, 40)
	require.NoError(t, err)
	require.Equal(t, all[:42], first) // 6 reads of 7
	pos := r.Position()
	require.Equal(t, all[42].Offset, pos.Offset)
	require.Equal(t, all[41].Offset+int64(len(all[41].Value))+1, pos.Offset)

	rest, err := readLines(context.Background(), t, openReader(t, s, path, &pos), 10, 0)
	require.ErrorIs(t, err, source.ErrEndOfSplit)
	require.Equal(t, all[42:], rest)

	_, err = s.Open(context.Background(), source.Split{ID: path}, &source.Position{Offset: -1})
	require.ErrorContains(t, err, "negative offset")
	_, err = s.Open(context.Background(), source.Split{ID: path + ".missing"}, nil)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestSplits(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.jsonl", "a.jsonl", "c.txt"} {
		writeFile(t, filepath.Join(dir, name), "{}\n")
	}
	cases := []struct {
		name    string
		cfg     Config
		want    []string
		wantErr string
	}{
		{name: "glob", cfg: Config{Paths: []string{filepath.Join(dir, "*.jsonl")}},
			want: []string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")}},
		{name: "literal and overlap", cfg: Config{Paths: []string{filepath.Join(dir, "c.txt"), filepath.Join(dir, "*")}, Stdin: true},
			want: []string{filepath.Join(dir, "c.txt"), filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl"), StdinSplit}},
		{name: "stdin only", cfg: Config{Stdin: true}, want: []string{StdinSplit}},
		{name: "no match", cfg: Config{Paths: []string{filepath.Join(dir, "*.csv")}}, wantErr: "matches no file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			splits, err := newSource(t, tc.cfg).Splits(context.Background())
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			var ids []string
			for _, s := range splits {
				ids = append(ids, s.ID)
			}
			require.Equal(t, tc.want, ids)
		})
	}
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{}, nil, nil)
	require.ErrorContains(t, err, "no paths")
	_, err = New(Config{Paths: []string{"x"}, PollInterval: -1}, nil, nil)
	require.ErrorContains(t, err, "pollInterval")
	_, err = New(Config{Paths: []string{"[x"}}, nil, nil)
	require.ErrorContains(t, err, `"[x"`)
}

func TestStdin(t *testing.T) {
	s := newSource(t, Config{Stdin: true, StdinReader: strings.NewReader("{\"a\":1}\n{\"b\":2}")})
	got, err := readLines(context.Background(), t, openReader(t, s, StdinSplit, nil), 10, 0)
	require.ErrorIs(t, err, source.ErrEndOfSplit)
	require.Equal(t, []line{{`{"a":1}`, 0}, {`{"b":2}`, 8}}, got)

	// A restored position cannot be sought on standard input: a restored
	// pipeline reads the input that arrives now (at-most-once).
	s = newSource(t, Config{Stdin: true, StdinReader: strings.NewReader("{\"c\":3}\n")})
	got, err = readLines(context.Background(), t, openReader(t, s, StdinSplit, &source.Position{Offset: 8}), 10, 0)
	require.ErrorIs(t, err, source.ErrEndOfSplit)
	require.Equal(t, []line{{`{"c":3}`, 0}}, got)
}

func TestLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	long := strings.Repeat("x", 100)
	writeFile(t, path, "{}\n"+long+"\n{\"ok\":1}\n"+long)
	r := openReader(t, newSource(t, Config{Paths: []string{path}}), path, nil)
	r.maxLine, r.bufSize = 32, 8
	got, err := readLines(context.Background(), t, r, 10, 0)
	require.ErrorIs(t, err, source.ErrEndOfSplit)
	require.Equal(t, []line{{"{}", 0}, {long[:32], 3}, {`{"ok":1}`, 104}, {long[:32], 113}}, got)
}

func TestFollow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "in.jsonl")
		writeFile(t, path, "{\"a\":1}\n{\"part")
		reg := prometheus.NewRegistry()
		s, err := New(Config{Paths: []string{path}, Follow: true, PollInterval: time.Second}, nil, reg)
		require.NoError(t, err)
		r := openReader(t, s, path, nil)
		ctx := t.Context()

		got, err := readLines(ctx, t, r, 10, 1)
		require.NoError(t, err)
		require.Equal(t, []line{{`{"a":1}`, 0}}, got)

		// The partial line is held back until its newline arrives.
		short, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = readLines(short, t, r, 10, 1)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)

		go func() {
			// Between two polls, so which of them sees the data is certain.
			time.Sleep(4500 * time.Millisecond)
			appendFile(t, path, "\":2}\n\n{\"c\":3}\n")
		}()
		begin := time.Now()
		got, err = readLines(ctx, t, r, 10, 2)
		require.NoError(t, err)
		require.Equal(t, []line{{`{"part":2}`, 8}, {`{"c":3}`, 20}}, got)
		require.Equal(t, 5*time.Second, time.Since(begin))
		require.Equal(t, int64(28), r.Position().Offset)

		// Truncation: the file restarts shorter than what was read.
		writeFile(t, path, "{\"t\":1}\n")
		got, err = readLines(ctx, t, r, 10, 1)
		require.NoError(t, err)
		require.Equal(t, []line{{`{"t":1}`, 0}}, got)
		require.Equal(t, 1.0, counterValue(t, reg, "streamd_file_source_truncations_total"))

		// Rotation: the old file gets a last (unterminated) write, is renamed,
		// and a new file takes its path.
		appendFile(t, path, "{\"old\":1}\n{\"old\":2}")
		require.NoError(t, os.Rename(path, path+".1"))
		writeFile(t, path, "{\"new\":1}\n")
		got, err = readLines(ctx, t, r, 10, 3)
		require.NoError(t, err)
		require.Equal(t, []line{{`{"old":1}`, 8}, {`{"old":2}`, 18}, {`{"new":1}`, 0}}, got)
		require.Equal(t, 1.0, counterValue(t, reg, "streamd_file_source_rotations_total"))
	})
}

// counterValue reads a counter from reg (testutil would need a dependency
// the module does not carry).
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestFollowWaitsForFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "later.jsonl")
		s := newSource(t, Config{Paths: []string{path}, Follow: true})
		r := openReader(t, s, path, nil)
		go func() {
			time.Sleep(time.Minute)
			writeFile(t, path, "{}\n")
		}()
		got, err := readLines(t.Context(), t, r, 10, 1)
		require.NoError(t, err)
		require.Equal(t, []line{{"{}", 0}}, got)
	})
}

func TestReadZeroAllocs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.jsonl")
	writeFile(t, path, strings.Repeat(sampleLine+"\n", 50000))
	r := openReader(t, newSource(t, Config{Paths: []string{path}}), path, nil)
	var b source.Batch
	ctx := context.Background()
	require.NoError(t, r.Read(ctx, &b, 256))
	allocs := testing.AllocsPerRun(100, func() {
		b.Reset()
		if err := r.Read(ctx, &b, 256); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}

const sampleLine = `{"version":1,"timestamp":1763726400000,"equipmentId":"5f0c2a6e-9b1d-4c3e-8a7f-2d6b9e1c4a30","tag":"water_temperature","value":13.45,"quality":"Ok","meta":{"sequenceNumber":123,"sourceId":"filling_machine_3"}}`

func BenchmarkRead(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.jsonl")
	data := bytes.Repeat([]byte(sampleLine+"\n"), 100000)
	require.NoError(b, os.WriteFile(path, data, 0o644))
	s := newSource(b, Config{Paths: []string{path}})
	ctx := context.Background()
	var batch source.Batch
	lines := 0
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := s.Open(ctx, source.Split{ID: path}, nil)
		require.NoError(b, err)
		for {
			batch.Reset()
			err := r.Read(ctx, &batch, 1024)
			lines += len(batch.Messages)
			if errors.Is(err, source.ErrEndOfSplit) {
				break
			}
			require.NoError(b, err)
		}
		require.NoError(b, r.Close())
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}

// FuzzLines checks that, whatever the content, buffer size, line limit and
// batch size, read-once mode delivers exactly the non-blank lines with their
// offsets (over-long lines cut to the limit).
func FuzzLines(f *testing.F) {
	f.Add([]byte("{\"a\":1}\n\n{\"b\":2}\r\n{\"c\""), uint8(4), uint8(16), uint8(2))
	f.Add([]byte("\n\n\n"), uint8(1), uint8(1), uint8(1))
	f.Add([]byte("\r0"), uint8(1), uint8(1), uint8(9))
	f.Add([]byte("{\"k\":\"\xff\xfe\"}\n\n\xed\xa0\x80\r\n \n"), uint8(3), uint8(8), uint8(2))
	f.Add([]byte(strings.Repeat("x", 300)+"\ny\n"), uint8(8), uint8(64), uint8(5))
	// One file rewritten per input: a directory per input makes fuzzing crawl.
	path := filepath.Join(f.TempDir(), "f.jsonl")
	f.Fuzz(func(t *testing.T, content []byte, bufSize, maxLine, max uint8) {
		if bufSize == 0 || maxLine == 0 || max == 0 {
			return
		}
		// With EmptyLines, blank lines are delivered too.
		emptyLines := max%2 == 0
		var want []line
		off := 0
		for off < len(content) {
			end := bytes.IndexByte(content[off:], '\n')
			next := off + end + 1
			if end < 0 {
				end, next = len(content)-off, len(content)
			}
			l := content[off : off+end]
			if !isBlank(l) || emptyLines {
				want = append(want, line{string(l[:min(len(l), int(maxLine))]), int64(off)})
			}
			off = next
		}
		require.NoError(t, os.WriteFile(path, content, 0o644))
		r := openReader(t, newSource(t, Config{Paths: []string{path}, EmptyLines: emptyLines}), path, nil)
		r.bufSize, r.maxLine = int(bufSize), int(maxLine)
		got, err := readLines(context.Background(), t, r, int(max), 0)
		require.ErrorIs(t, err, source.ErrEndOfSplit)
		require.Equal(t, want, got)
	})
}

// TestStdinReadEndsWithContext: a Read waiting for stdin returns when its
// context ends (the runtime's tick, a SIGTERM), delivers what arrives
// later, and a reader closed while stdin stays open leaves no goroutine
// behind once stdin delivers again.
func TestStdinReadEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in, w := io.Pipe()
		s := newSource(t, Config{Stdin: true, StdinReader: in})
		r := openReader(t, s, StdinSplit, nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var b source.Batch
		require.ErrorIs(t, r.Read(ctx, &b, 10), context.DeadlineExceeded)
		require.Empty(t, b.Messages)

		go func() { _, _ = io.WriteString(w, "{\"a\":1}\n") }()
		require.NoError(t, r.Read(context.Background(), &b, 10))
		require.Len(t, b.Messages, 1)
		require.Equal(t, `{"a":1}`, string(b.Messages[0].Value))

		require.NoError(t, r.Close())
		go func() { _, _ = io.WriteString(w, "{\"b\":2}\n") }()
		synctest.Wait()
		require.NoError(t, w.Close())
	})
}
