package nexmark

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/source"
)

func newGen(t testing.TB, cfg Config) *Generator {
	t.Helper()
	g, err := New(cfg)
	require.NoError(t, err)
	return g
}

// TestEventMix checks the model against the paper's proportions and the
// reference generator's skew: 1/3/46 persons/auctions/bids, most bids on
// hot auctions by hot bidders, prices within 1 to 1,000,000 dollars, ids
// that refer to auctions and people created (or about to be).
func TestEventMix(t *testing.T) {
	g := newGen(t, Config{Seed: 3})
	const n = 100_000
	var kinds [3]int
	var e Event
	auctions := map[int64]int{}
	bidders := map[int64]int{}
	channels := map[string]int{}
	prevTime := int64(-1)
	hotAuctionBids, hotBidderBids := 0, 0
	for i := range int64(n) {
		g.Event(i, &e)
		require.GreaterOrEqual(t, e.Time, prevTime, "event time is monotonic")
		prevTime = e.Time
		kinds[e.Kind]++
		switch e.Kind {
		case KindBid:
			b := e.Bid
			require.GreaterOrEqual(t, b.Price, int64(100))
			require.LessOrEqual(t, b.Price, int64(100_000_000))
			maxAuction := lastBase0AuctionID(i) + firstAuctionID + auctionIDLead
			require.GreaterOrEqual(t, b.Auction, int64(firstAuctionID))
			require.LessOrEqual(t, b.Auction, maxAuction)
			require.LessOrEqual(t, b.Bidder, lastBase0PersonID(i)+firstPersonID+personIDLead)
			auctions[b.Auction]++
			bidders[b.Bidder]++
			if b.Auction == lastBase0AuctionID(i)/hotBatch*hotBatch+firstAuctionID {
				hotAuctionBids++
			}
			if b.Bidder == lastBase0PersonID(i)/hotBatch*hotBatch+1+firstPersonID {
				hotBidderBids++
			}
			channels[string(b.Channel)]++
			require.True(t, bytes.HasPrefix(b.URL, []byte("https://www.nexmark.com/")))
			require.GreaterOrEqual(t, len(b.Extra), 54)
			require.LessOrEqual(t, len(b.Extra), 82)
		case KindAuction:
			a := e.Auction
			require.Greater(t, a.Expires, e.Time)
			require.GreaterOrEqual(t, a.Reserve, a.InitialBid)
			require.GreaterOrEqual(t, a.Category, int64(firstCategoryID))
			require.Less(t, a.Category, int64(firstCategoryID+numCategories))
		case KindPerson:
			require.Equal(t, i/totalProportion+firstPersonID, e.Person.ID)
		}
	}
	require.Equal(t, [3]int{n / 50, 3 * n / 50, 46 * n / 50}, kinds)
	// 10,000 events per second of event time.
	require.Equal(t, DefaultBaseTime.UnixMilli()+(n-1)/10, prevTime)
	// Half the bids go to the hot auction of their time (1 - 1/2, plus
	// the odd random pick of it), three quarters come from the hot bidder.
	bids := kinds[KindBid]
	require.InDelta(t, 0.5, float64(hotAuctionBids)/float64(bids), 0.02)
	require.InDelta(t, 0.75, float64(hotBidderBids)/float64(bids), 0.02)
	require.Greater(t, len(auctions), 100)
	require.Greater(t, len(bidders), 1000)
	hotChannels := channels["Google"] + channels["Facebook"] + channels["Baidu"] + channels["Apple"]
	require.InDelta(t, 0.5, float64(hotChannels)/float64(bids), 0.02)
	require.Greater(t, len(channels), 4000)
}

