package generator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/streamd/streamd/internal/pace"
	"github.com/streamd/streamd/pkg/source"
)

// Config configures a generator.
type Config struct {
	// Seed selects the data set; the same seed replays the same records.
	Seed int64
	// Rate is records per second over all splits; 0 means as fast as the
	// reader is called.
	Rate float64
	// Count ends each split after this many records; 0 means never.
	Count int64
	// Splits is the number of splits; default 1.
	Splits int
	// Machines is the number of pieces of equipment; default 10.
	Machines int
	// Tags is the number of measurements per machine; default 5.
	Tags int
	// StartTime is the event time of record 0 of every split; default: Now
	// when the generator is built, truncated to the millisecond.
	StartTime time.Time
	// Step is the event-time distance between consecutive records of a
	// split; default Splits/Rate seconds when Rate > 0, else 1ms.
	Step time.Duration
	// OutOfOrderness shifts each event time back by a random amount up to
	// this much.
	OutOfOrderness time.Duration
	// LateFraction of records are shifted back by a further LateBy.
	LateFraction float64
	// LateBy is how far late records are shifted back; default 10m.
	LateBy time.Duration
	// MalformedFraction of records are broken (see Malformation).
	MalformedFraction float64
	// Now is the wall clock used for pacing and the default StartTime; nil
	// means time.Now. Pacing waits on real timers, so tests that exercise it
	// run inside a testing/synctest bubble.
	Now func() time.Time
}

// Malformation is how a malformed record is broken.
type Malformation uint8

// Malformations, each exercising a different decoder failure.
const (
	// WellFormed is a valid record.
	WellFormed Malformation = iota
	// Truncated is a record cut off mid-way (invalid JSON).
	Truncated
	// MissingEquipmentID lacks the equipmentId field.
	MissingEquipmentID
	// ValueAsString has "value":"13.45" instead of a number.
	ValueAsString
	// FarFuture has a timestamp in year 9999.
	FarFuture
)

var malformationNames = [...]string{"well_formed", "truncated", "missing_equipment_id", "value_as_string", "far_future"}

// String names the malformation.
func (m Malformation) String() string {
	if int(m) < len(malformationNames) {
		return malformationNames[m]
	}
	return "malformation(" + strconv.Itoa(int(m)) + ")"
}

// farFutureMS is 9999-12-31T23:59:59Z, a timestamp a broken sensor clock sends.
const farFutureMS = 253402300799000

// Point is the content of one generated record, for tests that need to know
// what a split delivers without parsing it.
type Point struct {
	Split       int
	Seq         int64
	Machine     int
	EquipmentID string
	SourceID    string
	Tag         string
	Value       float64
	Quality     string
	// Timestamp is the event time written in the record, in milliseconds,
	// after out-of-orderness and lateness (and year 9999 for FarFuture).
	Timestamp int64
	// ProducedAt is the nominal time the record was produced, in
	// milliseconds; it is the message timestamp.
	ProducedAt int64
	Late       bool
	Malformed  Malformation

	tag int
}

// Generator is a source.Source of deterministic line-monitoring data points.
type Generator struct {
	cfg      Config
	now      func() time.Time
	startNS  int64
	stepNS   int64
	machines []machine
	tags     []tagSpec
	signals  []signal // [machine*len(tags)+tag]
}

type machine struct {
	equipmentID string
	sourceID    string
}

type tagSpec struct {
	name      string
	base      float64
	amplitude float64
	noise     float64
	decimals  int
	binary    bool
}

type signal struct {
	base, amplitude, noise float64
	periodNS               float64
	phase                  float64
}

var _ source.Source = (*Generator)(nil)

var baseTags = []tagSpec{
	{name: "water_temperature", base: 13, amplitude: 4, noise: 0.2, decimals: 2},
	{name: "pressure", base: 2.5, amplitude: 0.6, noise: 0.05, decimals: 3},
	{name: "flow_rate", base: 120, amplitude: 25, noise: 2, decimals: 1},
	{name: "machine_running", binary: true},
	{name: "product_volume", base: 500, amplitude: 3, noise: 0.5, decimals: 1},
	{name: "motor_speed", base: 1450, amplitude: 100, noise: 5, decimals: 0},
	{name: "vibration", base: 2, amplitude: 1.5, noise: 0.1, decimals: 2},
	{name: "fill_level", base: 75, amplitude: 20, noise: 1, decimals: 1},
	{name: "conveyor_speed", base: 1.2, amplitude: 0.3, noise: 0.02, decimals: 2},
	{name: "co2_concentration", base: 400, amplitude: 80, noise: 5, decimals: 0},
}

var machineKinds = []string{"filling_machine", "capping_machine", "labeling_machine", "conveyor", "pasteurizer"}

