package nexmark

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"time"
)

// Kind is the kind of an event, as written in the event_type field.
type Kind uint8

// Event kinds.
const (
	KindPerson  Kind = 0
	KindAuction Kind = 1
	KindBid     Kind = 2
)

// The model's parameters, those of the reference generator's defaults.
const (
	personProportion  = 1
	auctionProportion = 3
	totalProportion   = 50 // with 46 bids

	firstPersonID   = 1000
	firstAuctionID  = 1000
	firstCategoryID = 10
	numCategories   = 5

	hotAuctionRatio = 2 // P(bid on a hot auction) = 1 - 1/2
	hotBiddersRatio = 4 // P(bid by a hot bidder) = 1 - 1/4
	hotSellersRatio = 4 // P(auction by a hot seller) = 1 - 1/4
	// hotBatch: the hot auction (person) is the first of the last 100.
	hotBatch = 100

	personIDLead        = 10
	auctionIDLead       = 10
	numInFlightAuctions = 100
	numActivePeople     = 1000

	avgPersonBytes  = 200
	avgAuctionBytes = 500
	avgBidBytes     = 100

	hotChannelsRatio = 2
	numChannels      = 10_000
)

// DefaultRate is the event-time rate of the reference configuration:
// events per second of event time.
const DefaultRate = 10_000

// DefaultBaseTime is the event time of event 0 unless configured.
var DefaultBaseTime = time.Date(2015, 7, 15, 0, 0, 0, 0, time.UTC)

// Event times lie in [minTime, maxTime) epoch milliseconds (March 1973 to
// year 5138): the range in which a timestamp field of format auto reads an
// epoch number as milliseconds, so times read back as they were written.
const (
	minTime = 1e11
	maxTime = 1e14
)

var (
	usStates   = []string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	usCities   = []string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	firstNames = []string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	lastNames  = []string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
	hotChannel = []string{"Google", "Facebook", "Baidu", "Apple"}
)

// Format is how the source delivers events.
type Format uint8

// Formats.
const (
	// FormatJSON delivers each event as a JSON line (see the package doc).
	FormatJSON Format = iota
	// FormatNative delivers the event number only; Decoder builds rows.
	FormatNative
)

// ParseFormat maps "json" (or "") and "native" to a Format.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "json":
		return FormatJSON, nil
	case "native":
		return FormatNative, nil
	}
	return FormatJSON, fmt.Errorf("parse nexmark format: unknown format %q (want json or native)", s)
}

// String names the format as in a pipeline file.
func (f Format) String() string {
	if f == FormatNative {
		return "native"
	}
	return "json"
}

// Config configures a generator.
type Config struct {
	// Seed selects the data set; the same seed gives the same events.
	Seed int64
	// Events is the number of events over all splits; 0 means unbounded.
	Events int64
	// Splits is the number of splits; default 1.
	Splits int
	// Rate is events per second of event time; default DefaultRate.
	Rate float64
	// EmitRate paces the readers: events per wall-clock second over all
	// splits; 0 means as fast as they are read.
	EmitRate float64
	// BaseTime is the event time of event 0; default DefaultBaseTime.
	BaseTime time.Time
	// Format is how events are delivered.
	Format Format
	// Now is the wall clock for pacing; nil means time.Now.
	Now func() time.Time
}

// Validate checks the configuration; messages name the field.
func (c *Config) Validate() error {
	switch {
	case c.Events < 0:
		return fmt.Errorf("events %d must be >= 0 (0 means unbounded)", c.Events)
	case c.Splits < 0:
		return fmt.Errorf("splits %d must be >= 0", c.Splits)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("rate %v must be a finite number > 0 (events per second of event time)", c.Rate)
	case c.EmitRate < 0 || math.IsNaN(c.EmitRate) || math.IsInf(c.EmitRate, 0):
		return fmt.Errorf("emitRate %v must be a finite number >= 0", c.EmitRate)
	case c.Format > FormatNative:
		return fmt.Errorf("format %d is unknown", c.Format)
	case c.Events > 0 && int64(c.Splits) > c.Events:
		return fmt.Errorf("splits %d must not exceed events %d (a split would be empty)", c.Splits, c.Events)
	case !c.BaseTime.IsZero() && (c.BaseTime.UnixMilli() < minTime || c.BaseTime.UnixMilli() >= maxTime):
		return fmt.Errorf("baseTime %s must be between %s and %s", c.BaseTime.Format(time.RFC3339),
			time.UnixMilli(minTime).UTC().Format(time.RFC3339), time.UnixMilli(maxTime).UTC().Format(time.RFC3339))
	}
	return nil
}

