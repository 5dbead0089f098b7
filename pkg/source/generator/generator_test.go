package generator

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/source"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var start = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func newGen(t testing.TB, cfg Config) *Generator {
	t.Helper()
	if cfg.StartTime.IsZero() {
		cfg.StartTime = start
	}
	g, err := New(cfg)
	require.NoError(t, err)
	return g
}

func open(t testing.TB, g *Generator, split string, pos *source.Position) *Reader {
	t.Helper()
	r, err := g.Open(context.Background(), source.Split{ID: split}, pos)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	return r.(*Reader)
}

// readAll reads n messages (or to the end of the split), copying values.
func readAll(t testing.TB, r source.Reader, n, max int) ([][]byte, []source.Position, error) {
	t.Helper()
	var vals [][]byte
	var pos []source.Position
	var b source.Batch
	for len(vals) < n {
		b.Reset()
		err := r.Read(context.Background(), &b, min(max, n-len(vals)))
		for _, m := range b.Messages {
			vals = append(vals, bytes.Clone(m.Value))
			pos = append(pos, m.Position)
		}
		if err != nil {
			return vals, pos, err
		}
	}
	return vals, pos, nil
}

func TestDeterministicAndResumable(t *testing.T) {
	cfg := Config{Seed: 7, Splits: 3, Machines: 7, Tags: 12, OutOfOrderness: 2 * time.Second, LateFraction: 0.1, MalformedFraction: 0.1}
	g1, g2 := newGen(t, cfg), newGen(t, cfg)
	all, pos, err := readAll(t, open(t, g1, "gen-1", nil), 500, 64)
	require.NoError(t, err)
	for i, p := range pos {
		require.Equal(t, int64(i), p.Offset)
		require.Equal(t, g2.Record(1, int64(i)), all[i], "record %d", i)
	}
	resumed, pos2, err := readAll(t, open(t, g2, "gen-1", &source.Position{Offset: 123}), 377, 50)
	require.NoError(t, err)
	require.Equal(t, all[123:], resumed)
	require.Equal(t, int64(123), pos2[0].Offset)

	other := newGen(t, Config{Seed: 8, Splits: 3, Machines: 7, Tags: 12})
	require.NotEqual(t, g1.Record(1, 0), other.Record(1, 0))
	require.NotEqual(t, g1.Record(0, 0), g1.Record(1, 0))
}