// New validates cfg, applies defaults and builds a generator.
func New(cfg Config) (*Generator, error) {
	switch {
	case cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0):
		return nil, fmt.Errorf("new generator: rate %v must be a finite number >= 0", cfg.Rate)
	case cfg.Count < 0:
		return nil, fmt.Errorf("new generator: count %d must be >= 0", cfg.Count)
	case cfg.Splits < 0 || cfg.Machines < 0 || cfg.Tags < 0:
		return nil, errors.New("new generator: splits, machines and tags must be >= 0")
	case cfg.Step < 0 || cfg.OutOfOrderness < 0 || cfg.LateBy < 0:
		return nil, errors.New("new generator: step, outOfOrderness and lateBy must be >= 0")
	case !(cfg.LateFraction >= 0 && cfg.LateFraction <= 1):
		return nil, fmt.Errorf("new generator: lateFraction %v must be in [0, 1]", cfg.LateFraction)
	case !(cfg.MalformedFraction >= 0 && cfg.MalformedFraction <= 1):
		return nil, fmt.Errorf("new generator: malformedFraction %v must be in [0, 1]", cfg.MalformedFraction)
	}
	if cfg.Splits == 0 {
		cfg.Splits = 1
	}
	if cfg.Machines == 0 {
		cfg.Machines = 10
	}
	if cfg.Tags == 0 {
		cfg.Tags = 5
	}
	if cfg.LateBy == 0 {
		cfg.LateBy = 10 * time.Minute
	}
	if cfg.Step == 0 {
		cfg.Step = time.Millisecond
		if cfg.Rate > 0 {
			cfg.Step = max(time.Duration(float64(cfg.Splits)/cfg.Rate*float64(time.Second)), time.Microsecond)
		}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.StartTime.IsZero() {
		cfg.StartTime = now().Truncate(time.Millisecond)
	}
	g := &Generator{
		cfg:     cfg,
		now:     now,
		startNS: cfg.StartTime.UnixNano(),
		stepNS:  int64(cfg.Step),
	}
	seed := uint64(cfg.Seed)
	g.machines = make([]machine, cfg.Machines)
	for m := range g.machines {
		h1, h2 := mix(seed^0x6d616368696e65^mix(uint64(m))), mix(seed+uint64(m)*0x9e3779b97f4a7c15+1)
		g.machines[m] = machine{
			equipmentID: uuidLike(h1, h2),
			sourceID:    machineKinds[m%len(machineKinds)] + "_" + strconv.Itoa(m/len(machineKinds)+1),
		}
	}
	g.tags = make([]tagSpec, cfg.Tags)
	for t := range g.tags {
		spec := baseTags[t%len(baseTags)]
		if t >= len(baseTags) {
			spec.name += "_" + strconv.Itoa(t/len(baseTags)+1)
		}
		g.tags[t] = spec
	}
	g.signals = make([]signal, cfg.Machines*cfg.Tags)
	for m := range cfg.Machines {
		for t, spec := range g.tags {
			h := mix(seed ^ mix(uint64(m)<<20|uint64(t)) ^ 0x7369676e616c)
			g.signals[m*cfg.Tags+t] = signal{
				// Machines differ a little in their operating point.
				base:      spec.base * (0.9 + 0.2*unit(mix(h+1))),
				amplitude: spec.amplitude,
				noise:     spec.noise,
				periodNS:  float64(5*time.Minute) + unit(mix(h+2))*float64(55*time.Minute),
				phase:     unit(mix(h+3)) * 2 * math.Pi,
			}
		}
	}
	return g, nil
}

// Splits returns "gen-0" … "gen-N-1".
func (g *Generator) Splits(context.Context) ([]source.Split, error) {
	splits := make([]source.Split, g.cfg.Splits)
	for i := range splits {
		splits[i] = source.Split{ID: "gen-" + strconv.Itoa(i)}
	}
	return splits, nil
}

// Open returns a reader of split that starts at record start.Offset (0 when
// start is nil).
func (g *Generator) Open(_ context.Context, split source.Split, start *source.Position) (source.Reader, error) {
	idx, err := g.splitIndex(split.ID)
	if err != nil {
		return nil, err
	}
	var next int64
	if start != nil {
		if start.Offset < 0 {
			return nil, fmt.Errorf("open generator split %s: negative offset %d", split.ID, start.Offset)
		}
		next = start.Offset
	}
	r := &Reader{g: g, split: idx, next: next}
	if g.cfg.Rate > 0 {
		r.pacer = pace.New(g.cfg.Rate/float64(g.cfg.Splits), g.now)
	}
	return r, nil
}

