package jsonl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/pkg/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testSchema = record.MustSchema(
	record.Field{Name: "s", Type: record.TypeString},
	record.Field{Name: "i", Type: record.TypeInt},
	record.Field{Name: "f", Type: record.TypeFloat},
	record.Field{Name: "b", Type: record.TypeBool},
	record.Field{Name: "ts", Type: record.TypeTimestamp},
	record.Field{Name: `we"ird`, Type: record.TypeString},
)

func TestEncodeRow(t *testing.T) {
	for _, tc := range []struct {
		name string
		row  record.Row
		want string
	}{
		{
			"all types",
			record.Row{record.String("a\"b\\c/é\n"), record.Int(-42), record.Float(0.1), record.Bool(true), record.Timestamp(1_763_701_200_000_001), record.String("x")},
			`{"s":"a\"b\\c/é\n","i":-42,"f":0.1,"b":true,"ts":"2025-11-21T05:00:00.000001Z","we\"ird":"x"}`,
		},
		{
			"nulls",
			record.Row{record.Null, record.Null, record.Null, record.Null, record.Null, record.Null},
			`{"s":null,"i":null,"f":null,"b":null,"ts":null,"we\"ird":null}`,
		},
		{
			"edge numbers",
			record.Row{record.String(""), record.Int(math.MinInt64), record.Float(math.NaN()), record.Bool(false), record.Timestamp(-1), record.String("\x00\u2028\xff")},
			`{"s":"","i":-9223372036854775808,"f":null,"b":false,"ts":"1969-12-31T23:59:59.999999Z","we\"ird":"\u0000\u2028\ufffd"}`,
		},
		{
			"infinity and exponent",
			record.Row{record.String("<&>"), record.Int(0), record.Float(math.Inf(-1)), record.Bool(true), record.Timestamp(0), record.Null},
			`{"s":"<&>","i":0,"f":null,"b":true,"ts":"1970-01-01T00:00:00.000000Z","we\"ird":null}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := newEncoder(testSchema).appendRow(nil, tc.row)
			require.Equal(t, tc.want+"\n", string(got))
			require.True(t, json.Valid(got))
		})
	}
}

func TestAppendFloat(t *testing.T) {
	for _, f := range []float64{0, math.Copysign(0, -1), 1, 0.1, 1e-6, 1e-7, 123456789, 1e20, 1e21, -1.5e300, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		want, err := json.Marshal(f)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendFloat(nil, f)), "%v", f)
	}
}

// marshalString is encoding/json's rendering of s without HTML escaping.
func marshalString(t *testing.T, s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(s))
	return strings.TrimSuffix(buf.String(), "\n")
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `"quoted"`, `back\slash`, "ctl\x00\x01\x1f\x7f", "\b\f\n\r\t", "café ☕", "\u2028\u2029", "bad\xff\xfeutf8", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendString(nil, s)
		require.True(t, json.Valid(got), "%q", got)
		require.Equal(t, marshalString(t, s), string(got))
	})
}

func FuzzAppendFloat(f *testing.F) {
	for _, v := range []float64{0, 1, -1, 0.1, 1e-7, 1e21, 5e-324, math.MaxFloat64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		got := appendFloat(nil, v)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			require.Equal(t, "null", string(got))
			return
		}
		want, err := json.Marshal(v)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	})
}

func batchOf(rows ...record.Row) *record.Batch {
	b := record.NewBatch(testSchema.Len(), len(rows))
	for _, r := range rows {
		copy(b.AppendRow(0), r)
	}
	return b
}

func TestStdout(t *testing.T) {
	var out bytes.Buffer
	s, err := newSink(Config{Name: "out", Path: "-"}, nil, nil, &out)
	require.NoError(t, err)
	w, err := s.NewWriter("task-0", testSchema)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, w.Write(ctx, batchOf(
		record.Row{record.String("a"), record.Int(1)},
		record.Row{record.String("b"), record.Int(2)},
	)))
	require.NoError(t, w.Write(ctx, batchOf()))
	require.NoError(t, w.Close(ctx))
	require.NoError(t, s.Close(ctx))
	require.ErrorContains(t, w.Write(ctx, batchOf(record.Row{})), "sink is closed")
	require.Equal(t,
		`{"s":"a","i":1,"f":null,"b":null,"ts":null,"we\"ird":null}`+"\n"+
			`{"s":"b","i":2,"f":null,"b":null,"ts":null,"we\"ird":null}`+"\n", out.String())
}

func TestFileSharedByWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "out.jsonl")
	reg := prometheus.NewPedanticRegistry()
	const writers, batches, rows = 4, 20, 50
	for run := range 2 { // the second run appends to the first's file
		s, err := New(Config{Name: fmt.Sprintf("file-%d", run), Path: path}, nil, reg)
		require.NoError(t, err)
		var wg sync.WaitGroup
		for task := range writers {
			w, err := s.NewWriter(fmt.Sprintf("task-%d", task), testSchema)
			require.NoError(t, err)
			wg.Go(func() {
				for n := range batches {
					b := record.NewBatch(testSchema.Len(), rows)
					for r := range rows {
						row := b.AppendRow(0)
						row[0] = record.String(strings.Repeat("x", r))
						row[1] = record.Int(int64(task*1_000_000 + n*1000 + r))
					}
					if err := w.Write(ctx, b); err != nil {
						t.Error(err)
					}
				}
				if err := w.Close(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		require.NoError(t, s.Close(ctx))
	}

	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Zero(t, st.Mode().Perm()&^0o644, "mode %v", st.Mode())
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	seen := map[int64]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			S string
			I int64
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		require.Len(t, line.S, int(line.I%1000))
		seen[line.I]++
	}
	require.NoError(t, sc.Err())
	require.Len(t, seen, writers*batches*rows)
	for _, n := range seen {
		require.Equal(t, 2, n)
	}

	families, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, families, 1)
	require.Equal(t, "streamd_sink_records_total", families[0].GetName())
	for _, m := range families[0].GetMetric() {
		require.Equal(t, float64(writers*batches*rows), m.GetCounter().GetValue())
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	require.NoError(t, c.Validate())
	c.Name = ""
	require.ErrorContains(t, c.Validate(), "name is empty")
	_, err := New(Config{Name: "x", Path: filepath.Join(t.TempDir(), "f", "\x00")}, nil, nil)
	require.Error(t, err)
}

func TestWidthMismatch(t *testing.T) {
	s, err := newSink(Config{Name: "x"}, nil, nil, &bytes.Buffer{})
	require.NoError(t, err)
	w, err := s.NewWriter("t", testSchema)
	require.NoError(t, err)
	require.ErrorContains(t, w.Write(context.Background(), record.NewBatch(2, 1)), "batch width 2")
}

func BenchmarkEncode(b *testing.B) {
	schema := record.MustSchema(
		record.Field{Name: "host", Type: record.TypeString},
		record.Field{Name: "metric", Type: record.TypeString},
		record.Field{Name: "value", Type: record.TypeFloat},
		record.Field{Name: "p99", Type: record.TypeFloat},
		record.Field{Name: "count", Type: record.TypeInt},
		record.Field{Name: "ts", Type: record.TypeTimestamp},
	)
	const rows = 1024
	batch := record.NewBatch(schema.Len(), rows)
	for i := range rows {
		r := batch.AppendRow(int64(i))
		r[0] = record.String(fmt.Sprintf("host-%03d.example", i%100))
		r[1] = record.String("cpu.user \"pct\"")
		r[2] = record.Float(float64(i) * 0.37)
		r[3] = record.Float(12.5 + float64(i%7))
		r[4] = record.Int(int64(i * 31))
		r[5] = record.Timestamp(1_763_701_200_000_000 + int64(i)*1000)
	}
	s, err := newSink(Config{Name: "bench"}, nil, nil, discard{})
	if err != nil {
		b.Fatal(err)
	}
	w, err := s.NewWriter("t", schema)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := w.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*rows/b.Elapsed().Seconds(), "rows/s")
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