func TestEventsAreDeterministicAndSplit(t *testing.T) {
	a := newGen(t, Config{Seed: 9, Events: 1000, Splits: 3})
	b := newGen(t, Config{Seed: 9, Events: 1000, Splits: 3})
	other := newGen(t, Config{Seed: 10, Events: 1000, Splits: 3})
	var ea, eb, eo Event
	differ := 0
	for n := range int64(1000) {
		a.Event(n, &ea)
		b.Event(n, &eb)
		other.Event(n, &eo)
		require.Equal(t, string(AppendJSON(nil, &ea)), string(AppendJSON(nil, &eb)))
		if string(AppendJSON(nil, &ea)) != string(AppendJSON(nil, &eo)) {
			differ++
		}
	}
	require.Greater(t, differ, 900, "another seed gives other events")
	require.Equal(t, []int64{334, 333, 333}, []int64{a.SplitEvents(0), a.SplitEvents(1), a.SplitEvents(2)})

	// Splits interleave: together they hold each event once, each in order.
	seen := map[int64]bool{}
	for s := range 3 {
		splits, err := a.Splits(context.Background())
		require.NoError(t, err)
		r, err := a.Open(context.Background(), splits[s], nil)
		require.NoError(t, err)
		var batch source.Batch
		var msgs []source.Message
		for {
			batch.Reset()
			err := r.Read(context.Background(), &batch, 100)
			for _, m := range batch.Messages {
				m.Value = bytes.Clone(m.Value) // valid until the next Read only
				msgs = append(msgs, m)
			}
			if errors.Is(err, source.ErrEndOfSplit) {
				break
			}
			require.NoError(t, err)
		}
		for k, m := range msgs {
			require.Equal(t, int64(k), m.Position.Offset)
			var doc struct {
				DateTime int64 `json:"dateTime"`
			}
			require.NoError(t, json.Unmarshal(m.Value, &doc), "%s", m.Value)
			n := a.EventNumber(s, int64(k))
			require.False(t, seen[n])
			seen[n] = true
			require.Equal(t, a.TimeOf(n), doc.DateTime)
			require.Equal(t, doc.DateTime, m.Timestamp)
		}
		require.NoError(t, r.Close())
	}
	require.Len(t, seen, 1000)
}

// TestReaderResumes opens a split at a position and gets what a reader
// from the start delivered from there on.
func TestReaderResumes(t *testing.T) {
	g := newGen(t, Config{Seed: 1, Events: 500, Splits: 2})
	read := func(start *source.Position) [][]byte {
		r, err := g.Open(context.Background(), source.Split{ID: "nexmark-1"}, start)
		require.NoError(t, err)
		defer r.Close()
		var out [][]byte
		for {
			var b source.Batch
			err := r.Read(context.Background(), &b, 7)
			for _, m := range b.Messages {
				out = append(out, bytes.Clone(m.Value))
			}
			if errors.Is(err, source.ErrEndOfSplit) {
				return out
			}
			require.NoError(t, err)
		}
	}
	all := read(nil)
	require.Len(t, all, 250)
	require.Equal(t, all[100:], read(&source.Position{Offset: 100}))
	_, err := g.Open(context.Background(), source.Split{ID: "nexmark-2"}, nil)
	require.ErrorContains(t, err, "unknown split")
}

func bidConfig(required bool) decode.Config {
	return decode.Config{
		Fields: []decode.Field{
			{Name: "event_type", Type: record.TypeInt, Required: true},
			{Name: "dateTime", Type: record.TypeTimestamp, TimeFormat: decode.TimeEpochMS, Required: true},
			{Name: "auction", Path: []string{"bid", "auction"}, Type: record.TypeInt, Required: required},
			{Name: "bidder", Path: []string{"bid", "bidder"}, Type: record.TypeInt},
			{Name: "price", Path: []string{"bid", "price"}, Type: record.TypeFloat},
			{Name: "channel", Path: []string{"bid", "channel"}, Type: record.TypeString, Key: true},
			{Name: "url", Path: []string{"bid", "url"}, Type: record.TypeString},
			{Name: "extra", Path: []string{"bid", "extra"}, Type: record.TypeString},
			{Name: "seller", Path: []string{"auction", "seller"}, Type: record.TypeInt},
			{Name: "expires", Path: []string{"auction", "expires"}, Type: record.TypeTimestamp},
			{Name: "pname", Path: []string{"person", "name"}, Type: record.TypeString},
			{Name: "state", Path: []string{"person", "state"}, Type: record.TypeString},
		},
		EventTimeField: "dateTime",
	}
}