// Close implements source.Source; a generator holds nothing.
func (g *Generator) Close(context.Context) error { return nil }

func (g *Generator) splitIndex(id string) (int, error) {
	s, ok := strings.CutPrefix(id, "gen-")
	if !ok {
		return 0, fmt.Errorf("open generator split: unknown split %q", id)
	}
	idx, err := strconv.Atoi(s)
	if err != nil || idx < 0 || idx >= g.cfg.Splits || strconv.Itoa(idx) != s {
		return 0, fmt.Errorf("open generator split: unknown split %q", id)
	}
	return idx, nil
}

// Point computes record n of split without rendering it.
func (g *Generator) Point(split int, n int64) Point {
	h := mix(mix(mix(uint64(g.cfg.Seed))^uint64(split)) ^ uint64(n))
	draw := func(k uint64) uint64 { return mix(h + k*0x9e3779b97f4a7c15) }

	m, t := g.machineTag(split, n)
	producedNS := g.startNS + n*g.stepNS
	p := Point{
		Split:       split,
		Seq:         n,
		Machine:     m,
		EquipmentID: g.machines[m].equipmentID,
		SourceID:    g.machines[m].sourceID,
		Tag:         g.tags[t].name,
		ProducedAt:  floorDiv(producedNS, 1e6),
		Quality:     "Ok",
		tag:         t,
	}
	ts := producedNS
	if g.cfg.OutOfOrderness > 0 {
		ts -= int64(unit(draw(1)) * float64(g.cfg.OutOfOrderness))
	}
	if g.cfg.LateFraction > 0 && unit(draw(2)) < g.cfg.LateFraction {
		p.Late = true
		ts -= int64(g.cfg.LateBy)
	}
	p.Timestamp = floorDiv(ts, 1e6)

	sig := &g.signals[m*len(g.tags)+t]
	spec := &g.tags[t]
	x := math.Sin(2*math.Pi*float64(producedNS)/sig.periodNS + sig.phase)
	if spec.binary {
		// Running most of the time, stopped for a stretch of each period.
		if x > -0.8 {
			p.Value = 1
		}
	} else {
		v := sig.base + sig.amplitude*x + sig.noise*(2*unit(draw(3))-1)
		scale := math.Pow10(spec.decimals)
		p.Value = math.Round(v*scale) / scale
	}
	switch q := unit(draw(4)); {
	case q < 0.01:
		p.Quality = "Bad"
	case q < 0.03:
		p.Quality = "Uncertain"
	}
	if g.cfg.MalformedFraction > 0 && unit(draw(5)) < g.cfg.MalformedFraction {
		p.Malformed = Malformation(1 + draw(6)%4)
		if p.Malformed == FarFuture {
			p.Timestamp = farFutureMS
		}
	}
	return p
}

// machineTag picks the machine and tag of record n: machines belong to split
// m mod Splits, and each reports its tags in turn.
func (g *Generator) machineTag(split int, n int64) (m, t int) {
	splits, machines, tags := g.cfg.Splits, g.cfg.Machines, g.cfg.Tags
	own := 0
	if split < machines {
		own = (machines - split + splits - 1) / splits
	}
	if own == 0 {
		// More splits than machines: share a machine rather than leave the split empty.
		return split % machines, int(n % int64(tags))
	}
	combo := n % int64(own*tags)
	return split + int(combo/int64(tags))*splits, int(combo % int64(tags))
}

// AppendRecord appends the JSON of record n of split to dst.
func (g *Generator) AppendRecord(dst []byte, split int, n int64) []byte {
	p := g.Point(split, n)
	return g.appendPoint(dst, &p)
}

// Record returns the JSON of record n of split.
func (g *Generator) Record(split int, n int64) []byte { return g.AppendRecord(nil, split, n) }

