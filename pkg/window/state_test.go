package window

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch"
	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
	"github.com/axiomhq/hyperloglog"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// requireAccEqual compares accumulators field by field; sketches are compared
// by their compacted encodings, since the libraries' encodings depend on
// insertion order.
func requireAccEqual(t *testing.T, want, got *Acc) {
	t.Helper()
	require.Equal(t, want.N, got.N, "N")
	require.Equal(t, math.Float64bits(want.F), math.Float64bits(got.F), "F")
	require.True(t, record.Equal(want.V, got.V), "V: want %#v got %#v", want.V, got.V)
	require.Equal(t, want.T, got.T, "T")
	require.True(t, record.Equal(want.X, got.X), "X: want %#v got %#v", want.X, got.X)
	require.Equal(t, sketchBytes(t, want.Sketch), sketchBytes(t, got.Sketch), "sketch")
}

func sketchBytes(t *testing.T, sk any) []byte {
	t.Helper()
	switch sk := sk.(type) {
	case nil:
		return nil
	case *smallDistinct:
		// Stored as the sketch it becomes.
		return sketchBytes(t, sk.sketch(false))
	case *hyperloglog.Sketch:
		c := sk.Clone()
		c.Estimate() // compacts the insertion-ordered temporary set
		b, err := c.MarshalBinary()
		require.NoError(t, err)
		return b
	case *ddsketch.DDSketch:
		var b []byte
		sk.Encode(&b, false)
		return b
	}
	t.Fatalf("unexpected sketch %T", sk)
	return nil
}

// seedAccs returns accumulators of every function over random rows, plus
// hand-made edge cases, for round-trip tests and the fuzz corpus.
func seedAccs(t testing.TB) []Acc {
	r := rand.New(rand.NewPCG(9, 10))
	var accs []Acc
	for _, spec := range allSpecs() {
		agg, err := NewAggregate(spec, testSchema)
		require.NoError(t, err)
		for _, n := range []int{1, 30} {
			var a Acc
			addAll(agg, &a, randomRows(r, n))
			accs = append(accs, a)
		}
	}
	// A dense (non-sparse) distinct sketch and a quantile sketch with
	// negative and zero values.
	dense := mustAggregate(t, Spec{Fn: "count_distinct", Field: "i"})
	quant := mustAggregate(t, Spec{Fn: "quantile", Field: "f", Q: 0.5})
	var d, q Acc
	for k := range 20000 {
		dense.Add(&d, row(0, k, nil, nil, nil).row, 0)
		quant.Add(&q, row(0, nil, float64(k%200-100)*1.7, nil, nil).row, 0)
	}
	accs = append(accs, d, q,
		Acc{},
		Acc{N: -1, F: math.Copysign(0, -1), T: math.MinInt64},
		Acc{F: math.NaN(), V: record.Bool(true), X: record.Timestamp(-1)},
		Acc{N: math.MaxInt64, V: record.String(""), X: record.Float(math.Inf(-1))},
		Acc{Sketch: hyperloglog.New()},
	)
	return accs
}

func TestAccRoundTrip(t *testing.T) {
	accs := seedAccs(t)
	var enc []byte
	for k := range accs {
		enc = AppendAcc(enc, &accs[k])
	}
	rest := enc
	for k := range accs {
		var got Acc
		var err error
		rest, err = ReadAcc(rest, &got)
		require.NoError(t, err, "acc %d", k)
		requireAccEqual(t, &accs[k], &got)
	}
	require.Empty(t, rest)
}

func TestAccRoundTripKeepsResults(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, spec := range allSpecs() {
		t.Run(spec.Fn+"_"+spec.Field, func(t *testing.T) {
			agg := mustAggregate(t, spec)
			var a Acc
			addAll(agg, &a, randomRows(r, 200))
			var got Acc
			rest, err := ReadAcc(AppendAcc(nil, &a), &got)
			require.NoError(t, err)
			require.Empty(t, rest)
			require.Equal(t, agg.Result(&a), agg.Result(&got))

			// A restored accumulator keeps accumulating and merging.
			more := randomRows(r, 50)
			addAll(agg, &a, more)
			addAll(agg, &got, more)
			agg.Merge(&a, &got)
			agg.Merge(&got, &got)
			require.Equal(t, agg.Result(&a), agg.Result(&got))
		})
	}
}

