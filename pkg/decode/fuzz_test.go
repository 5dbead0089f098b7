package decode

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// FuzzDecode checks that arbitrary input never panics, that a record is
// either appended whole or not at all, that accepted values have their
// declared types, and that no accepted string is invalid UTF-8: under the
// dead-letter policy such a record is rejected as invalid_utf8, under the
// replace policy its strings are what strings.ToValidUTF8 makes of them.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		sampleLine,
		sampleLine[:80],
		`{}`,
		`null`,
		`{"s":"x","i":1,"f":1.5,"b":true,"t":"2025-11-21T12:00:00Z","n":{"t":1763726400}}`,
		`{"s":1,"i":1.5,"f":"x","b":0,"t":-1,"n":{"t":"x"}}`,
		`{"i":1e400,"f":NaN,"t":Inf,"n":{"t":9999999999999999999999}}`,
		`{"s":"\ud800","i":-9223372036854775808,"t":"9999-12-31T23:59:59.999999999+23:59"}`,
		"\x00\xff{",
		"{\"s\":\"k\xff\xfe\",\"t\":1763726400}",
		"{\"s\":\"\xc0\xaf\",\"t\":\"2025-11-21T12:00:00Z\xff\"}",
		"{\"s\":\"\xed\xa0\x80\xe2\x82\",\"t\":1}",
		"{\"s\":\"\xf4\x90\x80\x80\",\"t\":1}",
		"{\"s\":\"\\ud800\\udc00\\udfff\",\"t\":1}",
		"",
		" \r\n\t",
	} {
		f.Add([]byte(seed), int64(1))
	}
	d, err := NewJSON(Config{
		Fields: []Field{
			{Name: "s", Type: record.TypeString},
			{Name: "i", Type: record.TypeInt},
			{Name: "f", Type: record.TypeFloat},
			{Name: "b", Type: record.TypeBool},
			{Name: "t", Type: record.TypeTimestamp, TimeFormat: TimeAuto},
			{Name: "nt", Path: []string{"n", "t"}, Type: record.TypeTimestamp, TimeFormat: TimeEpochS},
		},
		EventTimeField: "t",
	})
	require.NoError(f, err)
	brokerD, err := NewJSON(Config{Fields: []Field{{Name: "s", Type: record.TypeString, Required: true}}})
	require.NoError(f, err)
	schema := d.Schema()
	strict, err := NewJSON(Config{Fields: []Field{{Name: "s", Type: record.TypeString, Key: true}}, MaxKeyBytes: 64})
	require.NoError(f, err)
	lenient, err := NewJSON(Config{Fields: []Field{{Name: "s", Type: record.TypeString}}, InvalidUTF8: UTF8Replace})
	require.NoError(f, err)

	f.Fuzz(func(t *testing.T, msg []byte, brokerTS int64) {
		sb := record.NewBatch(1, 1)
		lb := record.NewBatch(1, 1)
		serr := strict.Decode(msg, 1, sb)
		lerr := lenient.Decode(msg, 1, lb)
		if serr == nil && sb.Len() == 1 {
			require.True(t, utf8.ValidString(sb.Row(0)[0].S))
			require.LessOrEqual(t, len(sb.Row(0)[0].S), 64)
		}
		var de *Error
		if errors.As(serr, &de) {
			require.True(t, utf8.ValidString(de.Detail), "detail %q", de.Detail)
		}
		switch {
		case serr == nil && sb.Len() == 1:
			// Valid strings pass the lenient decoder unchanged.
			require.NoError(t, lerr)
			require.Equal(t, sb.Row(0), lb.Row(0))
		case errors.As(serr, &de) && de.Reason == ReasonInvalidUTF8:
			require.NoError(t, lerr)
			require.True(t, utf8.ValidString(lb.Row(0)[0].S))
			require.Contains(t, lb.Row(0)[0].S, "\uFFFD")
		}

		b := record.NewBatch(schema.Len(), 1)
		err := d.Decode(msg, brokerTS, b)
		if err != nil {
			var de *Error
			require.ErrorAs(t, err, &de)
			require.NotEmpty(t, de.Reason)
			require.Zero(t, b.Len())
			return
		}
		if b.Len() == 0 {
			require.True(t, isBlank(msg), "only blank input is skipped without an error")
			return
		}
		require.Equal(t, 1, b.Len())
		for i, v := range b.Row(0) {
			require.True(t, utf8.ValidString(v.S), "field %s: %q", schema.Field(i).Name, v.S)
			if !v.IsNull() {
				require.Equal(t, schema.Field(i).Type, v.T, "field %s", schema.Field(i).Name)
			}
			if v.T == record.TypeTimestamp {
				require.GreaterOrEqual(t, int64(v.N), int64(0))
			}
		}
		require.GreaterOrEqual(t, b.Time(0), int64(0))

		bb := record.NewBatch(1, 1)
		if err := brokerD.Decode(msg, brokerTS, bb); err == nil && bb.Len() == 1 {
			require.Equal(t, brokerTS, bb.Time(0))
			require.Equal(t, record.TypeString, bb.Row(0)[0].T)
		}
	})
}