// TestNativeDecoderMatchesJSON decodes the same events from their JSON
// lines with the JSON decoder and from their numbers with the native
// decoder: rows, event times and dead letters are the same.
func TestNativeDecoderMatchesJSON(t *testing.T) {
	g := newGen(t, Config{Seed: 5})
	for _, required := range []bool{false, true} {
		cfg := bidConfig(required)
		jd, err := decode.NewJSON(cfg)
		require.NoError(t, err)
		nd, err := g.NewDecoder(cfg)
		require.NoError(t, err)
		require.Equal(t, jd.Schema().String(), nd.Schema().String())
		jb := record.NewBatch(jd.Schema().Len(), 16)
		nb := record.NewBatch(nd.Schema().Len(), 16)
		var e Event
		msg := make([]byte, 8)
		for n := range int64(3000) {
			g.Event(n, &e)
			line := AppendJSON(nil, &e)
			jerr := jd.Decode(line, 0, jb)
			msg = msg[:0]
			msg = append(msg, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
			nerr := nd.Decode(msg, 0, nb)
			if jerr != nil {
				require.Error(t, nerr, "event %d: %s", n, line)
				var je, ne *decode.Error
				require.ErrorAs(t, jerr, &je)
				require.ErrorAs(t, nerr, &ne)
				require.Equal(t, je.Reason, ne.Reason)
				require.Equal(t, jerr.Error(), nerr.Error())
				continue
			}
			require.NoError(t, nerr, "event %d", n)
			last := jb.Len() - 1
			require.Equal(t, jb.Time(last), nb.Time(last))
			require.Equal(t, jb.Row(last), nb.Row(last), "event %d: %s", n, line)
		}
		if required {
			require.Equal(t, 3000*46/50, jb.Len(), "persons and auctions lack the required bid field")
		} else {
			require.Equal(t, 3000, jb.Len())
		}
	}
}

func TestNewDecoderRefuses(t *testing.T) {
	g := newGen(t, Config{})
	for _, tc := range []struct {
		field decode.Field
		want  string
	}{
		{decode.Field{Name: "x", Path: []string{"bid", "nope"}, Type: record.TypeInt}, `path "bid.nope" is not in the event format`},
		{decode.Field{Name: "x", Path: []string{"bid", "price"}, Type: record.TypeString}, "holds int values"},
		{decode.Field{Name: "x", Path: []string{"bid", "channel"}, Type: record.TypeInt}, "holds string values"},
		{decode.Field{Name: "x", Path: []string{"dateTime"}, Type: record.TypeTimestamp, TimeFormat: decode.TimeEpochS}, "epoch milliseconds"},
		{decode.Field{Name: "x", Path: []string{"bid"}, Type: record.TypeString, Raw: true}, `path "bid" is not in`},
		{decode.Field{Name: "x", Path: []string{"bid", "url"}, Type: record.TypeString, Raw: true}, "json fields are not available"},
	} {
		_, err := g.NewDecoder(decode.Config{Fields: []decode.Field{tc.field}})
		require.ErrorContains(t, err, tc.want)
	}
	_, err := g.NewDecoder(decode.Config{Fields: []decode.Field{{Name: "event_type", Type: record.TypeInt}}, ExtrasField: "rest"})
	require.ErrorContains(t, err, "extras")
}

func TestWriteJSONLines(t *testing.T) {
	g := newGen(t, Config{Seed: 2, Events: 2000, Splits: 2})
	var buf bytes.Buffer
	n, err := g.WriteJSONLines(&buf, 1)
	require.NoError(t, err)
	require.Equal(t, int64(1000), n)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	require.Len(t, lines, 1000)
	var e Event
	for k, line := range lines {
		require.True(t, json.Valid([]byte(line)), line)
		g.Event(g.EventNumber(1, int64(k)), &e)
		require.Equal(t, string(AppendJSON(nil, &e)), line)
	}
	_, err = newGen(t, Config{}).WriteJSONLines(&buf, 0)
	require.ErrorContains(t, err, "unbounded")
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{{Events: -1}, {Splits: -1}, {Rate: -1}, {EmitRate: -2}, {Events: 2, Splits: 3}} {
		_, err := New(cfg)
		require.Error(t, err, "%+v", cfg)
	}
	f, err := ParseFormat("native")
	require.NoError(t, err)
	require.Equal(t, FormatNative, f)
	require.Equal(t, "native", f.String())
	_, err = ParseFormat("avro")
	require.ErrorContains(t, err, `"avro"`)
}

// TestPacing runs a paced reader in a synctest bubble: events arrive at
// the configured wall-clock rate.
func TestPacing(t *testing.T) {
	synctestRun(t, func(t *testing.T) {
		g := newGen(t, Config{Events: 100, EmitRate: 20, Now: time.Now})
		r, err := g.Open(context.Background(), source.Split{ID: "nexmark-0"}, nil)
		require.NoError(t, err)
		start := time.Now()
		var b source.Batch
		for {
			err := r.Read(context.Background(), &b, 1000)
			if errors.Is(err, source.ErrEndOfSplit) {
				break
			}
			require.NoError(t, err)
		}
		require.Len(t, b.Messages, 100)
		elapsed := time.Since(start)
		require.GreaterOrEqual(t, elapsed, 4900*time.Millisecond)
		require.Less(t, elapsed, 5100*time.Millisecond)
		require.NoError(t, r.Close())
	})
}

func BenchmarkEventJSON(b *testing.B) {
	g := newGen(b, Config{})
	var e Event
	buf := make([]byte, 0, 1024)
	var n int64
	var bytes int64
	for b.Loop() {
		g.Event(n, &e)
		buf = AppendJSON(buf[:0], &e)
		bytes += int64(len(buf))
		n++
	}
	b.ReportMetric(float64(bytes)/float64(n), "bytes/event")
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkNativeDecode(b *testing.B) {
	g := newGen(b, Config{})
	d, err := g.NewDecoder(bidConfig(false))
	require.NoError(b, err)
	batch := record.NewBatch(d.Schema().Len(), 1024)
	msg := make([]byte, 8)
	var n int64
	b.ReportAllocs()
	for b.Loop() {
		if batch.Len() == 1024 {
			batch.Reset()
		}
		for i := range 8 {
			msg[i] = byte(n >> (56 - 8*i))
		}
		if err := d.Decode(msg, 0, batch); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// allFields declares every path of the event format, under its own name.
func allFields() decode.Config {
	cfg := decode.Config{EventTimeField: "dateTime"}
	for _, p := range Paths() {
		spec := attrs[p]
		f := decode.Field{Name: strings.ReplaceAll(p, ".", "_"), Path: strings.Split(p, "."), Type: spec.typ}
		if p == "dateTime" {
			f.Name = p
		}
		cfg.Fields = append(cfg.Fields, f)
	}
	return cfg
}

// FuzzNativeDecoder feeds arbitrary messages to the native decoder: it
// never panics, refuses what is not an event number of the generator with
// a dead-letter reason, and decodes every event number to the row the JSON
// decoder reads from that event's JSON line.
func FuzzNativeDecoder(f *testing.F) {
	g := newGen(f, Config{Seed: 7})
	for _, seed := range [][]byte{nil, {1}, make([]byte, 8), {0, 0, 0, 0, 0, 0, 0, 49}, {0, 0, 0, 0, 0, 1, 0, 3},
		{0x80, 0, 0, 0, 0, 0, 0, 0}, {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, make([]byte, 9)} {
		f.Add(seed)
	}
	// Every field, and every field but the extras (whose events the
	// decoder computes without their padding).
	all, noExtra := allFields(), allFields()
	noExtra.Fields = slices.DeleteFunc(noExtra.Fields, func(f decode.Field) bool { return strings.HasSuffix(f.Name, "_extra") })
	require.Len(f, noExtra.Fields, len(all.Fields)-3)
	type pair struct{ nd, jd rowDecoder }
	var pairs []pair
	for _, cfg := range []decode.Config{all, noExtra} {
		nd, err := g.NewDecoder(cfg)
		require.NoError(f, err)
		jd, err := decode.NewJSON(cfg)
		require.NoError(f, err)
		pairs = append(pairs, pair{nd, jd})
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, p := range pairs {
			checkNative(t, g, p.nd, p.jd, msg)
		}
	})
}

// rowDecoder is what both decoders do.
type rowDecoder interface {
	Schema() *record.Schema
	Decode(msg []byte, brokerTS int64, b *record.Batch) error
}

func checkNative(t *testing.T, g *Generator, nd, jd rowDecoder, msg []byte) {
	t.Helper()
	nb := record.NewBatch(nd.Schema().Len(), 1)
	err := nd.Decode(msg, 0, nb)
	if len(msg) != 8 || !g.Valid(int64(binary.BigEndian.Uint64(msg))) { //nolint:gosec // any bits
		var de *decode.Error
		require.ErrorAs(t, err, &de)
		require.Equal(t, ReasonInvalidEvent, de.Reason)
		require.Zero(t, nb.Len())
		return
	}
	require.NoError(t, err)
	var e Event
	g.Event(int64(binary.BigEndian.Uint64(msg)), &e) //nolint:gosec // checked by Valid
	jb := record.NewBatch(jd.Schema().Len(), 1)
	require.NoError(t, jd.Decode(AppendJSON(nil, &e), 0, jb))
	require.Equal(t, jb.Time(0), nb.Time(0))
	require.Equal(t, jb.Row(0), nb.Row(0))
}

// TestEventNumberLimit: event numbers whose time would pass year 5138 are
// not events, so a bounded configuration cannot ask for them.
func TestEventNumberLimit(t *testing.T) {
	g := newGen(t, Config{Rate: 1e-6})
	require.True(t, g.Valid(0))
	require.False(t, g.Valid(-1))
	require.False(t, g.Valid(1<<40))
	_, err := New(Config{Rate: 1e-6, Events: 1 << 40})
	require.ErrorContains(t, err, "would run past 5138")
	_, err = New(Config{BaseTime: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.ErrorContains(t, err, "baseTime")
	b := newGen(t, Config{Events: 10})
	require.True(t, b.Valid(9))
	require.False(t, b.Valid(10))
}

// TestUnboundedReader: without events the splits do not end, until event
// times would leave the range timestamps hold.
func TestUnboundedReader(t *testing.T) {
	g := newGen(t, Config{Splits: 2, Rate: 1e-3})
	r, err := g.Open(context.Background(), source.Split{ID: "nexmark-1"}, nil)
	require.NoError(t, err)
	var b source.Batch
	for range 10 {
		require.NoError(t, r.Read(context.Background(), &b, 100))
	}
	require.Len(t, b.Messages, 1000)
	require.Equal(t, int64(999), b.Messages[999].Position.Offset)
	require.NoError(t, r.Close())

	// The last events of split 1 below the limit, then its end.
	last := (g.limit - 1 - 1) / 2 // the split's last event number is 2k+1 < limit
	r, err = g.Open(context.Background(), source.Split{ID: "nexmark-1"}, &source.Position{Offset: last - 2})
	require.NoError(t, err)
	b.Reset()
	require.ErrorIs(t, r.Read(context.Background(), &b, 100), source.ErrEndOfSplit)
	require.Len(t, b.Messages, 3)
	for _, m := range b.Messages {
		require.True(t, g.Valid(g.EventNumber(1, m.Position.Offset)))
		require.Less(t, m.Timestamp, int64(maxTime))
	}
	require.False(t, g.Valid(g.EventNumber(1, last+1)))
}
