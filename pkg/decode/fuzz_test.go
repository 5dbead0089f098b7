package decode

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// FuzzDecode checks that arbitrary input never panics, that a record is
// either appended whole or not at all, and that accepted values have their
// declared types.
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

	f.Fuzz(func(t *testing.T, msg []byte, brokerTS int64) {
		b := record.NewBatch(schema.Len(), 1)
		err := d.Decode(msg, brokerTS, b)
		if err != nil {
			var de *Error
			require.ErrorAs(t, err, &de)
			require.NotEmpty(t, de.Reason)
			require.Zero(t, b.Len())
			return
		}
		require.Equal(t, 1, b.Len())
		for i, v := range b.Row(0) {
			if !v.IsNull() {
				require.Equal(t, schema.Field(i).Type, v.T, "field %s", schema.Field(i).Name)
			}
			if v.T == record.TypeTimestamp {
				require.GreaterOrEqual(t, int64(v.N), int64(0))
			}
		}
		require.GreaterOrEqual(t, b.Time(0), int64(0))

		bb := record.NewBatch(1, 1)
		if err := brokerD.Decode(msg, brokerTS, bb); err == nil {
			require.Equal(t, brokerTS, bb.Time(0))
			require.Equal(t, record.TypeString, bb.Row(0)[0].T)
		}
	})
}
