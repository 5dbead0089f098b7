package decode

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// nestedFields declares one field of each nested type, a list of structs
// and a map of lists.
func nestedFields() []Field {
	return []Field{
		{Name: "id", Type: record.TypeInt},
		{Name: "geo", Type: record.TypeStruct, Fields: []Field{
			{Name: "lat", Type: record.TypeFloat},
			{Name: "lon", Type: record.TypeFloat, Required: true},
			{Name: "city", Type: record.TypeString},
		}},
		{Name: "tags", Type: record.TypeList, Elem: &Field{Type: record.TypeString}},
		{Name: "attrs", Type: record.TypeMap, Elem: &Field{Type: record.TypeInt}},
		{Name: "spans", Type: record.TypeList, Elem: &Field{Type: record.TypeStruct, Fields: []Field{
			{Name: "name", Type: record.TypeString},
			{Name: "at", Type: record.TypeTimestamp, TimeFormat: TimeEpochMS},
			{Name: "ids", Type: record.TypeList, Elem: &Field{Type: record.TypeInt}},
		}}},
		{Name: "m", Type: record.TypeMap, Elem: &Field{Type: record.TypeList, Elem: &Field{Type: record.TypeBool}}},
	}
}

func TestDecodeNestedSchema(t *testing.T) {
	d, err := NewJSON(Config{Fields: nestedFields()})
	require.NoError(t, err)
	require.Equal(t, "id:int, geo:struct<lat:float,lon:float,city:string>, tags:list<string>, attrs:map<string,int>, "+
		"spans:list<struct<name:string,at:timestamp,ids:list<int>>>, m:map<string,list<bool>>", d.Schema().String())
	require.Nil(t, d.fast, "nested fields take the full decoder")
}

func TestDecodeNestedCanonical(t *testing.T) {
	d, err := NewJSON(Config{Fields: nestedFields()})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, msg string
		want      []string // per nested column, "" for NULL
	}{
		{"all present",
			`{"id":1,"geo":{"city":"Zürich","lat":47.37,"lon":8,"alt":400},"tags":["a","b\n",null],"attrs":{"x":1,"y":2.0,"z":null},` +
				`"spans":[{"name":"db","at":1700000000123,"ids":[1,2]},null,{}],"m":{"k":[true,null,false],"e":[]}}`,
			[]string{`{"lat":47.37,"lon":8,"city":"Zürich"}`, `["a","b\n",null]`, `{"x":1,"y":2,"z":null}`,
				`[{"name":"db","at":"2023-11-14T22:13:20.123000Z","ids":[1,2]},null,{}]`, `{"k":[true,null,false],"e":[]}`}},
		{"null and absent", `{"id":2,"geo":null,"attrs":null}`, []string{"", "", "", "", ""}},
		{"empty containers", `{"id":3,"geo":{"lon":1.5,"lat":null},"tags":[],"attrs":{},"spans":[],"m":{}}`,
			[]string{`{"lon":1.5}`, `[]`, `{}`, `[]`, `{}`}},
		{"repeated keys keep the first value", `{"geo":{"lon":1,"lon":2},"attrs":{"a":1,"a":2,"b":3}}`,
			[]string{`{"lon":1}`, "", `{"a":1,"b":3}`, "", ""}},
		{"escaped keys", `{"geo":{"l\u006fn":3},"attrs":{"q\"\\\u00e9":1}}`, []string{`{"lon":3}`, "", `{"q\"\\é":1}`, "", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := record.NewBatch(d.Schema().Len(), 1)
			require.NoError(t, d.Decode([]byte(tc.msg), 1, b))
			row := b.Row(0)
			for j, want := range tc.want {
				v := row[j+1]
				if want == "" {
					require.True(t, v.IsNull(), "%s: %#v", d.Schema().Field(j+1).Name, v)
					continue
				}
				require.Equal(t, d.Schema().Field(j+1).Type, v.T)
				require.Equal(t, want, v.S, d.Schema().Field(j+1).Name)
			}
		})
	}
}

