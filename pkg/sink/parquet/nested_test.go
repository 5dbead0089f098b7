package parquet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/internal/parquetcheck"
	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/record"
)

// nestedDecodeFields declares a field of every nested shape: a struct with
// a timestamp, lists of scalars, of structs and of lists, maps of scalars
// and a map inside a list of structs.
func nestedDecodeFields() []decode.Field {
	return []decode.Field{
		{Name: "id", Type: record.TypeInt, Required: true},
		{Name: "tenant", Type: record.TypeString},
		{Name: "geo", Type: record.TypeStruct, Fields: []decode.Field{
			{Name: "lat", Type: record.TypeFloat},
			{Name: "lon", Type: record.TypeFloat},
			{Name: "city", Type: record.TypeString},
			{Name: "at", Type: record.TypeTimestamp, TimeFormat: decode.TimeEpochMS},
		}},
		{Name: "tags", Type: record.TypeList, Elem: &decode.Field{Type: record.TypeString}},
		{Name: "attrs", Type: record.TypeMap, Elem: &decode.Field{Type: record.TypeString}},
		{Name: "spans", Type: record.TypeList, Elem: &decode.Field{Type: record.TypeStruct, Fields: []decode.Field{
			{Name: "name", Type: record.TypeString},
			{Name: "dur", Type: record.TypeInt},
			{Name: "ok", Type: record.TypeBool},
			{Name: "ids", Type: record.TypeList, Elem: &decode.Field{Type: record.TypeInt}},
			{Name: "labels", Type: record.TypeMap, Elem: &decode.Field{Type: record.TypeFloat}},
		}}},
		{Name: "grid", Type: record.TypeList, Elem: &decode.Field{Type: record.TypeList, Elem: &decode.Field{Type: record.TypeFloat}}},
	}
}

// nestedSchema is the schema the decoder of nestedDecodeFields makes.
var nestedSchema = func() *record.Schema {
	d, err := decode.NewJSON(decode.Config{Fields: nestedDecodeFields()})
	if err != nil {
		panic(err)
	}
	return d.Schema()
}()

func newNestedDecoder(t testing.TB) *decode.JSON {
	d, err := decode.NewJSON(decode.Config{Fields: nestedDecodeFields()})
	require.NoError(t, err)
	return d
}

// nestedSeeds are messages with nulls at every level, empty lists and
// maps, repeated keys, escapes and values of the wrong type.
var nestedSeeds = []string{
	`{"id":1,"tenant":"a","geo":{"lat":47.5,"lon":-8.25,"city":"Zürich","at":1763701200123},"tags":["x","y\n\"z\""],"attrs":{"k":"v","e":""},` +
		`"spans":[{"name":"db","dur":12,"ok":true,"ids":[1,2,3],"labels":{"p50":0.5,"p99":null}},{"name":null,"ids":[]},null,{}],"grid":[[1,2.5],[],null,[null,-0.0]]}`,
	`{"id":2,"geo":null,"tags":null,"attrs":null,"spans":null,"grid":null}`,
	`{"id":3,"geo":{},"tags":[],"attrs":{},"spans":[],"grid":[]}`,
	`{"id":4,"geo":{"lat":null,"city":"\u00e9\ud83d\ude00"},"tags":[null,null],"attrs":{"a":null,"a":"second"},"spans":[{"labels":{}}]}`,
	`{"id":5,"geo":{"lat":"north"}}`,
	`{"id":6,"tags":"not a list"}`,
	`{"id":7,"spans":[{"ids":[1,1.5]}]}`,
	`{"id":8,"geo":{"at":-1}}`,
	`{"id":9,"attrs":{"k":1}}`,
	`{"id":10,"grid":[[1e400]]}`,
	`{"tenant":"no id"}`,
	`[1,2]`,
}

