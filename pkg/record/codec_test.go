package record

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// codecGolden lists values with their encodings, worked out by hand from the
// format (see codec.go), not taken from AppendValue. The scalar encodings are
// the ones checkpoints written by earlier versions hold, so they must never
// change. Varints: zigzag maps n to 2n (n >= 0) or -2n-1 (n < 0), then 7 bits
// a byte, low group first, the high bit set on every byte but the last.
var codecGolden = []struct {
	name string
	v    Value
	enc  []byte
}{
	{"null", Null, []byte{0x00}},
	{"empty string", String(""), []byte{0x01, 0x00}},
	// "é" is two bytes in UTF-8, so the length is 6.
	{"string", String("héllo"), []byte{0x01, 0x06, 'h', 0xc3, 0xa9, 'l', 'l', 'o'}},
	// 200 = 0b1_1001000: low group 0x48 with the continuation bit, then 1.
	{"long string", String(strings.Repeat("x", 200)), append([]byte{0x01, 0xc8, 0x01}, bytes.Repeat([]byte{'x'}, 200)...)},
	{"int zero", Int(0), []byte{0x02, 0x00}},
	{"int one", Int(1), []byte{0x02, 0x02}},
	{"int minus one", Int(-1), []byte{0x02, 0x01}},
	{"int minus 64", Int(-64), []byte{0x02, 0x7f}},
	{"int 64", Int(64), []byte{0x02, 0x80, 0x01}},
	// 300 zigzags to 600 = 4*128 + 88; 88 = 0x58.
	{"int 300", Int(300), []byte{0x02, 0xd8, 0x04}},
	// MinInt64 zigzags to 2^64-1: nine groups of seven ones, then one bit.
	{"int min", Int(math.MinInt64), []byte{0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	// MaxInt64 zigzags to 2^64-2: the lowest group is 0b1111110.
	{"int max", Int(math.MaxInt64), []byte{0x02, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	// 1.5 is 0x3ff8000000000000, -2 is 0xc000000000000000.
	{"float", Float(1.5), []byte{0x03, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f}},
	{"float negative", Float(-2), []byte{0x03, 0, 0, 0, 0, 0, 0, 0, 0xc0}},
	{"float negative zero", Float(math.Copysign(0, -1)), []byte{0x03, 0, 0, 0, 0, 0, 0, 0, 0x80}},
	{"float NaN", Value{N: 0x7ff8000000000001, T: TypeFloat}, []byte{0x03, 0x01, 0, 0, 0, 0, 0, 0xf8, 0x7f}},
	{"float inf", Float(math.Inf(1)), []byte{0x03, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f}},
	{"float minus inf", Float(math.Inf(-1)), []byte{0x03, 0, 0, 0, 0, 0, 0, 0xf0, 0xff}},
	{"bool true", Bool(true), []byte{0x04, 0x01}},
	{"bool false", Bool(false), []byte{0x04, 0x00}},
	// One second is 1,000,000 µs, zigzag 2,000,000 = 122*128^2 + 9*128 + 0.
	{"timestamp", Timestamp(1_000_000), []byte{0x05, 0x80, 0x89, 0x7a}},
	{"timestamp negative", Timestamp(-5), []byte{0x05, 0x09}},
	{"timestamp epoch", Timestamp(0), []byte{0x05, 0x00}},
	// Nested values carry their JSON text as a string does.
	{"struct", NestedValue(TypeStruct, `{"a":1}`), append([]byte{0x06, 0x07}, `{"a":1}`...)},
	{"empty struct", NestedValue(TypeStruct, `{}`), append([]byte{0x06, 0x02}, `{}`...)},
	{"list", NestedValue(TypeList, `[1,null]`), append([]byte{0x07, 0x08}, `[1,null]`...)},
	{"map", NestedValue(TypeMap, `{"k":"v"}`), append([]byte{0x08, 0x09}, `{"k":"v"}`...)},
}

func TestValueCodecGolden(t *testing.T) {
	for _, g := range codecGolden {
		t.Run(g.name, func(t *testing.T) {
			require.Equal(t, g.enc, AppendValue(nil, g.v), "encoding")
			got, rest, err := ReadValue(g.enc)
			require.NoError(t, err)
			require.Empty(t, rest)
			require.True(t, Equal(g.v, got), "decoded %#v, want %#v", got, g.v)
		})
	}
}

// A row is its values' encodings one after another; reading them back in
// turn gives every value, and each read consumes exactly its own bytes.
func TestValueCodecSequence(t *testing.T) {
	var in []byte
	for _, g := range codecGolden {
		in = append(in, g.enc...)
	}
	enc := []byte{0xaa}
	for _, g := range codecGolden {
		enc = AppendValue(enc, g.v)
	}
	require.Equal(t, append([]byte{0xaa}, in...), enc, "appends, not overwrites")
	rest := in
	for _, g := range codecGolden {
		var v Value
		var err error
		v, rest, err = ReadValue(rest)
		require.NoError(t, err, g.name)
		require.True(t, Equal(g.v, v), "%s: decoded %#v", g.name, v)
	}
	require.Empty(t, rest)
}

func TestValueCodecRoundTrip(t *testing.T) {
	for _, v := range []Value{
		Int(-1_234_567_890_123), Float(-1e-300), Float(math.NaN()), Float(math.SmallestNonzeroFloat64),
		Timestamp(1_700_000_000_123_456), Timestamp(math.MinInt64), TimestampMillis(-1),
		String("tab\tquote\"nul\x00"), String("\xff\xfe not UTF-8"),
		NestedValue(TypeStruct, `{"geo":{"lat":1.5,"tags":["a","b"]},"n":null}`),
		NestedValue(TypeList, `[]`), NestedValue(TypeMap, `{"é":[{"x":-1}]}`),
		NestedValue(TypeList, strings.Repeat(`[`, 16)+strings.Repeat(`]`, 16)),
	} {
		got, rest, err := ReadValue(AppendValue(nil, v))
		require.NoError(t, err, "%#v", v)
		require.Empty(t, rest)
		require.True(t, Equal(v, got), "decoded %#v, want %#v", got, v)
	}
}

// Different values of one type, and equal texts of different types, must
// encode differently: the encoding serves as a value's identity.
func TestValueCodecDistinguishesValues(t *testing.T) {
	vals := []Value{
		Null, String(""), String("1"), Int(1), Float(1), Bool(true), Timestamp(1),
		NestedValue(TypeStruct, `{}`), NestedValue(TypeMap, `{}`),
		NestedValue(TypeStruct, `{"a":1}`), NestedValue(TypeStruct, `{"a":2}`),
		NestedValue(TypeList, `[1]`), String(`[1]`),
	}
	seen := map[string]int{}
	for i, v := range vals {
		k := string(AppendValue(nil, v))
		j, dup := seen[k]
		require.False(t, dup, "%#v and %#v encode alike", vals[j], v)
		seen[k] = i
	}
}

func TestReadValueErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"empty", nil, errTruncated, "read value: type: truncated input"},
		{"string no length", []byte{0x01}, errTruncated, "read value: string length: truncated input"},
		{"string short", []byte{0x01, 5, 'a'}, errTruncated, "read value: string of 5 bytes, have 1: truncated input"},
		{"string length overflow", []byte{0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, errVarintOverflow, ""},
		{"int short", []byte{0x02, 0x80}, errTruncated, "read value: int: truncated input"},
		{"int overflow", []byte{0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, errVarintOverflow, ""},
		{"float short", []byte{0x03, 1, 2, 3}, errTruncated, "read value: float: truncated input"},
		{"bool short", []byte{0x04}, errTruncated, "read value: bool: truncated input"},
		{"timestamp short", []byte{0x05}, errTruncated, "read value: timestamp: truncated input"},
		{"struct no length", []byte{0x06}, errTruncated, "read value: struct length: truncated input"},
		{"list short", []byte{0x07, 3, '[', ']'}, errTruncated, "read value: list of 3 bytes, have 2: truncated input"},
		{"map short", []byte{0x08, 1}, errTruncated, "read value: map of 1 bytes, have 0: truncated input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadValue(tt.in)
			require.ErrorIs(t, err, tt.want)
			if tt.msg != "" {
				require.EqualError(t, err, tt.msg)
			}
		})
	}
	_, _, err := ReadValue([]byte{99})
	require.EqualError(t, err, "read value: unknown type 99")
	_, _, err = ReadValue([]byte{9, 0})
	require.EqualError(t, err, "read value: unknown type 9")
}

func TestReadValueCopiesText(t *testing.T) {
	for _, v := range []Value{String("abc"), NestedValue(TypeList, `["abc"]`)} {
		enc := AppendValue(nil, v)
		got, _, err := ReadValue(enc)
		require.NoError(t, err)
		clear(enc)
		require.Equal(t, v.S, got.S, "the decoded text does not alias the input")
	}
}

// FuzzValueCodec checks that reading arbitrary bytes never panics and
// consumes no more than it was given, that whatever reads back encodes and
// reads again to the same value, and that any value built from the fuzzed
// type, number and text survives an encode and decode.
func FuzzValueCodec(f *testing.F) {
	for _, g := range codecGolden {
		f.Add(g.enc, uint8(g.v.T), g.v.N, g.v.S)
	}
	f.Add([]byte{}, uint8(0), uint64(0), "")
	f.Add([]byte{0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, uint8(9), uint64(1), "x")
	f.Fuzz(func(t *testing.T, in []byte, typ uint8, n uint64, s string) {
		v, rest, err := ReadValue(in)
		if err == nil {
			require.LessOrEqual(t, len(rest), len(in))
			require.Equal(t, in[len(in)-len(rest):], rest, "rest is the input's tail")
			enc := AppendValue(nil, v)
			got, rest2, err := ReadValue(enc)
			require.NoError(t, err, "re-read of %#v", v)
			require.Empty(t, rest2)
			require.True(t, Equal(v, got), "re-read %#v as %#v", v, got)
			require.Equal(t, enc, AppendValue(nil, got), "encoding is stable")
		}

		// A value as the constructors make it: only the fields its type uses.
		w := Value{T: Type(typ % uint8(TypeMap+1))}
		switch w.T {
		case TypeString, TypeStruct, TypeList, TypeMap:
			w.S = s
		case TypeInt, TypeFloat, TypeTimestamp:
			w.N = n
		case TypeBool:
			w = Bool(n&1 != 0)
		}
		enc := AppendValue([]byte{0xaa}, w)
		got, rest, err := ReadValue(append(enc[1:], 0xbb))
		require.NoError(t, err, "read of %#v", w)
		require.Equal(t, []byte{0xbb}, rest)
		require.True(t, Equal(w, got), "round trip of %#v gave %#v", w, got)
	})
}

func TestFieldTypeCodec(t *testing.T) {
	geo := Field{Name: "geo", Type: TypeStruct, Fields: []Field{
		{Name: "lat", Type: TypeFloat},
		{Name: "tags", Type: TypeList, Elem: &Field{Type: TypeString}},
	}}
	// Worked out by hand: struct (6), two members; "lat" float (3); "tags"
	// list (7) of string (1).
	want := []byte{0x06, 0x02, 0x03, 'l', 'a', 't', 0x03, 0x04, 't', 'a', 'g', 's', 0x07, 0x01}
	require.Equal(t, want, AppendFieldType(nil, geo))
	got, rest, err := ReadFieldType(append(want, 0xbb), "geo")
	require.NoError(t, err)
	require.Equal(t, []byte{0xbb}, rest)
	require.True(t, got.Equal(geo), "%s", got.TypeString())

	for _, f := range []Field{
		{Name: "s", Type: TypeString}, {Name: "ts", Type: TypeTimestamp},
		{Name: "m", Type: TypeMap, Elem: &Field{Type: TypeList, Elem: &Field{Type: TypeStruct, Fields: []Field{{Name: "odd name", Type: TypeBool}}}}},
		geoField(),
	} {
		enc := AppendFieldType([]byte{0xaa}, f)
		require.Equal(t, byte(0xaa), enc[0], "appends")
		if f.Type.Scalar() {
			require.Equal(t, []byte{0xaa, byte(f.Type)}, enc, "a scalar type is its type byte")
		}
		got, rest, err := ReadFieldType(enc[1:], f.Name)
		require.NoError(t, err)
		require.Empty(t, rest)
		require.True(t, got.Equal(f), "%s read back as %s", f.TypeString(), got.TypeString())
		require.NoError(t, got.Validate())
	}
}

func TestReadFieldTypeErrors(t *testing.T) {
	deep := bytes.Repeat([]byte{byte(TypeList)}, MaxNestedDepth+1)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, `read field "f": type: truncated input`},
		{"null type", []byte{0x00}, `read field "f": unknown type 0`},
		{"unknown type", []byte{0x09}, `read field "f": unknown type 9`},
		{"list without element", []byte{0x07}, `read field "f[]": type: truncated input`},
		{"struct without count", []byte{0x06}, `read field "f": member count: truncated input`},
		{"too many members", []byte{0x06, 0x03, 0x01, 'a', 0x01}, `read field "f": 3 members in 3 bytes: truncated input`},
		{"short member name", []byte{0x06, 0x01, 0x05, 'a'}, `read field "f": member name of 5 bytes, have 1: truncated input`},
		{"bad member type", []byte{0x06, 0x01, 0x01, 'a', 0x63}, `read field "f.a": unknown type 99`},
		{"too deep", append(deep, byte(TypeInt)), `read field "f` + strings.Repeat("[]", MaxNestedDepth) + `": nested more than 16 levels deep`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadFieldType(tc.in, "f")
			require.EqualError(t, err, tc.want)
		})
	}
	// MaxNestedDepth levels are allowed, as Field.Validate allows them.
	f, _, err := ReadFieldType(append(deep[1:], byte(TypeInt)), "f")
	require.NoError(t, err)
	require.NoError(t, f.Validate())
}

// FuzzFieldTypeCodec checks that reading arbitrary bytes as a field type
// never panics, and that what reads back encodes to bytes that read back
// to the same type.
func FuzzFieldTypeCodec(f *testing.F) {
	f.Add(AppendFieldType(nil, geoField()))
	f.Add([]byte{0x06, 0x02, 0x03, 'l', 'a', 't', 0x03, 0x04, 't', 'a', 'g', 's', 0x07, 0x01})
	f.Add([]byte{0x08, 0x07, 0x05})
	f.Fuzz(func(t *testing.T, in []byte) {
		fd, rest, err := ReadFieldType(in, "f")
		if err != nil {
			return
		}
		require.LessOrEqual(t, len(rest), len(in))
		enc := AppendFieldType(nil, fd)
		got, rest, err := ReadFieldType(enc, "f")
		require.NoError(t, err)
		require.Empty(t, rest)
		require.True(t, got.Equal(fd), "%s read back as %s", fd.TypeString(), got.TypeString())
	})
}