func TestDecodeNestedRejects(t *testing.T) {
	d, err := NewJSON(Config{Fields: nestedFields(), MaxRecordBytes: 4096})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, msg, reason, detail string
	}{
		{"struct is not an object", `{"geo":[1]}`, ReasonTypeMismatch, `field "geo": want struct<lat:float,lon:float,city:string>, got array`},
		{"member of another type", `{"geo":{"lon":"x"}}`, ReasonTypeMismatch, `field "geo.lon": want float, got string`},
		{"required member absent", `{"geo":{"lat":1}}`, ReasonMissingField, `required field "geo.lon" is absent`},
		{"required member null", `{"geo":{"lon":null}}`, ReasonMissingField, `required field "geo.lon" is null`},
		{"list element", `{"tags":["a",1]}`, ReasonTypeMismatch, `field "tags[1]": want string, got number`},
		{"map value", `{"attrs":{"a":1,"b":1.5}}`, ReasonTypeMismatch, `field "attrs[\"b\"]": want int, got number`},
		{"deep member", `{"spans":[{},{"ids":[1,"2"]}]}`, ReasonTypeMismatch, `field "spans[1].ids[1]": want int`},
		{"deep timestamp", `{"spans":[{"at":-5}]}`, ReasonBadTimestamp, `field "spans[0].at"`},
		{"list is not an array", `{"m":{"k":{"a":true}}}`, ReasonTypeMismatch, `field "m[\"k\"]": want list<bool>, got object`},
		{"invalid UTF-8 in a member", "{\"tags\":[\"\xff\"]}", ReasonInvalidUTF8, `field "tags[0]"`},
		{"invalid UTF-8 in a map key", "{\"attrs\":{\"\xff\":1}}", ReasonInvalidUTF8, `key`},
		{"canonical text too large", `{"spans":[` + strings.Repeat(`{"at":0},`, 200) + `{}]}`, ReasonRecordTooLarge, `field "spans"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := record.NewBatch(d.Schema().Len(), 1)
			err := d.Decode([]byte(tc.msg), 1, b)
			var de *Error
			require.True(t, errors.As(err, &de), "%v", err)
			require.Equal(t, tc.reason, de.Reason, de.Detail)
			require.Contains(t, de.Detail, tc.detail)
			require.Zero(t, b.Len())
		})
	}
}

func TestDecodeNestedRepairsUTF8(t *testing.T) {
	d, err := NewJSON(Config{Fields: nestedFields(), InvalidUTF8: UTF8Replace})
	require.NoError(t, err)
	b := record.NewBatch(d.Schema().Len(), 1)
	require.NoError(t, d.Decode([]byte("{\"tags\":[\"a\xffb\"],\"attrs\":{\"k\xfe\":1}}"), 1, b))
	require.Equal(t, "[\"a\uFFFDb\"]", b.Row(0)[2].S)
	require.Equal(t, "{\"k\uFFFD\":1}", b.Row(0)[3].S)
}

func TestNewJSONRejectsBadNested(t *testing.T) {
	deep := Field{Type: record.TypeString}
	for range record.MaxNestedDepth + 1 {
		e := deep
		deep = Field{Type: record.TypeList, Elem: &e}
	}
	deep.Name = "deep"
	for _, tc := range []struct {
		name  string
		field Field
		want  string
	}{
		{"struct without fields", Field{Name: "s", Type: record.TypeStruct}, `field "s": a struct needs at least one field`},
		{"list without element", Field{Name: "l", Type: record.TypeList}, `field "l": a list needs its element type`},
		{"member with a path", Field{Name: "s", Type: record.TypeStruct, Fields: []Field{{Name: "a", Path: []string{"x"}, Type: record.TypeInt}}}, `field "s.a": a struct field is read from its name`},
		{"duplicate member", Field{Name: "s", Type: record.TypeStruct, Fields: []Field{{Name: "a", Type: record.TypeInt}, {Name: "a", Type: record.TypeInt}}}, `duplicate struct field "a"`},
		{"nested member without type", Field{Name: "s", Type: record.TypeStruct, Fields: []Field{{Name: "a", Type: record.TypeMap}}}, `field "s.a": a map needs its element type`},
		{"required element", Field{Name: "l", Type: record.TypeList, Elem: &Field{Type: record.TypeInt, Required: true}}, `field "l[]": list elements and map values take only a type`},
		{"raw nested", Field{Name: "l", Type: record.TypeList, Raw: true, Elem: &Field{Type: record.TypeInt}}, `cannot be raw`},
		{"too deep", deep, `nested more than 16 levels deep`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewJSON(Config{Fields: []Field{tc.field}})
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestFloatsParseExactly decodes floats that fastfloat.Parse rounds a unit
// in the last place off (valyala/fastjson#91, #110): every float field,
// nested or not, holds the number strconv.ParseFloat reads, so a value a
// producer wrote in shortest round-trip form reads back as itself.
func TestFloatsParseExactly(t *testing.T) {
	d, err := NewJSON(Config{Fields: []Field{
		{Name: "f", Type: record.TypeFloat},
		{Name: "ts", Type: record.TypeTimestamp, TimeFormat: TimeEpochS},
	}})
	require.NoError(t, err)
	for _, text := range []string{"8.54E-4", "2.0250405e+07", "-1.7613093693124758e+09", "0.1", "3.0e-2", "1.5"} {
		b := record.NewBatch(2, 1)
		require.NoError(t, d.Decode([]byte(`{"f":`+text+`,"ts":`+strings.TrimPrefix(text, "-")+`}`), 1, b))
		want, err := strconv.ParseFloat(text, 64)
		require.NoError(t, err)
		require.Equal(t, want, b.Row(0)[0].Float(), text)
	}
	// Timestamps in fractional epoch seconds round from the exact number.
	b := record.NewBatch(2, 1)
	require.NoError(t, d.Decode([]byte(`{"ts":1761309369.3124758}`), 1, b))
	require.Equal(t, int64(1761309369312476), b.Row(0)[1].Int())
}

// TestParseFloatMatchesStrconv compares parseFloat with strconv.ParseFloat
// on numbers written every way producers write them, on both sides of the
// 15-digit fast path.
func TestParseFloatMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50_000 {
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		f = math.Mod(f, math.Pow10(rng.IntN(30)-10))
		for _, text := range []string{
			strconv.FormatFloat(f, 'g', -1, 64),
			strconv.FormatFloat(f, 'f', rng.IntN(17), 64),
			strconv.FormatFloat(f, 'e', rng.IntN(17), 64),
		} {
			want, werr := strconv.ParseFloat(text, 64)
			got, err := parseFloat([]byte(text))
			require.Equal(t, werr == nil, err == nil, text)
			require.Equal(t, math.Float64bits(want), math.Float64bits(got), text)
		}
	}
}