// Person is a new person event. Strings are valid until the next call that
// fills the same Event.
type Person struct {
	ID         int64
	Name       []byte
	Email      []byte
	CreditCard []byte
	City       []byte
	State      []byte
	Extra      []byte
}

// Auction is a new auction event; Expires is in epoch milliseconds.
type Auction struct {
	ID          int64
	ItemName    []byte
	Description []byte
	InitialBid  int64
	Reserve     int64
	Expires     int64
	Seller      int64
	Category    int64
	Extra       []byte
}

// Bid is a bid event. Price is in cents.
type Bid struct {
	Auction int64
	Bidder  int64
	Price   int64
	Channel []byte
	URL     []byte
	Extra   []byte
}

// Event is one generated event: Kind says which of Person, Auction and Bid
// is set. Time is its event time in epoch milliseconds.
type Event struct {
	Number  int64
	Kind    Kind
	Time    int64
	Person  Person
	Auction Auction
	Bid     Bid

	buf []byte
}

// Generator computes Nexmark events. It is safe for concurrent use: events
// are computed into caller-owned Event values.
type Generator struct {
	cfg    Config
	baseMS int64
	// usPerEvent is the event-time distance of consecutive events.
	usPerEvent float64
	seed       uint64
	// limit: events from this number on have no representable time.
	limit int64
	// channels and urls: the hot channels first, then channel-0 … channel-9999.
	channels [][]byte
	urls     [][]byte
}

