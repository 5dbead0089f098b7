package decode

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// rawDecoder declares a raw top-level field, a raw nested field, an int
// and an extras field.
func rawDecoder(t testing.TB) *JSON {
	d, err := NewJSON(Config{
		Fields: []Field{
			{Name: "id", Type: record.TypeInt},
			{Name: "meta", Type: record.TypeString, Raw: true},
			{Name: "inner", Path: []string{"a", "b"}, Type: record.TypeString, Raw: true},
		},
		ExtrasField: "extras",
	})
	require.NoError(t, err)
	return d
}

func TestDecodeRawAndExtras(t *testing.T) {
	d := rawDecoder(t)
	require.Equal(t, "id:int, meta:string, inner:string, extras:string", d.Schema().String())
	for _, tc := range []struct {
		name, msg           string
		meta, inner, extras any // nil means NULL
	}{
		{"nested values kept whole", `{"id":1,"meta":{"k":[1,2,{"x":null}],"s":"é\n"},"a":{"b":[true,1.50]},"new":{"deep":{"er":1}},"n":3}`,
			`{"k":[1,2,{"x":null}],"s":"é\n"}`, `[true,1.50]`, `{"new":{"deep":{"er":1}},"n":3}`},
		{"scalars as JSON text", `{"id":2,"meta":"text","a":{"b":7}}`, `"text"`, `7`, nil},
		{"null and absent are NULL", `{"id":3,"meta":null}`, nil, nil, nil},
		{"a nested path declares its first key", `{"id":4,"a":{"b":1,"c":2},"z":"\u0000q\"\\"}`, nil, `1`, `{"z":"\u0000q\"\\"}`},
		{"keys are escaped", `{"id":5,"we\"ird\\key":1}`, nil, nil, `{"we\"ird\\key":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := record.NewBatch(4, 1)
			require.NoError(t, d.Decode([]byte(tc.msg), 1, b))
			row := b.Row(0)
			for i, want := range []any{tc.meta, tc.inner, tc.extras} {
				v := row[i+1]
				if want == nil {
					require.True(t, v.IsNull(), "column %d: %v", i+1, v)
					continue
				}
				require.Equal(t, record.TypeString, v.T)
				require.Equal(t, want, v.S, "column %d", i+1)
			}
		})
	}
}

func TestNewJSONRejectsRawNonString(t *testing.T) {
	_, err := NewJSON(Config{Fields: []Field{{Name: "x", Type: record.TypeInt, Raw: true}}})
	require.ErrorContains(t, err, `raw field "x" must be a string column`)
	_, err = NewJSON(Config{Fields: []Field{{Name: "x", Type: record.TypeInt}}, ExtrasField: "x"})
	require.Error(t, err, "the extras field collides with a declared field")
}

// normalize decodes JSON text into a comparable value, numbers kept as
// their text.
func normalize(t *testing.T, text []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v), "%q", text)
	return v
}

// FuzzDecodeNestedJSON decodes arbitrary messages with raw and extras
// fields: an accepted record's raw columns are valid UTF-8 JSON equal to
// the message's values at their paths, and its extras column is a JSON
// object of exactly the undeclared top-level keys with their values.
func FuzzDecodeNestedJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"meta":{"k":[1,2,{"x":null}]},"a":{"b":[true]},"new":{"deep":1}}`,
		`{"meta":"\ud800","x":"\xff"}`,
		`{"a":1,"z":[[[[]]]],"":{"":""}}`,
		`{"id":1.5}`, `[]`, `{"meta":1e400}`, `{"dup":1,"dup":2}`,
	} {
		f.Add([]byte(s))
	}
	d := rawDecoder(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		b := record.NewBatch(4, 1)
		if err := d.Decode(msg, 1, b); err != nil {
			require.Zero(t, b.Len())
			return
		}
		if !utf8.Valid(msg) || !json.Valid(msg) {
			return // fastjson accepts more than encoding/json; only compare what both read
		}
		var doc map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(msg, &doc))
		keys := map[string]int{}
		dec := json.NewDecoder(bytes.NewReader(msg))
		tok, _ := dec.Token()
		require.Equal(t, json.Delim('{'), tok)
		for dec.More() {
			k, err := dec.Token()
			require.NoError(t, err)
			keys[k.(string)]++
			var skip json.RawMessage
			require.NoError(t, dec.Decode(&skip))
		}
		row := b.Row(0)
		check := func(v record.Value, want json.RawMessage, ok bool) {
			if !ok || string(want) == "null" {
				require.True(t, v.IsNull())
				return
			}
			require.True(t, utf8.ValidString(v.S))
			require.Equal(t, normalize(t, want), normalize(t, []byte(v.S)))
		}
		for k, n := range keys {
			if n > 1 {
				return // duplicate keys: readers disagree on which value wins
			}
			_ = k
		}
		meta, ok := doc["meta"]
		check(row[1], meta, ok)
		var a map[string]json.RawMessage
		if raw, ok := doc["a"]; ok && json.Unmarshal(raw, &a) == nil {
			inner, ok := a["b"]
			check(row[2], inner, ok)
		}
		extra := map[string]json.RawMessage{}
		for k, v := range doc {
			if k != "id" && k != "meta" && k != "a" {
				extra[k] = v
			}
		}
		if len(extra) == 0 {
			require.True(t, row[3].IsNull())
			return
		}
		require.True(t, utf8.ValidString(row[3].S))
		var got map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(row[3].S), &got), "%q", row[3].S)
		require.Len(t, got, len(extra))
		for k, v := range extra {
			require.Contains(t, got, k)
			require.Equal(t, normalize(t, v), normalize(t, got[k]), "key %q", k)
		}
	})
}