// FuzzNestedJSONToParquet decodes arbitrary JSON into nested columns,
// writes what the decoder accepts through the sink and reads every leaf
// column back with parquet-go: its repetition levels, definition levels and
// values equal what the reference model computes from the message with
// encoding/json. A message the model rejects is rejected by the decoder
// with the same reason, and the other way round.
func FuzzNestedJSONToParquet(f *testing.F) {
	for _, s := range nestedSeeds {
		f.Add([]byte(s))
	}
	d := newNestedDecoder(f)
	schema := d.Schema()
	fields := schema.Fields()
	required := map[string]bool{"id": true}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if !utf8.Valid(msg) || bytes.Contains(msg, []byte(`\u`)) {
			// encoding/json replaces invalid UTF-8 and lone surrogates
			// without a trace; the decoder's UTF-8 rules are FuzzDecode's.
			return
		}
		doc, perr := parseOrdered(msg)
		b := record.NewBatch(schema.Len(), 1)
		derr := d.Decode(msg, 1, b)
		var de *decode.Error
		if derr != nil {
			require.True(t, errors.As(derr, &de), "%v", derr)
			require.Zero(t, b.Len())
		}
		if perr != nil {
			return // not JSON to encoding/json: the decoder's parser decides alone
		}
		want, merr := expectRow(fields, required, doc)
		if merr != nil {
			require.Error(t, derr, "the model rejects the message (%v), the decoder accepts it", merr)
			require.Equal(t, merr.Error(), de.Reason, de.Detail)
			return
		}
		if derr != nil && de.Reason == decode.ReasonInvalidJSON {
			return // fastjson is stricter than encoding/json in places (depth)
		}
		require.NoError(t, derr, "the model accepts the message")
		require.Equal(t, 1, b.Len())

		s, dir := newTestSink(t, func(c *Config) { c.Partition = "" })
		w, err := s.NewWriter("w", schema)
		require.NoError(t, err)
		require.NoError(t, w.Write(context.Background(), b))
		require.NoError(t, w.Close(context.Background()))
		files := parquetFiles(t, dir)
		require.Len(t, files, 1)

		var wantCols [][]stripe
		for i, fd := range fields {
			cols := make([][]stripe, leafCount(fd))
			wantCols = append(wantCols, modelStripes(cols, fd, want[i])...)
		}
		require.Equal(t, wantCols, readStripes(t, files[0]))
	})
}

// readStripes reads every leaf column of a file with parquet-go's page
// reader, with its levels.
func readStripes(t testing.TB, path string) [][]stripe {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	out := make([][]stripe, len(pf.Schema().Columns()))
	for _, rg := range pf.RowGroups() {
		for c, cc := range rg.ColumnChunks() {
			pages := cc.Pages()
			for {
				p, err := pages.ReadPage()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				vals := make([]parquet.Value, p.NumValues())
				n, err := p.Values().ReadValues(vals)
				if !errors.Is(err, io.EOF) {
					require.NoError(t, err)
				}
				for _, v := range vals[:n] {
					st := stripe{rep: v.RepetitionLevel(), def: v.DefinitionLevel()}
					if !v.IsNull() {
						s := stripeText(v)
						st.val = &s
					}
					out[c] = append(out[c], st)
				}
				parquet.Release(p)
			}
			require.NoError(t, pages.Close())
		}
	}
	return out
}

// stripeText renders a leaf value as parquetcheck.Canon does.
func stripeText(v parquet.Value) string {
	switch v.Kind() {
	case parquet.ByteArray:
		return string(v.ByteArray())
	case parquet.Int64:
		return strconv.FormatInt(v.Int64(), 10)
	case parquet.Double:
		return *parquetcheck.Canon(record.Float(v.Double()))
	case parquet.Boolean:
		return strconv.FormatBool(v.Boolean())
	}
	return "?" + v.Kind().String()
}

func TestNestedSeedsToParquet(t *testing.T) {
	// The fuzz seeds run as a test too; this names the cases that must be
	// accepted, so a model and decoder that both reject everything fail.
	d := newNestedDecoder(t)
	accepted := 0
	for _, s := range nestedSeeds {
		if d.Decode([]byte(s), 1, record.NewBatch(d.Schema().Len(), 1)) == nil {
			accepted++
		}
	}
	require.Equal(t, 4, accepted)
}

// TestStateKeepsNestedFields round-trips a task state whose schema has
// nested fields (version 3), and checks that a flat schema still writes
// version 2, which older binaries read.
func TestStateKeepsNestedFields(t *testing.T) {
	st := &taskState{Task: "w", Fields: nestedSchema.Fields(), NextSeq: 2}
	b, err := encodeState(nil, st)
	require.NoError(t, err)
	require.Equal(t, byte(3), b[0])
	got, err := decodeState(b)
	require.NoError(t, err)
	require.True(t, record.FieldsEqual(st.Fields, got.Fields), "%v", got.Fields)

	flat, err := encodeState(nil, &taskState{Task: "w", Fields: testSchema.Fields()})
	require.NoError(t, err)
	require.Equal(t, byte(2), flat[0])

	// A nested type in a version 2 state is corrupt, not misread.
	v2 := slices.Clone(b)
	v2[0] = 2
	_, err = decodeState(appendChecksum(v2[:len(v2)-4], 0))
	require.ErrorContains(t, err, "bad field")
}