func (g *Generator) appendPoint(dst []byte, p *Point) []byte {
	start := len(dst)
	dst = append(dst, `{"version":1,"timestamp":`...)
	dst = strconv.AppendInt(dst, p.Timestamp, 10)
	if p.Malformed != MissingEquipmentID {
		dst = append(dst, `,"equipmentId":"`...)
		dst = append(dst, p.EquipmentID...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"tag":"`...)
	dst = append(dst, p.Tag...)
	dst = append(dst, `","value":`...)
	if p.Malformed == ValueAsString {
		dst = append(dst, '"')
	}
	dst = appendFixed(dst, p.Value, g.tags[p.tag].decimals)
	if p.Malformed == ValueAsString {
		dst = append(dst, '"')
	}
	dst = append(dst, `,"quality":"`...)
	dst = append(dst, p.Quality...)
	dst = append(dst, `","meta":{"sequenceNumber":`...)
	dst = strconv.AppendInt(dst, p.Seq, 10)
	dst = append(dst, `,"sourceId":"`...)
	dst = append(dst, p.SourceID...)
	dst = append(dst, `"}}`...)
	if p.Malformed == Truncated {
		n := len(dst) - start
		h := mix(uint64(g.cfg.Seed) ^ mix(uint64(p.Split)<<40^uint64(p.Seq)) ^ 0x7472756e63)
		dst = dst[:start+1+int(h%uint64(n-2))]
	}
	return dst
}

// pow10 are the scales of appendFixed.
var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// appendFixed appends v with the given number of decimals, as
// strconv.AppendFloat(dst, v, 'f', decimals, 64) does, for a v that is a
// whole number of 10^-decimals (a rounded reading): it prints the integer
// v·10^decimals, which that value rounds to exactly, instead of running
// the general conversion. Anything else takes strconv.
func appendFixed(dst []byte, v float64, decimals int) []byte {
	if decimals < 0 || decimals >= len(pow10) || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.AppendFloat(dst, v, 'f', decimals, 64)
	}
	scale := pow10[decimals]
	n := math.Round(v * float64(scale))
	// v is the double nearest n/10^decimals and, below 2^52, within half
	// a unit of the last decimal of it: it rounds to n.
	if n/float64(scale) != v || math.Abs(n) >= 1<<52 {
		return strconv.AppendFloat(dst, v, 'f', decimals, 64)
	}
	i := int64(n)
	if i < 0 || i == 0 && math.Signbit(v) {
		dst = append(dst, '-')
		i = -i
	}
	dst = strconv.AppendInt(dst, i/scale, 10)
	if decimals == 0 {
		return dst
	}
	dst = append(dst, '.')
	frac := i % scale
	for d := scale / 10; d > 0; d /= 10 {
		dst = append(dst, byte('0'+frac/d%10))
	}
	return dst
}

// Reader reads one generator split. It is used by one goroutine.
type Reader struct {
	g     *Generator
	split int
	next  int64

	// pacer holds the split to its share of the rate; nil = unthrottled.
	pacer *pace.Pacer

	buf  []byte
	ends []int
}

var _ source.Reader = (*Reader)(nil)

// Position returns the position of the next record Read will return: the
// position to store in a checkpoint.
func (r *Reader) Position() source.Position { return source.Position{Offset: r.next} }

// Read appends up to max records to b, waiting as needed to respect the
// split's share of Rate. It returns source.ErrEndOfSplit with the last
// records of a split of Count records. Message values stay valid until the
// next Read.
func (r *Reader) Read(ctx context.Context, b *source.Batch, max int) error {
	count := r.g.cfg.Count
	if count > 0 && r.next >= count {
		return source.ErrEndOfSplit
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n := int64(max)
	if n <= 0 {
		return nil
	}
	if count > 0 {
		n = min(n, count-r.next)
	}
	if r.pacer != nil {
		allowed, err := r.pacer.Wait(ctx)
		if err != nil {
			return err
		}
		n = min(n, allowed)
	}

	r.buf = r.buf[:0]
	r.ends = r.ends[:0]
	first := len(b.Messages)
	for i := range n {
		p := r.g.Point(r.split, r.next+i)
		r.buf = r.g.appendPoint(r.buf, &p)
		r.ends = append(r.ends, len(r.buf))
		b.Messages = append(b.Messages, source.Message{
			Timestamp: p.ProducedAt,
			Position:  source.Position{Offset: r.next + i},
		})
	}
	// Slice values only now: appending may have moved the buffer.
	start := 0
	for i, end := range r.ends {
		b.Messages[first+i].Value = r.buf[start:end:end]
		start = end
	}
	r.next += n
	if r.pacer != nil {
		r.pacer.Emitted(n)
	}
	if count > 0 && r.next >= count {
		return source.ErrEndOfSplit
	}
	return nil
}

// Close releases the reader's timer.
func (r *Reader) Close() error {
	if r.pacer != nil {
		r.pacer.Stop()
	}
	return nil
}

// mix is the splitmix64 finalizer: a cheap, well-distributed hash that turns
// (seed, split, n) into independent random draws.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

const hexDigits = "0123456789abcdef"

// uuidLike renders 128 hash bits as a version-4 UUID string.
func uuidLike(hi, lo uint64) string {
	var raw [16]byte
	for i := range 8 {
		raw[i] = byte(hi >> (56 - 8*i))
		raw[8+i] = byte(lo >> (56 - 8*i))
	}
	raw[6] = raw[6]&0x0f | 0x40
	raw[8] = raw[8]&0x3f | 0x80
	out := make([]byte, 0, 36)
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexDigits[c>>4], hexDigits[c&0x0f])
	}
	return string(out)
}