func TestRecordsDecode(t *testing.T) {
	const n = 20000
	g := newGen(t, Config{Seed: 1, Splits: 2, Machines: 5, Tags: 14, Step: time.Second,
		OutOfOrderness: 3 * time.Second, LateFraction: 0.05, LateBy: time.Hour, MalformedFraction: 0.08})
	d, err := decode.NewJSON(decode.Config{
		Fields: []decode.Field{
			{Name: "version", Type: record.TypeInt, Required: true},
			{Name: "timestamp", Type: record.TypeTimestamp, TimeFormat: decode.TimeEpochMS, Required: true},
			{Name: "equipmentId", Type: record.TypeString, Required: true},
			{Name: "tag", Type: record.TypeString, Required: true},
			{Name: "value", Type: record.TypeFloat, Required: true},
			{Name: "quality", Type: record.TypeString, Required: true},
			{Name: "seq", Path: []string{"meta", "sequenceNumber"}, Type: record.TypeInt, Required: true},
			{Name: "sourceId", Path: []string{"meta", "sourceId"}, Type: record.TypeString, Required: true},
		},
		EventTimeField: "timestamp",
		MaxFuture:      24 * time.Hour,
		Now:            func() time.Time { return start.Add(30 * 24 * time.Hour) },
	})
	require.NoError(t, err)

	wantReason := map[Malformation]string{
		Truncated:          decode.ReasonInvalidJSON,
		MissingEquipmentID: decode.ReasonMissingField,
		ValueAsString:      decode.ReasonTypeMismatch,
		FarFuture:          decode.ReasonFutureTimestamp,
	}
	kinds := map[Malformation]int{}
	late := 0
	tags := map[string]bool{}
	for split := range 2 {
		for i := range int64(n) {
			p := g.Point(split, i)
			require.Equal(t, split, p.Machine%2, "machine %d must live in split %d", p.Machine, p.Machine%2)
			b := record.NewBatch(d.Schema().Len(), 1)
			err := d.Decode(g.Record(split, i), 0, b)
			kinds[p.Malformed]++
			if p.Malformed != WellFormed {
				var de *decode.Error
				require.ErrorAs(t, err, &de, "record %d/%d %s: %s", split, i, p.Malformed, g.Record(split, i))
				require.Equal(t, wantReason[p.Malformed], de.Reason)
				continue
			}
			require.NoError(t, err)
			row := b.Row(0)
			require.Equal(t, p.Timestamp, b.Time(0))
			require.Equal(t, p.EquipmentID, row[2].Str())
			require.Equal(t, p.Tag, row[3].Str())
			require.Equal(t, p.Value, row[4].Float())
			require.Equal(t, p.Quality, row[5].Str())
			require.Equal(t, i, row[6].Int())
			require.Equal(t, p.SourceID, row[7].Str())
			nominal := start.Add(time.Duration(i) * time.Second).UnixMilli()
			require.Equal(t, nominal, p.ProducedAt)
			lag := nominal - p.Timestamp
			if p.Late {
				late++
				lag -= time.Hour.Milliseconds()
			}
			require.True(t, lag >= 0 && lag <= 3000, "lag %d", lag)
			tags[p.Tag] = true
		}
	}
	require.Len(t, tags, 14)
	require.True(t, tags["water_temperature"] && tags["pressure_2"], "tags: %v", tags)
	total := 2 * n
	require.InDelta(t, 0.08, float64(total-kinds[WellFormed])/float64(total), 0.01)
	for k := Truncated; k <= FarFuture; k++ {
		require.Greater(t, kinds[k], total/100, "malformation %s", k)
	}
	require.InDelta(t, 0.05, float64(late)/float64(kinds[WellFormed]), 0.01)
}

func TestSignalCrossesThresholds(t *testing.T) {
	g := newGen(t, Config{Seed: 3, Machines: 1, Tags: 1, Step: time.Second})
	lo, hi := 1e9, -1e9
	for i := range int64(4 * 3600) {
		v := g.Point(0, i).Value
		lo, hi = min(lo, v), max(hi, v)
	}
	// water_temperature swings about ±4 around ~13 within a few hours.
	require.Less(t, lo, 11.0)
	require.Greater(t, hi, 15.0)
}

func TestCountEndsSplit(t *testing.T) {
	g := newGen(t, Config{Count: 10})
	r := open(t, g, "gen-0", &source.Position{Offset: 4})
	var b source.Batch
	require.NoError(t, r.Read(context.Background(), &b, 4))
	require.Len(t, b.Messages, 4)
	b.Reset()
	require.ErrorIs(t, r.Read(context.Background(), &b, 100), source.ErrEndOfSplit)
	require.Len(t, b.Messages, 2)
	require.Equal(t, int64(9), b.Messages[1].Position.Offset)
	require.Equal(t, int64(10), r.Position().Offset)
	b.Reset()
	require.ErrorIs(t, r.Read(context.Background(), &b, 100), source.ErrEndOfSplit)
	require.Empty(t, b.Messages)
}

func TestSplitsAndOpen(t *testing.T) {
	g := newGen(t, Config{Splits: 3})
	splits, err := g.Splits(context.Background())
	require.NoError(t, err)
	require.Equal(t, []source.Split{{ID: "gen-0"}, {ID: "gen-1"}, {ID: "gen-2"}}, splits)
	for _, id := range []string{"gen-3", "gen--1", "gen-01", "x-0", "gen-"} {
		_, err := g.Open(context.Background(), source.Split{ID: id}, nil)
		require.ErrorContains(t, err, strconv.Quote(id))
	}
	_, err = g.Open(context.Background(), source.Split{ID: "gen-0"}, &source.Position{Offset: -1})
	require.ErrorContains(t, err, "negative offset")
	require.NoError(t, g.Close(context.Background()))
}