// TestNonCanonicalNestedValueIsNullAndCounted writes nested values the
// decoder never makes (a Go pipeline could): each is written as null and
// counted, the rest of its row and batch are written, and nothing fails.
func TestNonCanonicalNestedValueIsNullAndCounted(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	cfg := DefaultConfig()
	cfg.Name, cfg.Dir, cfg.Partition = "out", t.TempDir(), ""
	s, err := New(cfg, nil, reg)
	require.NoError(t, err)
	schema := record.MustSchema(
		record.Field{Name: "id", Type: record.TypeInt},
		record.Field{Name: "tags", Type: record.TypeList, Elem: &record.Field{Type: record.TypeInt}},
		record.Field{Name: "geo", Type: record.TypeStruct, Fields: []record.Field{{Name: "lat", Type: record.TypeFloat}}},
	)
	w, err := s.NewWriter("w", schema)
	require.NoError(t, err)
	b := record.NewBatch(3, 4)
	for i, v := range [][2]string{{`[1,2]`, `{"lat":1.5}`}, {`[1,"x"]`, `{"lat":1,"lat":2}`}, {`{`, `{"other":1}`}, {`[]`, `{}`}} {
		r := b.AppendRow(baseMs)
		r[0] = record.Int(int64(i))
		r[1] = record.NestedValue(record.TypeList, v[0])
		r[2] = record.NestedValue(record.TypeStruct, v[1])
	}
	require.NoError(t, w.Write(context.Background(), b))
	require.NoError(t, w.Close(context.Background()))
	require.Equal(t, float64(4), gather(t, reg, "out")["streamd_parquet_invalid_nested_values_total"])
	files := parquetFiles(t, cfg.Dir)
	require.Len(t, files, 1)
	st := readStripes(t, files[0])
	s1, s2 := "1", "2"
	l15 := *parquetcheck.Canon(record.Float(1.5))
	require.Equal(t, []stripe{{0, 3, &s1}, {1, 3, &s2}, {0, 0, nil}, {0, 0, nil}, {0, 1, nil}}, st[1], "tags")
	require.Equal(t, []stripe{{0, 2, &l15}, {0, 0, nil}, {0, 0, nil}, {0, 1, nil}}, st[2], "geo.lat")
}

// BenchmarkWriterNested writes 1024-row batches decoded from log-like
// messages with a struct, a list and a map next to scalars, and reports
// rows/s and MB/s of the messages' JSON: the cost of shredding nested
// values, next to BenchmarkWriter's flat rows.
func BenchmarkWriterNested(b *testing.B) {
	d, err := decode.NewJSON(decode.Config{Fields: []decode.Field{
		{Name: "ts", Type: record.TypeTimestamp, TimeFormat: decode.TimeEpochMS},
		{Name: "level", Type: record.TypeString},
		{Name: "msg", Type: record.TypeString},
		{Name: "http", Type: record.TypeStruct, Fields: []decode.Field{
			{Name: "method", Type: record.TypeString}, {Name: "status", Type: record.TypeInt}, {Name: "took_ms", Type: record.TypeFloat},
		}},
		{Name: "tags", Type: record.TypeList, Elem: &decode.Field{Type: record.TypeString}},
		{Name: "labels", Type: record.TypeMap, Elem: &decode.Field{Type: record.TypeString}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	const rows = 1024
	batch := record.NewBatch(d.Schema().Len(), rows)
	var raw int64
	for i := range rows {
		msg := fmt.Sprintf(`{"ts":%d,"level":"info","msg":"GET /api/items/%d done","http":{"method":"GET","status":%d,"took_ms":%d.25},`+
			`"tags":["api","v%d","edge"],"labels":{"pod":"api-%d","zone":"eu-%d","team":"core"}}`, baseMs+int64(i), i, 200+i%3, i%97, i%4, i%20, i%3)
		raw += int64(len(msg))
		if err := d.Decode([]byte(msg), 1, batch); err != nil {
			b.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.Dir = b.TempDir()
	cfg.Partition = ""
	s, err := New(cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	w, err := s.NewWriter("bench", d.Schema())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(raw)
	for b.Loop() {
		if err := w.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)*rows/b.Elapsed().Seconds(), "rows/s")
}
