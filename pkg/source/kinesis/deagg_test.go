package kinesis

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestDeaggregate(t *testing.T) {
	good := appendAggregate(nil, []userRecord{
		{key: []byte("a"), data: []byte(`{"n":1}`)},
		{key: []byte("b"), data: []byte(`{"n":2}`)},
		{key: []byte("a"), data: []byte(`{"n":3}`)},
	})
	badSum := bytes.Clone(good)
	badSum[len(badSum)-1] ^= 0xff
	// Key table after the records, and unknown fields in both messages.
	var body []byte
	var rec []byte
	rec = protowire.AppendTag(rec, 4, protowire.BytesType)
	rec = protowire.AppendBytes(rec, []byte("tag"))
	rec = protowire.AppendTag(rec, recData, protowire.BytesType)
	rec = protowire.AppendBytes(rec, []byte("x"))
	rec = protowire.AppendTag(rec, recPartitionKeyIndex, protowire.VarintType)
	rec = protowire.AppendVarint(rec, 0)
	body = protowire.AppendTag(body, aggRecords, protowire.BytesType)
	body = protowire.AppendBytes(body, rec)
	body = protowire.AppendTag(body, 2, protowire.BytesType)
	body = protowire.AppendBytes(body, []byte("123"))
	body = protowire.AppendTag(body, aggPartitionKeyTable, protowire.BytesType)
	body = protowire.AppendBytes(body, []byte("late"))
	reordered := withFrame(body)
	// A record pointing past the key table.
	var badIdx []byte
	rec = protowire.AppendTag(nil, recPartitionKeyIndex, protowire.VarintType)
	rec = protowire.AppendVarint(rec, 3)
	rec = protowire.AppendTag(rec, recData, protowire.BytesType)
	rec = protowire.AppendBytes(rec, []byte("x"))
	badIdx = protowire.AppendTag(badIdx, aggRecords, protowire.BytesType)
	badIdx = protowire.AppendBytes(badIdx, rec)

	tests := []struct {
		name string
		in   []byte
		want []string // "key=data"
		bad  bool
	}{
		{name: "three records", in: good, want: []string{`a={"n":1}`, `b={"n":2}`, `a={"n":3}`}},
		{name: "empty aggregate", in: withFrame(nil), want: nil},
		{name: "key table last, unknown fields", in: reordered, want: []string{"late=x"}},
		{name: "wrong md5", in: badSum, bad: true},
		{name: "key index out of range", in: withFrame(badIdx), bad: true},
		{name: "truncated protobuf", in: withFrame([]byte{0x0a, 0x05, 'a'}), bad: true},
		{name: "no magic", in: []byte(`{"plain":"json record"}`), bad: true},
		{name: "too short", in: kplMagic, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d deaggregator
			recs, err := d.split(tt.in)
			if tt.bad {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			var got []string
			for _, r := range recs {
				got = append(got, string(r.key)+"="+string(r.data))
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func withFrame(body []byte) []byte {
	sum := md5.Sum(body)
	out := append(bytes.Clone(kplMagic), body...)
	return append(out, sum[:]...)
}

func FuzzDeaggregate(f *testing.F) {
	f.Add(appendAggregate(nil, []userRecord{{key: []byte("k"), data: []byte("v")}, {key: []byte("k2"), data: nil}}))
	f.Add(withFrame([]byte{0x1a, 0x02, 0x08, 0x00}))
	f.Add(withFrame(nil))
	f.Add([]byte{0xF3, 0x89, 0x9A, 0xC2, 0x0a})
	f.Add([]byte("plain"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d deaggregator
		recs, err := d.split(data)
		if err != nil {
			return
		}
		for _, r := range recs {
			// Every part points into the input.
			require.LessOrEqual(t, len(r.key)+len(r.data), len(data))
		}
		// A framed body decodes the same way twice.
		again, err := d.split(data)
		require.NoError(t, err)
		require.Len(t, again, len(recs))
	})
}

func BenchmarkDeaggregate(b *testing.B) {
	var recs []userRecord
	for i := range 100 {
		recs = append(recs, userRecord{
			key:  fmt.Appendf(nil, "device-%d", i%7),
			data: fmt.Appendf(nil, `{"equipmentId":"e-%d","tag":"water_temperature","value":13.45,"timestamp":%d}`, i, 1700000000000+i),
		})
	}
	agg := appendAggregate(nil, recs)
	var d deaggregator
	b.ReportAllocs()
	b.SetBytes(int64(len(agg)))
	b.ResetTimer()
	for b.Loop() {
		out, err := d.split(agg)
		if err != nil || len(out) != len(recs) {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// appendAggregate encodes user records as a KPL aggregate. It serves the
// tests and benchmarks, which need aggregates without the KPL itself.
func appendAggregate(dst []byte, recs []userRecord) []byte {
	var body []byte
	keyIndex := make(map[string]uint64)
	var keys [][]byte
	for _, r := range recs {
		if _, ok := keyIndex[string(r.key)]; !ok {
			keyIndex[string(r.key)] = uint64(len(keys))
			keys = append(keys, r.key)
		}
	}
	for _, k := range keys {
		body = protowire.AppendTag(body, aggPartitionKeyTable, protowire.BytesType)
		body = protowire.AppendBytes(body, k)
	}
	for _, r := range recs {
		var rec []byte
		rec = protowire.AppendTag(rec, recPartitionKeyIndex, protowire.VarintType)
		rec = protowire.AppendVarint(rec, keyIndex[string(r.key)])
		rec = protowire.AppendTag(rec, recData, protowire.BytesType)
		rec = protowire.AppendBytes(rec, r.data)
		body = protowire.AppendTag(body, aggRecords, protowire.BytesType)
		body = protowire.AppendBytes(body, rec)
	}
	sum := md5.Sum(body)
	dst = append(dst, kplMagic...)
	dst = append(dst, body...)
	return append(dst, sum[:]...)
}