func TestNewValidates(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative rate", Config{Rate: -1}, "rate"},
		{"negative count", Config{Count: -1}, "count"},
		{"negative splits", Config{Splits: -1}, "splits"},
		{"negative step", Config{Step: -1}, "step"},
		{"late fraction", Config{LateFraction: 1.5}, "lateFraction"},
		{"malformed fraction", Config{MalformedFraction: -0.1}, "malformedFraction"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDefaults(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 678912345, time.UTC)
	g, err := New(Config{Rate: 1000, Splits: 4, Now: func() time.Time { return now }})
	require.NoError(t, err)
	require.Equal(t, 4*time.Millisecond, g.cfg.Step)
	require.Equal(t, now.Truncate(time.Millisecond), g.cfg.StartTime)
	require.Equal(t, 10, g.cfg.Machines)
	require.Equal(t, 5, g.cfg.Tags)
	require.Equal(t, 10*time.Minute, g.cfg.LateBy)
}

func TestPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 200 records/s over 2 splits: 100/s per split.
		g := newGen(t, Config{Rate: 200, Splits: 2})
		r := open(t, g, "gen-1", nil)
		begin := time.Now()
		var b source.Batch
		got := 0
		for got < 301 {
			b.Reset()
			require.NoError(t, r.Read(t.Context(), &b, 64))
			got += len(b.Messages)
		}
		require.Equal(t, 301, got)
		require.Equal(t, 3*time.Second, time.Since(begin))

		// A blocked pipeline does not cause a burst afterwards.
		time.Sleep(time.Minute)
		b.Reset()
		require.NoError(t, r.Read(t.Context(), &b, 64))
		require.Len(t, b.Messages, 1)

		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
		defer cancel()
		b.Reset()
		err := r.Read(ctx, &b, 64)
		require.True(t, errors.Is(err, context.DeadlineExceeded), "err %v", err)
		require.Empty(t, b.Messages)
	})
}

func TestReadZeroAllocs(t *testing.T) {
	g := newGen(t, Config{Machines: 50, Tags: 20, LateFraction: 0.1, MalformedFraction: 0.01, OutOfOrderness: time.Second})
	r := open(t, g, "gen-0", nil)
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

func BenchmarkRead(b *testing.B) {
	g := newGen(b, Config{Machines: 100, Tags: 10, OutOfOrderness: time.Second, LateFraction: 0.01})
	r := open(b, g, "gen-0", nil)
	var batch source.Batch
	ctx := context.Background()
	records := 0
	b.ReportAllocs()
	for b.Loop() {
		batch.Reset()
		if err := r.Read(ctx, &batch, 512); err != nil {
			b.Fatal(err)
		}
		records += len(batch.Messages)
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

// appendFixed prints what strconv prints, for readings rounded to their
// decimals and for values that are not (which it hands to strconv).
func TestAppendFixedMatchesStrconv(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(v float64, d int) {
		t.Helper()
		want := strconv.AppendFloat(nil, v, 'f', d, 64)
		if got := appendFixed(nil, v, d); string(got) != string(want) {
			t.Fatalf("appendFixed(%v, %d) = %q, strconv gives %q", v, d, got, want)
		}
	}
	for _, v := range []float64{0, math.Copysign(0, -1), -0.04, 0.05, 1e12, -1e12, 999999.995, math.NaN(), math.Inf(1), math.Inf(-1), 1.5, -2.5, 123456789.123} {
		for d := range 10 {
			check(v, d)
		}
	}
	for range 200_000 {
		d := rng.IntN(8)
		scale := math.Pow10(d)
		v := (rng.Float64()*2 - 1) * math.Pow10(rng.IntN(10))
		check(math.Round(v*scale)/scale, d) // a rounded reading
		check(v, d)                         // anything
	}
}