func TestAccEncodingIsCompact(t *testing.T) {
	tests := []struct {
		name string
		acc  Acc
		want int
	}{
		{"empty", Acc{}, 1},
		{"count 100", Acc{N: 100}, 3},
		{"avg", Acc{N: 3, F: 1.5}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Len(t, AppendAcc(nil, &tt.acc), tt.want)
		})
	}
}

func TestReadAccErrors(t *testing.T) {
	hll := AppendAcc(nil, &Acc{Sketch: func() *hyperloglog.Sketch {
		s := hyperloglog.New()
		s.InsertHash(42)
		return s
	}()})
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "read acc: flags: truncated input"},
		{"reserved bit", []byte{0x80}, "read acc: reserved flag bit set in 0x80"},
		{"n truncated", []byte{accN, 0x80}, "read acc: n: truncated input"},
		{"f truncated", []byte{accF, 1, 2}, "read acc: f: truncated input"},
		{"v bad type", []byte{accV, 77}, "read acc: v: read value: unknown type 77"},
		{"t truncated", []byte{accT}, "read acc: t: truncated input"},
		{"x truncated", []byte{accX}, "read acc: x: read value: type: truncated input"},
		{"unknown sketch kind", []byte{3 << accSketchShift, 0, 0, 0, 0}, "read acc: unknown sketch kind 3"},
		{"sketch length truncated", []byte{sketchHLL << accSketchShift, 1}, "read acc: sketch length: truncated input"},
		{"sketch payload truncated", hll[:len(hll)-1], "read acc: sketch of "},
		{"bad hll", []byte{sketchHLL << accSketchShift, 1, 0, 0, 0, 9}, "read acc: distinct-count sketch: "},
		{"bad ddsketch", []byte{sketchDD << accSketchShift, 1, 0, 0, 0, 0xfc}, "read acc: quantile sketch: decode sketch: unknown flag 0xfc"},
		{"ddsketch bin out of range", ddBins(1<<62, 1), "read acc: quantile sketch: decode sketch: bin 4611686018427387904 with count 1"},
		{"ddsketch negative count", ddBins(10, -1), "read acc: quantile sketch: decode sketch: bin 10 with count -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Acc
			_, err := ReadAcc(tt.in, &a)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// ddBins encodes an accumulator whose quantile sketch has one positive bin.
func ddBins(index int64, count float64) []byte {
	var p []byte
	enc.EncodeFlag(&p, enc.NewFlag(enc.FlagTypePositiveStore, enc.BinEncodingIndexDeltasAndCounts))
	enc.EncodeUvarint64(&p, 1)
	enc.EncodeVarint64(&p, index)
	enc.EncodeVarfloat64(&p, count)
	b := binary.LittleEndian.AppendUint32([]byte{sketchDD << accSketchShift}, uint32(len(p)))
	return append(b, p...)
}

func TestReadAccRejectsForeignQuantileMapping(t *testing.T) {
	sk, err := ddsketch.NewDefaultDDSketch(0.05)
	require.NoError(t, err)
	require.NoError(t, sk.Add(3))
	enc := []byte{sketchDD << accSketchShift, 0, 0, 0, 0}
	sk.Encode(&enc, false)
	enc[1] = byte(len(enc) - 5)
	var a Acc
	_, err = ReadAcc(enc, &a)
	require.ErrorContains(t, err, "index mapping mismatch")
}

func TestAppendAccPanicsOnForeignSketch(t *testing.T) {
	require.PanicsWithValue(t, "append acc: unsupported sketch type string", func() {
		AppendAcc(nil, &Acc{Sketch: "x"})
	})
}

func FuzzReadAcc(f *testing.F) {
	for _, a := range seedAccs(f) {
		f.Add(AppendAcc(nil, &a))
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{accV | accX, byte(record.TypeString), 3, 'a', 'b', 'c', byte(record.TypeBool), 7})
	f.Fuzz(func(t *testing.T, in []byte) {
		var a Acc
		rest, err := ReadAcc(in, &a)
		if err != nil {
			return
		}
		require.LessOrEqual(t, len(rest), len(in))
		enc := AppendAcc(nil, &a)
		var b Acc
		rest, err = ReadAcc(enc, &b)
		require.NoError(t, err, "re-read of a valid encoding")
		require.Empty(t, rest)
		requireAccEqual(t, &a, &b)
		if _, hll := a.Sketch.(*hyperloglog.Sketch); !hll {
			// HyperLogLog writes its temporary set in insertion order, so
			// only the other encodings are byte-stable.
			require.Equal(t, enc, AppendAcc(nil, &b), "encoding is stable after one round trip")
		}
	})
}