// New validates cfg, applies defaults and builds a generator.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new nexmark generator: %w", err)
	}
	if cfg.Splits == 0 {
		cfg.Splits = 1
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.BaseTime.IsZero() {
		cfg.BaseTime = DefaultBaseTime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Generator{
		cfg:        cfg,
		baseMS:     cfg.BaseTime.UnixMilli(),
		usPerEvent: 1e6 / cfg.Rate,
		seed:       mix(uint64(cfg.Seed) ^ 0x6e65786d61726b),
	}
	// Past limit, event times would leave the range timestamps hold.
	g.limit = int64(min(float64(maxTime-g.baseMS)*1000/g.usPerEvent, 1<<62))
	for g.limit > 0 && g.TimeOf(g.limit-1) >= maxTime {
		g.limit-- // float rounding at the edge
	}
	if cfg.Events > g.limit {
		return nil, fmt.Errorf("new nexmark generator: events %d at rate %v would run past %s", cfg.Events, cfg.Rate, time.UnixMilli(maxTime).UTC().Format(time.RFC3339))
	}
	g.channels = make([][]byte, 0, len(hotChannel)+numChannels)
	g.urls = make([][]byte, 0, len(hotChannel)+numChannels)
	for i, name := range hotChannel {
		r := rng{s: mix(g.seed ^ 0x686f74 ^ uint64(i)<<32)}
		g.channels = append(g.channels, []byte(name))
		g.urls = append(g.urls, appendBaseURL(nil, &r))
	}
	for ch := range numChannels {
		r := rng{s: mix(g.seed ^ 0x6368616e ^ uint64(ch)<<20)}
		url := appendBaseURL(nil, &r)
		if r.intn(10) > 0 {
			url = append(url, "&channel_id="...)
			// Math.abs(Integer.reverse(ch)) in the reference generator.
			id := int64(int32(bits.Reverse32(uint32(ch))))
			url = strconv.AppendInt(url, max(id, -id), 10)
		}
		g.channels = append(g.channels, []byte("channel-"+strconv.Itoa(ch)))
		g.urls = append(g.urls, url)
	}
	return g, nil
}

// Config returns the configuration with defaults applied.
func (g *Generator) Config() Config { return g.cfg }

// SplitEvents returns how many events split s holds; -1 means unbounded.
func (g *Generator) SplitEvents(s int) int64 {
	if g.cfg.Events == 0 {
		return -1
	}
	n := int64(g.cfg.Splits)
	if int64(s) >= g.cfg.Events {
		return 0
	}
	return (g.cfg.Events - int64(s) + n - 1) / n
}

// EventNumber returns the number of the k-th event of split s.
func (g *Generator) EventNumber(s int, k int64) int64 { return int64(s) + k*int64(g.cfg.Splits) }

// Valid reports whether n is an event number of the generator: not
// negative, below Events when bounded, and with a representable time.
func (g *Generator) Valid(n int64) bool {
	return n >= 0 && n < g.limit && (g.cfg.Events == 0 || n < g.cfg.Events)
}

// TimeOf returns the event time of event n in epoch milliseconds.
func (g *Generator) TimeOf(n int64) int64 {
	return g.baseMS + int64(float64(n)*g.usPerEvent)/1000
}

// KindOf returns the kind of event n.
func KindOf(n int64) Kind {
	switch rem := n % totalProportion; {
	case rem < personProportion:
		return KindPerson
	case rem < personProportion+auctionProportion:
		return KindAuction
	}
	return KindBid
}

// Event computes event n into e, reusing e's memory.
func (g *Generator) Event(n int64, e *Event) { g.event(n, e, true) }

// event computes event n; without extra it leaves the extra padding
// empty. The padding is each event's last random draw, so leaving it out
// changes nothing else.
func (g *Generator) event(n int64, e *Event, extra bool) {
	if cap(e.buf) == 0 {
		e.buf = make([]byte, 0, 1024)
	}
	e.buf = e.buf[:0]
	e.Number = n
	e.Kind = KindOf(n)
	e.Time = g.TimeOf(n)
	e.Person, e.Auction, e.Bid = Person{}, Auction{}, Bid{}
	r := rng{s: mix(g.seed ^ mix(uint64(n)))}
	switch e.Kind {
	case KindPerson:
		g.person(n, &r, e, extra)
	case KindAuction:
		g.auction(n, &r, e, extra)
	default:
		g.bid(n, &r, e, extra)
	}
}

// span appends what fill writes to e.buf and returns it as a slice.
func (e *Event) span(fill func([]byte) []byte) []byte {
	start := len(e.buf)
	e.buf = fill(e.buf)
	return e.buf[start:len(e.buf):len(e.buf)]
}

func (g *Generator) person(n int64, r *rng, e *Event, extra bool) {
	p := &e.Person
	p.ID = lastBase0PersonID(n) + firstPersonID
	p.Name = e.span(func(b []byte) []byte {
		b = append(b, firstNames[r.intn(int64(len(firstNames)))]...)
		b = append(b, ' ')
		return append(b, lastNames[r.intn(int64(len(lastNames)))]...)
	})
	p.Email = e.span(func(b []byte) []byte {
		b = appendString(b, r, 7, ' ')
		b = append(b, '@')
		b = appendString(b, r, 5, ' ')
		return append(b, ".com"...)
	})
	p.CreditCard = e.span(func(b []byte) []byte {
		for i := range 4 {
			if i > 0 {
				b = append(b, ' ')
			}
			v := r.intn(10000)
			b = append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
		}
		return b
	})
	p.City = e.span(func(b []byte) []byte { return append(b, usCities[r.intn(int64(len(usCities)))]...) })
	p.State = e.span(func(b []byte) []byte { return append(b, usStates[r.intn(int64(len(usStates)))]...) })
	size := 8 + len(p.Name) + len(p.Email) + len(p.CreditCard) + len(p.City) + len(p.State)
	if extra {
		p.Extra = e.span(func(b []byte) []byte { return appendExtra(b, r, size, avgPersonBytes) })
	}
}

func (g *Generator) auction(n int64, r *rng, e *Event, extra bool) {
	a := &e.Auction
	a.ID = lastBase0AuctionID(n) + firstAuctionID
	if r.intn(hotSellersRatio) > 0 {
		a.Seller = lastBase0PersonID(n) / hotBatch * hotBatch
	} else {
		a.Seller = nextBase0PersonID(n, r)
	}
	a.Seller += firstPersonID
	a.Category = firstCategoryID + r.intn(numCategories)
	a.InitialBid = nextPrice(r)
	// Auctions last on average until numInFlightAuctions more have been
	// created, so about that many are open at any time.
	future := g.TimeOf(n + numInFlightAuctions*totalProportion/auctionProportion)
	horizon := future - e.Time
	a.Expires = e.Time + 1 + r.intn(max(2*horizon, 1))
	a.ItemName = e.span(func(b []byte) []byte { return appendString(b, r, 20, ' ') })
	a.Description = e.span(func(b []byte) []byte { return appendString(b, r, 100, ' ') })
	a.Reserve = a.InitialBid + nextPrice(r)
	size := 8 + len(a.ItemName) + len(a.Description) + 8 + 8 + 8 + 8 + 8
	if extra {
		a.Extra = e.span(func(b []byte) []byte { return appendExtra(b, r, size, avgAuctionBytes) })
	}
}

func (g *Generator) bid(n int64, r *rng, e *Event, extra bool) {
	b := &e.Bid
	if r.intn(hotAuctionRatio) > 0 {
		b.Auction = lastBase0AuctionID(n) / hotBatch * hotBatch
	} else {
		b.Auction = nextBase0AuctionID(n, r)
	}
	b.Auction += firstAuctionID
	if r.intn(hotBiddersRatio) > 0 {
		// The second person of the batch, so hot bidders are not hot sellers.
		b.Bidder = lastBase0PersonID(n)/hotBatch*hotBatch + 1
	} else {
		b.Bidder = nextBase0PersonID(n, r)
	}
	b.Bidder += firstPersonID
	b.Price = nextPrice(r)
	ch := 0
	if r.intn(hotChannelsRatio) > 0 {
		ch = int(r.intn(int64(len(hotChannel))))
	} else {
		ch = len(hotChannel) + int(r.intn(numChannels))
	}
	b.Channel, b.URL = g.channels[ch], g.urls[ch]
	if extra {
		b.Extra = e.span(func(dst []byte) []byte { return appendExtra(dst, r, 8+8+8+8, avgBidBytes) })
	}
}

// lastBase0PersonID is the id (from 0) of the last person created at or
// before event n.
func lastBase0PersonID(n int64) int64 {
	epoch, off := n/totalProportion, n%totalProportion
	if off >= personProportion {
		off = personProportion - 1
	}
	return epoch*personProportion + off
}

// lastBase0AuctionID is the id (from 0) of the last auction created at or
// before event n.
func lastBase0AuctionID(n int64) int64 {
	epoch, off := n/totalProportion, n%totalProportion
	switch {
	case off < personProportion:
		epoch--
		off = auctionProportion - 1
	case off >= personProportion+auctionProportion:
		off = auctionProportion - 1
	default:
		off -= personProportion
	}
	return epoch*auctionProportion + off
}

// nextBase0PersonID picks one of the active people, or one of a few not
// created yet.
func nextBase0PersonID(n int64, r *rng) int64 {
	people := lastBase0PersonID(n) + 1
	active := min(people, numActivePeople)
	return people - active + r.intn(active+personIDLead)
}

// nextBase0AuctionID picks one of the auctions likely still open, or one
// of a few not created yet.
func nextBase0AuctionID(n int64, r *rng) int64 {
	last := lastBase0AuctionID(n)
	lo := max(last-numInFlightAuctions, 0)
	return lo + r.intn(last-lo+1+auctionIDLead)
}

// nextPrice is 10^U(0,6) dollars, in cents.
func nextPrice(r *rng) int64 { return int64(math.Round(math.Pow(10, r.float()*6) * 100)) }

// appendString appends a random string of 3 to maxLen-1 letters, with
// about one in 13 the special byte; spaces at the ends are trimmed.
func appendString(dst []byte, r *rng, maxLen int64, special byte) []byte {
	start := len(dst)
	for n := 3 + r.intn(maxLen-3); n > 0; n-- {
		if r.intn(13) == 0 {
			dst = append(dst, special)
		} else {
			dst = append(dst, byte('a'+r.intn(26)))
		}
	}
	if special != ' ' {
		return dst
	}
	s := dst[start:]
	lo, hi := 0, len(s)
	for lo < hi && s[lo] == ' ' {
		lo++
	}
	for hi > lo && s[hi-1] == ' ' {
		hi--
	}
	n := copy(s, s[lo:hi])
	return dst[:start+n]
}

// appendExtra pads an event of size bytes towards avg bytes on average.
func appendExtra(dst []byte, r *rng, size, avg int) []byte {
	if size > avg {
		return dst
	}
	want := avg - size
	delta := int64(math.Round(float64(want) * 0.2))
	n := int64(want) - delta
	if delta > 0 {
		n += r.intn(2 * delta)
	}
	// Thirteen letters per 64 random bits.
	var v uint64
	left := 0
	for ; n > 0; n-- {
		if left == 0 {
			v, left = r.next(), 13
		}
		dst = append(dst, byte('a'+v%26))
		v /= 26
		left--
	}
	return dst
}

func appendBaseURL(dst []byte, r *rng) []byte {
	dst = append(dst, "https://www.nexmark.com/"...)
	for range 3 {
		dst = appendString(dst, r, 5, '_')
		dst = append(dst, '/')
	}
	return append(dst, "item.htm?query=1"...)
}

// rng is a splitmix64 stream.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a uniform number in [0, n) for n > 0.
func (r *rng) intn(n int64) int64 {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int64(hi)
}

// float returns a uniform number in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// mix is the splitmix64 finalizer.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
