package window

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/streamd/streamd/pkg/keyed"
	"github.com/streamd/streamd/pkg/record"
)

var _ keyed.Operator = (*Operator)(nil)

// MinWatermark is the watermark before any event time is known.
const MinWatermark = keyed.MinWatermark

// MaxWatermark ends event time: every window fires (end of input).
const MaxWatermark = keyed.MaxWatermark

// Output field names added by the operator around the key and aggregate fields.
const (
	FieldWindowStart = "window_start"
	FieldWindowEnd   = "window_end"
	// FieldRevision is 0 for a window's first result and counts up with
	// every later row of the same window (updates by late records within
	// the allowed lateness, and retractions).
	FieldRevision = "revision"
	// FieldRetract is true on a row that withdraws the earlier row of the
	// same window and revision: the old values before an update, or a
	// session that a merge replaced. See the reader contract in
	// docs/windows.md.
	FieldRetract = "retract"
	// FieldLateWatermark is appended to late records: the watermark that made them late.
	FieldLateWatermark = "_watermark"
)

// EmitMode says when a window's results are emitted.
type EmitMode uint8

// Emit modes.
const (
	// EmitUpdates emits a window when the watermark passes its end and,
	// for every later record within the allowed lateness, a retraction of
	// the previous result followed by the updated one — Flink's event-time
	// trigger with allowed lateness, made composable by the retractions.
	EmitUpdates EmitMode = iota
	// EmitFinal emits each window once, when the watermark has passed its
	// end plus the allowed lateness: no revisions, no retractions, later.
	EmitFinal
)

func (m EmitMode) String() string {
	if m == EmitFinal {
		return "final"
	}
	return "updates"
}

// ParseEmit maps a pipeline-file emit mode to an EmitMode; "" is updates.
func ParseEmit(s string) (EmitMode, error) {
	switch s {
	case "", "updates":
		return EmitUpdates, nil
	case "final":
		return EmitFinal, nil
	}
	return 0, fmt.Errorf("unknown emit mode %q (want updates or final)", s)
}

// Config configures a window operator.
type Config struct {
	Assigner Assigner
	// AllowedLateness (ms) keeps windows after they fire; late records
	// within it update the result, later ones are late records.
	AllowedLateness int64
	// Emit says when results are emitted.
	Emit EmitMode
	// Input is the schema of incoming rows.
	Input *record.Schema
	// KeyFields name the fields that form the key; they are copied into results.
	KeyFields []string
	// Aggregates compute the result fields, bound to Input.
	Aggregates []Aggregate
	// Changelog, when set, says the input is the result stream of another
	// window stage: a row replaces the earlier row of the same identity and
	// a retraction removes it, so results are what the upstream's final
	// rows give (see ChangelogOf).
	Changelog *Changelog
	// StateTTL (ms of event time) is how long a key without any window
	// is kept — for reuse, since most keys come back — after its newest
	// window ended; 0 means the window size (or session gap) plus the
	// allowed lateness. Windows within their lateness are never dropped,
	// so no result depends on it.
	StateTTL int64
	// MaxStateBytes is the subtask's state budget (estimated bytes, see
	// Operator.StateBytes); 0 is unlimited. Once the state holds it, a
	// record of a key without state is refused: it goes to
	// Output.Refused instead of creating the key. Keys with state go on.
	MaxStateBytes int64
}

// Changelog describes an input whose rows are the results of another
// window stage, each identified by its upstream key and window.
type Changelog struct {
	// Identity lists the input fields that identify a row across its
	// revisions: the upstream key fields and window bounds.
	Identity []int
	// Retract is the index of the boolean field marking retractions, or
	// -1 when the upstream never withdraws a row (emit: final, or no
	// allowed lateness).
	Retract int
}

// StageInput says how a window stage with aggregates aggs reads the results
// of an upstream window stage (result schema s, keyed by nKeys fields,
// emitting updates or not): as a changelog when upstream rows can be
// updated or withdrawn, or when an aggregate depends on the order of rows
// with equal event times (first, last, max_by, min_by) — rows of an earlier
// stage arrive in no defined order, so such ties are broken by the upstream
// key and window instead. It returns nil when the rows can simply be added.
func StageInput(s *record.Schema, nKeys int, updates bool, aggs []Spec) (*Changelog, error) {
	ordered := false
	for _, a := range aggs {
		switch a.Fn {
		case FnFirst, FnLast, FnMaxBy, FnMinBy:
			ordered = true
		}
	}
	if !updates && !ordered {
		return nil, nil
	}
	ws, ok1 := s.Index(FieldWindowStart)
	we, ok2 := s.Index(FieldWindowEnd)
	rt, ok3 := s.Index(FieldRetract)
	if !ok1 || !ok2 || !ok3 || nKeys > ws {
		return nil, fmt.Errorf("stage input %s: not the result schema of a window stage with %d key fields", s, nKeys)
	}
	c := &Changelog{Retract: -1}
	if updates {
		c.Retract = rt
	}
	for i := 0; i < nKeys; i++ {
		c.Identity = append(c.Identity, i)
	}
	c.Identity = append(c.Identity, ws, we)
	return c, nil
}

// HoldBack returns the watermark of a stage's output given its input
// watermark wm and allowed lateness: results of windows within the
// lateness can still change, so the output promises only wm - lateness.
// Downstream stages then never see an update behind their own watermark.
func HoldBack(wm, lateness int64) int64 {
	if wm == MinWatermark || wm == MaxWatermark || lateness == 0 {
		return wm
	}
	if wm < MinWatermark+lateness {
		return MinWatermark
	}
	return wm - lateness
}

// Output receives what the operator emits (see keyed.Output). Results
// rows follow Operator.ResultSchema, Late rows follow Operator.LateSchema.
type Output = keyed.Output

// Operator is the keyed window operator of one subtask. It is not safe for
// concurrent use: one goroutine owns it and its state.
type Operator struct {
	cfg      Config
	kind     Kind
	keyIdx   []int
	result   *record.Schema
	late     *record.Schema
	pane     int64
	slide    int64
	size     int64
	off      int64
	lateness int64
	final    bool
	clog     *Changelog
	wm       int64
	// lastPane is the pane start of the last record (addTumbling).
	lastPane int64
	// table finds a key's state (in slab) by the key's hash; arena holds
	// the key text; nKeys counts the keys, empty ones included.
	table  keyTable
	slab   keySlab
	arena  keyArena
	nKeys  int
	timers map[int64][]*keyState
	times  timeHeap
	// slots say where each aggregate's state lives in a pane, in output
	// order: words for the aggregates that keep plain numbers (wordAgg),
	// an Acc for the others. words and accs split them for the record
	// path; countOnly marks a stage whose one aggregate counts rows.
	slots         []aggSlot
	words, accs   []aggSlot
	nWords, nAccs int
	countOnly     bool
	scratchW      []uint64
	scratchA      []Acc
	// ttl is how long a key without windows is kept (Config.StateTTL);
	// stats estimates the state's size; expiredKeys counts the keys the
	// TTL let go.
	ttl         int64
	stats       stateStats
	expiredKeys int64
	// spareTimers recycles timer lists; nextSweep is when empty keys are
	// next swept out.
	spareTimers [][]*keyState
	nextSweep   int64
	empty       int
	// async is the snapshot in progress, nil most of the time.
	async *AsyncSnapshot
	epoch int64
	// Scratch space for window lists, identities and sorted contributions.
	winBuf  [][2]int64
	idBuf   []byte
	sortBuf []contribRef
}

type keyState struct {
	key string
	// vals points to the key's field values, one per key field (see
	// Operator.keyVals); nil when the key is one string field, whose
	// value is the key itself, or there are no key fields.
	vals *record.Value
	// panes are the key's panes by start. The slot past the last one
	// keeps the storage of the last removed pane, so that the next pane
	// reuses it: a key costs no allocation per window.
	panes []pane
	// sl is the sliding-window bookkeeping, nil for other windows.
	sl *slidingKey
	// timer is the one event time at which this key needs attention next,
	// or noTimer.
	timer int64
	// lastEnd is the end of the newest pane; an empty key is dropped once
	// the watermark is a retention period past it.
	lastEnd int64
	// snap coordinates an asynchronous snapshot (see async.go).
	snap atomic.Int64
	// tag is the high half of the key's hash (see keyTable).
	tag  uint32
	kg   uint16
	live bool
}

// slidingKey is what a key of a sliding window keeps besides its panes.
type slidingKey struct {
	// firedEnd is the end of the last sliding window whose firing time has
	// passed for this key: every window ending at or before it was emitted
	// or had no data then.
	firedEnd int64
	// fired lists the emitted sliding windows that are not expired yet, by
	// end (updates mode only): the revision bookkeeping of late updates.
	fired []firedWindow
}

// aggSlot is where one aggregate keeps its state in a pane: words
// [off, off+words) for a wordAgg, accs[off] for the others.
type aggSlot struct {
	w   wordAgg
	a   Aggregate
	off int
}

type firedWindow struct {
	end  int64
	next int32 // revision of the window's next row
	live bool  // its last row is a result, not a retraction
}

// pane is a tumbling window, a slice of sliding windows or a session.
type pane struct {
	start, end int64
	// iw holds the state of the aggregates that keep words, when they
	// keep inlineWords or fewer (count, avg and max take four): no
	// allocation and no slice header per pane. See Operator.paneWords.
	iw [inlineWords]uint64
	// x holds the rest, nil for a stage whose aggregates keep at most
	// inlineWords words and nothing else.
	x *paneExt
	// next is the revision of the pane's next row and live whether its
	// last row is a result (tumbling windows and sessions).
	next    int32
	live    bool
	pending bool
}

// paneExt is the part of a pane only some stages need.
type paneExt struct {
	// w holds the words of a stage with more than inlineWords of them.
	w    []uint64
	accs []Acc
	// contrib holds, for a changelog input, the current row of every
	// upstream identity in the pane; the state is recomputed from it when
	// dirty. bytes estimates what the rows take.
	contrib map[string]contribution
	dirty   bool
	bytes   int64
}

type contribution struct {
	t   int64
	row []record.Value
}

type contribRef struct {
	id string
	c  *contribution
}

const noTimer = math.MaxInt64

// inlineWords is how many words of aggregate state a pane holds inline.
const inlineWords = 4

// paneWords returns p's word state.
func (o *Operator) paneWords(p *pane) []uint64 {
	if o.nWords <= inlineWords {
		return p.iw[:o.nWords]
	}
	return p.x.w
}

// needsExt reports whether panes of this operator need a paneExt.
func (o *Operator) needsExt() bool {
	return o.nAccs > 0 || o.clog != nil || o.nWords > inlineWords
}

// NewOperator validates cfg and returns an operator with empty state.
func NewOperator(cfg Config) (*Operator, error) {
	if err := cfg.Assigner.Validate(); err != nil {
		return nil, fmt.Errorf("new window operator: %w", err)
	}
	if cfg.Input == nil {
		return nil, errors.New("new window operator: input schema is nil")
	}
	if cfg.AllowedLateness < 0 {
		return nil, errors.New("new window operator: allowed lateness must be >= 0")
	}
	if cfg.Emit > EmitFinal {
		return nil, fmt.Errorf("new window operator: unknown emit mode %d", cfg.Emit)
	}
	if cfg.StateTTL < 0 || cfg.MaxStateBytes < 0 {
		return nil, errors.New("new window operator: state TTL and state budget must be >= 0")
	}
	a := cfg.Assigner
	o := &Operator{
		cfg:      cfg,
		kind:     a.Kind,
		pane:     a.pane(),
		slide:    a.slide(),
		size:     a.Size,
		lateness: cfg.AllowedLateness,
		final:    cfg.Emit == EmitFinal,
		clog:     cfg.Changelog,
		wm:       MinWatermark,
		lastPane: MinWatermark,
		timers:   make(map[int64][]*keyState),
	}
	if a.Kind != Session {
		o.off = a.Offset - alignDown(a.Offset, o.slide, 0) // in [0, slide)
	}
	if c := o.clog; c != nil {
		if a.Kind == Session && c.Retract >= 0 {
			// Withdrawing a row can split a session; sessions over updates
			// are not supported (the upstream can emit final results).
			return nil, errors.New("new window operator: a session window cannot read updates and retractions; let the upstream stage emit final results (emit: final)")
		}
		if c.Retract >= cfg.Input.Len() || c.Retract >= 0 && cfg.Input.Field(c.Retract).Type != record.TypeBool {
			return nil, errors.New("new window operator: changelog retract field is not a bool field of the input")
		}
		for _, i := range c.Identity {
			if i < 0 || i >= cfg.Input.Len() {
				return nil, errors.New("new window operator: changelog identity field out of range")
			}
		}
	}
	fields := make([]record.Field, 0, len(cfg.KeyFields)+4+len(cfg.Aggregates))
	for _, name := range cfg.KeyFields {
		i, ok := cfg.Input.Index(name)
		if !ok {
			return nil, fmt.Errorf("new window operator: key field %q is not in the input (%s)", name, cfg.Input)
		}
		o.keyIdx = append(o.keyIdx, i)
		fields = append(fields, cfg.Input.Field(i))
	}
	fields = append(fields,
		record.Field{Name: FieldWindowStart, Type: record.TypeTimestamp},
		record.Field{Name: FieldWindowEnd, Type: record.TypeTimestamp},
		record.Field{Name: FieldRevision, Type: record.TypeInt},
		record.Field{Name: FieldRetract, Type: record.TypeBool},
	)
	for _, a := range cfg.Aggregates {
		fields = append(fields, record.Field{Name: a.Name(), Type: a.Type()})
	}
	var err error
	if o.result, err = record.NewSchema(fields...); err != nil {
		return nil, fmt.Errorf("new window operator: result schema: %w", err)
	}
	late := append(cfg.Input.Fields(), record.Field{Name: FieldLateWatermark, Type: record.TypeTimestamp})
	if o.late, err = record.NewSchema(late...); err != nil {
		return nil, fmt.Errorf("new window operator: late schema: %w", err)
	}
	for _, agg := range cfg.Aggregates {
		if w, ok := asWords(agg); ok {
			sl := aggSlot{w: w, a: agg, off: o.nWords}
			o.nWords += w.words()
			o.slots, o.words = append(o.slots, sl), append(o.words, sl)
			continue
		}
		sl := aggSlot{a: agg, off: o.nAccs}
		o.nAccs++
		o.slots, o.accs = append(o.slots, sl), append(o.accs, sl)
	}
	isCount := false
	if len(cfg.Aggregates) == 1 {
		_, isCount = cfg.Aggregates[0].(*countRows)
	}
	o.countOnly = isCount && cfg.Changelog == nil
	o.scratchW, o.scratchA = make([]uint64, o.nWords), make([]Acc, o.nAccs)
	o.ttl = cfg.StateTTL
	if o.ttl == 0 {
		o.ttl = o.defaultRetention()
	}
	o.stats.init(o)
	return o, nil
}

// ResultSchema is the schema of window results: key fields, window_start,
// window_end, revision, retract, then one field per aggregate.
func (o *Operator) ResultSchema() *record.Schema { return o.result }

// LateSchema is the input schema plus the watermark that made a record late.
func (o *Operator) LateSchema() *record.Schema { return o.late }

// Watermark is the operator's current event time.
func (o *Operator) Watermark() int64 { return o.wm }

// OutputWatermark is the watermark of the operator's results (see HoldBack).
func (o *Operator) OutputWatermark() int64 { return HoldBack(o.wm, o.lateness) }

// Keys is the number of keys holding window state.
func (o *Operator) Keys() int { return o.nKeys - o.empty }

// hashOf is the hash of row i's key: the one the exchange sent, or
// computed here for a batch without hashes.
func hashOf(in *record.Batch, i int) uint64 {
	if len(in.Hashes) == len(in.Keys) {
		return in.Hashes[i]
	}
	return KeyHash(in.Keys[i])
}

// keyOf returns the state of row i's key, nil if it has none, with the
// key's hash.
func (o *Operator) keyOf(in *record.Batch, i int) (*keyState, uint64) {
	h := hashOf(in, i)
	return o.lookup(h, in.Keys[i]), h
}

// Process adds every row of in to its key's windows. in.Keys must be set
// (the keyBy exchange does it). Records behind the watermark by more than
// the allowed lateness go to out.Late; records that change an already fired
// window emit an updated result at once.
func (o *Operator) Process(in *record.Batch, out *Output) {
	if o.kind == Tumbling {
		for i := 0; i < in.Len(); i++ {
			o.addTumbling(in, i, out)
		}
		return
	}
	for i := 0; i < in.Len(); i++ {
		o.add(in, i, out)
	}
}

// expired reports whether a window ending at end is past its allowed
// lateness: its state is gone and records for it are late.
func (o *Operator) expired(end int64) bool {
	return o.wm != MinWatermark && end-1 <= o.wm-o.lateness
}

// due reports whether a window ending at end has reached its firing time.
func (o *Operator) due(end int64) bool {
	if o.final {
		return o.expired(end)
	}
	return end-1 <= o.wm
}

// lastExpiredEnd is the end of the newest sliding window that has expired
// at the current watermark.
func (o *Operator) lastExpiredEnd() int64 {
	if o.wm == MinWatermark || o.wm < MinWatermark+o.size+o.lateness {
		return MinWatermark
	}
	// expired(e) ⟺ e ≤ wm - lateness + 1; ends are window starts + size.
	return alignDown(o.wm-o.lateness+1-o.size, o.slide, o.off) + o.size
}

// fireTime is the watermark at which a window ending at end fires.
func (o *Operator) fireTime(end int64) int64 {
	if o.final {
		return o.expiry(end)
	}
	return end - 1
}

// expiry is the watermark at which a window ending at end expires.
func (o *Operator) expiry(end int64) int64 {
	if end-1 > math.MaxInt64-o.lateness {
		return math.MaxInt64
	}
	return end - 1 + o.lateness
}

// keyFor returns the state of row i's key, creating it — or nil when the
// state budget refuses a new key (the row went to out.Rejected).
func (o *Operator) keyFor(in *record.Batch, i int, out *Output) *keyState {
	ks, h := o.keyOf(in, i)
	if ks == nil {
		ks = o.newKeyFrom(in, i, h, out)
	} else if o.async != nil {
		o.async.touch(ks)
	}
	return ks
}

// newKeyFrom creates the key of row i of in, unless the state holds its
// budget: then the row is refused (out.Rejected) and nil returned.
func (o *Operator) newKeyFrom(in *record.Batch, i int, h uint64, out *Output) *keyState {
	if o.cfg.MaxStateBytes > 0 && o.StateBytes() >= o.cfg.MaxStateBytes {
		o.reject(in, i, out)
		return nil
	}
	ks := o.newKey(h, in.Keys[i], in.Row(i))
	if in.KeyGroups != nil {
		ks.kg = in.KeyGroups[i]
	}
	return ks
}

func (o *Operator) add(in *record.Batch, i int, out *Output) {
	switch o.kind {
	case Tumbling:
		o.addTumbling(in, i, out)
	case Sliding:
		o.addSliding(in, i, out)
	default:
		o.addSession(in, i, out)
	}
}

// addTumbling is the hot path: kept small so the compiler keeps it tight.
func (o *Operator) addTumbling(in *record.Batch, i int, out *Output) {
	t := in.Times[i]
	// Most records fall in the pane of the one before: no division.
	ps := o.lastPane
	if t < ps || t-ps >= o.pane || ps == MinWatermark {
		ps = alignDown(t, o.pane, o.off)
		o.lastPane = ps
	}
	if o.expired(ps + o.size) {
		o.emitLate(in, i, out)
		return
	}
	if o.clog != nil && o.retraction(in.Row(i)) && !o.holds(in, i, ps) {
		return // nothing to withdraw
	}
	ks, h := o.keyOf(in, i)
	if ks == nil {
		if ks = o.newKeyFrom(in, i, h, out); ks == nil {
			return
		}
	} else if o.async != nil {
		o.async.touch(ks)
	}
	p := ks.paneAt(ps)
	if p == nil {
		p = o.newPane(ks, ps, ps+o.pane)
	}
	if !o.final && p.end-1 <= o.wm {
		// The window has fired: say again what it holds now.
		if p.live {
			o.retractPane(ks, p, out)
		}
		o.apply(p, in, i)
		o.assertPane(ks, p, out)
	} else {
		o.apply(p, in, i)
		p.pending = true
	}
	o.settleTimer(ks, out)
}

func (o *Operator) addSliding(in *record.Batch, i int, out *Output) {
	t := in.Times[i]
	ps := alignDown(t, o.pane, o.off)
	if o.expired(alignDown(t, o.slide, o.off) + o.size) {
		// Every window of the record has expired.
		o.emitLate(in, i, out)
		return
	}
	if o.clog != nil && o.retraction(in.Row(i)) && !o.holds(in, i, ps) {
		return // nothing to withdraw
	}
	ks := o.keyFor(in, i, out)
	if ks == nil {
		return
	}
	p := ks.paneAt(ps)
	if p == nil {
		p = o.newPane(ks, ps, ps+o.pane)
	}
	// Windows past their lateness have fired already or hold no data of
	// this key, and this record does not reach them: they must not fire
	// because the record shares a slice with them.
	if e := o.lastExpiredEnd(); e > ks.sl.firedEnd {
		ks.sl.firedEnd = e
	}
	// The fired sliding windows holding this slice change: retract what
	// they said, then say it again with the record.
	var changed [][2]int64
	if !o.final && ks.sl.firedEnd != MinWatermark {
		changed = o.cfg.Assigner.WindowsOf(ps, o.winBuf[:0])
		n := 0
		for _, w := range changed {
			if w[1] <= ks.sl.firedEnd && !o.expired(w[1]) {
				changed[n] = w
				n++
				if fw := ks.firedAt(w[1]); fw != nil && fw.live {
					o.retractSliding(ks, fw, out)
				}
			}
		}
		changed = changed[:n]
		o.winBuf = changed
	}
	o.apply(p, in, i)
	for _, w := range changed {
		o.assertSliding(ks, w[1], out)
	}
	o.settleTimer(ks, out)
}

// settleTimer reschedules a key that a record changed and, if one of its
// windows is already due (its first record arrived behind the watermark
// but within lateness), fires it now.
func (o *Operator) settleTimer(ks *keyState, out *Output) {
	o.schedule(ks)
	if ks.timer <= o.wm {
		ks.timer = noTimer
		o.onTimer(ks, out)
	}
}

func (o *Operator) addSession(in *record.Batch, i int, out *Output) {
	t := in.Times[i]
	gap := o.cfg.Assigner.Gap
	start, end := t, t+gap
	first, last := -1, -1
	if ks, _ := o.keyOf(in, i); ks != nil {
		for j := range ks.panes {
			p := &ks.panes[j]
			// Flink's intersection: sessions that touch merge too.
			if p.start <= end && p.end >= start {
				if first < 0 {
					first = j
				}
				last = j
				start, end = min(start, p.start), max(end, p.end)
			}
		}
	}
	if o.expired(end) {
		o.emitLate(in, i, out)
		return
	}
	ks := o.keyFor(in, i, out)
	if ks == nil {
		return
	}
	var p *pane
	if first < 0 {
		p = o.newPane(ks, start, end)
	} else {
		p = &ks.panes[first]
		same := first == last && p.start == start && p.end == end
		if !o.final {
			// Sessions replaced by the merge are withdrawn; a session that
			// keeps its bounds is updated below.
			for j := first; j <= last; j++ {
				if q := &ks.panes[j]; q.live {
					o.retractPane(ks, q, out)
				}
			}
		}
		for j := first + 1; j <= last; j++ {
			o.mergePane(p, &ks.panes[j])
		}
		for j := first + 1; j <= last; j++ {
			o.forget(&ks.panes[j])
		}
		ks.panes = slices.Delete(ks.panes, first+1, last+1)
		p = &ks.panes[first]
		if !same {
			// A session with other bounds is another window: its rows
			// start again at revision 0.
			p.start, p.end, p.next = start, end, 0
			ks.lastEnd = max(ks.lastEnd, end)
		}
	}
	o.apply(p, in, i)
	if !o.final && p.end-1 <= o.wm {
		o.assertPane(ks, p, out)
	} else {
		p.pending = true
	}
	o.schedule(ks)
}

// mergePane folds q into p (merged sessions).
func (o *Operator) mergePane(p, q *pane) {
	if o.clog != nil {
		x, y := p.x, q.x
		if x.contrib == nil {
			x.contrib = make(map[string]contribution, len(y.contrib))
		}
		for id, c := range y.contrib {
			if old, ok := x.contrib[id]; ok {
				o.stats.contrib(x, -contribBytes(id, old.row))
			}
			x.contrib[id] = c
			o.stats.contrib(x, contribBytes(id, c.row))
		}
		x.dirty = true
		return
	}
	o.mergeState(o.paneWords(p), p.accs(), o.paneWords(q), q.accs())
}

// mergeState folds the state src (words, accs) into dst.
func (o *Operator) mergeState(dstW []uint64, dstA []Acc, srcW []uint64, srcA []Acc) {
	for _, sl := range o.words {
		sl.w.mergeW(dstW[sl.off:], srcW[sl.off:])
	}
	for _, sl := range o.accs {
		sl.a.Merge(&dstA[sl.off], &srcA[sl.off])
	}
}

// accs is the pane's Acc state, nil when its aggregates all keep words.
func (p *pane) accs() []Acc {
	if p.x == nil {
		return nil
	}
	return p.x.accs
}

// apply adds row i of in to p: to its state, or for a changelog input to
// the pane's current rows.
func (o *Operator) apply(p *pane, in *record.Batch, i int) {
	switch {
	case o.countOnly:
		p.iw[0]++
	case o.clog == nil:
		o.addRow(o.paneWords(p), p.accs(), in.Row(i), in.Times[i])
	default:
		o.applyChangelog(p, in, i)
	}
}

// addRow folds one row into the state (words, accs).
func (o *Operator) addRow(w []uint64, accs []Acc, row record.Row, t int64) {
	for _, sl := range o.words {
		sl.w.addW(w[sl.off:], row, t)
	}
	for _, sl := range o.accs {
		sl.a.Add(&accs[sl.off], row, t)
	}
}

func (o *Operator) applyChangelog(p *pane, in *record.Batch, i int) {
	row := in.Row(i)
	t := in.Times[i]
	x := p.x
	o.identity(row)
	if o.retraction(row) {
		if old, ok := x.contrib[string(o.idBuf)]; ok {
			o.stats.contrib(x, -contribBytes(string(o.idBuf), old.row))
			delete(x.contrib, string(o.idBuf))
			x.dirty = true
		}
		return
	}
	if x.contrib == nil {
		x.contrib = make(map[string]contribution)
	}
	cur, ok := x.contrib[string(o.idBuf)]
	if !ok {
		o.stats.contrib(x, contribBytes(string(o.idBuf), row))
	}
	cur.t = t
	if cap(cur.row) < len(row) {
		cur.row = make(record.Row, 0, len(row)) // one allocation, not append's doublings
	}
	cur.row = cur.row[:0]
	for _, v := range row {
		cur.row = append(cur.row, v.Clone())
	}
	x.contrib[string(o.idBuf)] = cur
	x.dirty = true
}

// holds reports whether the slice at ps of key holds the identity of a
// changelog row.
func (o *Operator) holds(in *record.Batch, i int, ps int64) bool {
	row := in.Row(i)
	ks, _ := o.keyOf(in, i)
	if ks == nil {
		return false
	}
	p := ks.paneAt(ps)
	if p == nil {
		return false
	}
	o.identity(row)
	_, ok := p.x.contrib[string(o.idBuf)]
	return ok
}

// retraction reports whether row withdraws an earlier changelog row.
func (o *Operator) retraction(row record.Row) bool {
	return o.clog != nil && o.clog.Retract >= 0 && row[o.clog.Retract].Bool()
}

// identity encodes the changelog identity of row into idBuf.
func (o *Operator) identity(row record.Row) {
	o.idBuf = o.idBuf[:0]
	for _, f := range o.clog.Identity {
		o.idBuf = record.AppendValue(o.idBuf, row[f])
	}
}

// hasData reports whether p holds any input (a changelog pane may have
// had all its rows retracted).
func (o *Operator) hasData(p *pane) bool {
	return o.clog == nil || len(p.x.contrib) > 0
}

// settle brings a changelog pane's accumulators up to date: recomputed
// from its current rows in (event time, identity) order, so ties in
// first/last/max_by never depend on arrival order.
func (o *Operator) settle(p *pane) {
	if o.clog == nil || !p.x.dirty {
		return
	}
	p.x.dirty = false
	clear(o.paneWords(p))
	clear(p.x.accs)
	refs := o.sortBuf[:0]
	for id, c := range p.x.contrib {
		refs = append(refs, contribRef{id: id, c: &c})
	}
	slices.SortFunc(refs, func(a, b contribRef) int {
		if c := cmp.Compare(a.c.t, b.c.t); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	for _, r := range refs {
		o.addRow(o.paneWords(p), p.x.accs, r.c.row, r.c.t)
	}
	clear(refs)
	o.sortBuf = refs[:0]
}

func (o *Operator) newPane(ks *keyState, start, end int64) *pane {
	x := o.paneStorage(ks)
	if len(ks.panes) == 0 {
		o.empty--
	}
	ks.lastEnd = max(ks.lastEnd, end)
	o.stats.panes++
	return ks.insert(pane{start: start, end: end, x: x})
}

// paneStorage returns the paneExt for a new pane of ks, if the stage
// needs one: what the last removed pane left in the slot past the key's
// panes (cleared when it was removed), or new. Word state up to
// inlineWords is in the pane itself.
func (o *Operator) paneStorage(ks *keyState) *paneExt {
	if !o.needsExt() {
		return nil
	}
	if n := len(ks.panes); n < cap(ks.panes) {
		slot := &ks.panes[:n+1][n]
		x := slot.x
		slot.x = nil
		if x != nil {
			return x
		}
	}
	x := &paneExt{}
	if o.nWords > inlineWords {
		x.w = make([]uint64, o.nWords)
	}
	if o.nAccs > 0 {
		x.accs = make([]Acc, o.nAccs)
	}
	return x
}

// forget accounts for a removed pane and clears its state, which the
// caller may keep for reuse (see paneStorage).
func (o *Operator) forget(p *pane) {
	o.stats.panes--
	clear(o.paneWords(p))
	if x := p.x; x != nil {
		o.stats.contrib(x, -x.bytes)
		clear(x.accs)
		x.contrib, x.dirty = nil, false
	}
}

// keep drops ks's panes for which drop reports true, in place and in
// order; the first removed pane's storage stays in the slot past the
// kept ones for the next pane to reuse.
func (o *Operator) keep(ks *keyState, drop func(*pane) bool) {
	n := 0
	var spareX *paneExt
	dropped := false
	for j := range ks.panes {
		p := &ks.panes[j]
		if drop(p) {
			o.forget(p)
			if !dropped {
				spareX, dropped = p.x, true
			}
			continue
		}
		if n != j {
			ks.panes[n] = *p
		}
		n++
	}
	if !dropped {
		return
	}
	clear(ks.panes[n:])
	ks.panes = ks.panes[:n]
	slot := &ks.panes[:n+1][n]
	slot.x = spareX
}

func (o *Operator) newKey(h uint64, key string, row record.Row) *keyState {
	o.empty++ // until its first pane
	// No id of a dropped key is reused while a snapshot walks the ids.
	id, ks := o.slab.alloc(o.async == nil)
	ks.key = o.arena.intern(key) // the batch's key lives in the batch's arena
	ks.timer, ks.tag, ks.live = noTimer, uint32(h>>32), true
	if o.kind == Sliding {
		ks.sl = &slidingKey{firedEnd: MinWatermark}
	}
	// A key born after a snapshot began is not part of it.
	ks.snap.Store(2*o.epoch + 1)
	if len(o.keyIdx) > 1 || len(o.keyIdx) == 1 && (row[o.keyIdx[0]].T != record.TypeString || row[o.keyIdx[0]].S != key) {
		// Otherwise the key is its one string value: nothing more to keep.
		vals := make([]record.Value, len(o.keyIdx))
		for j, idx := range o.keyIdx {
			vals[j] = row[idx].Clone()
		}
		ks.vals = &vals[0]
	}
	o.table.insert(ks.tag, id)
	o.nKeys++
	o.stats.newKey(ks)
	return ks
}

// keyValues returns the key's field values, in dst's storage when the key
// is its one string value.
func (o *Operator) keyValues(ks *keyState, dst []record.Value) []record.Value {
	if ks.vals != nil || len(o.keyIdx) != 1 {
		return o.keyVals(ks)
	}
	dst[0] = record.String(ks.key)
	return dst[:1]
}

// keyVals returns the key's stored field values (nil when the key is its
// one string value).
func (o *Operator) keyVals(ks *keyState) []record.Value {
	if ks.vals == nil {
		return nil
	}
	return unsafe.Slice(ks.vals, len(o.keyIdx))
}

func (ks *keyState) paneAt(start int64) *pane {
	for j := len(ks.panes) - 1; j >= 0; j-- {
		if ks.panes[j].start == start {
			return &ks.panes[j]
		}
		if ks.panes[j].start < start {
			break
		}
	}
	return nil
}

// insert keeps panes sorted by start; records mostly arrive in order so the
// common case appends.
func (ks *keyState) insert(p pane) *pane {
	j := len(ks.panes)
	for j > 0 && ks.panes[j-1].start > p.start {
		j--
	}
	ks.panes = append(ks.panes, pane{})
	copy(ks.panes[j+1:], ks.panes[j:])
	ks.panes[j] = p
	return &ks.panes[j]
}

// firedAt returns the fired sliding window ending at end, if tracked.
func (ks *keyState) firedAt(end int64) *firedWindow {
	for j := range ks.sl.fired {
		if ks.sl.fired[j].end == end {
			return &ks.sl.fired[j]
		}
	}
	return nil
}

func (o *Operator) emitLate(in *record.Batch, i int, out *Output) {
	out.LateRecords++
	if out.Late == nil {
		return
	}
	row := out.Late.AppendRow(in.Times[i])
	copy(row, in.Row(i))
	row[len(row)-1] = record.TimestampMillis(o.wm)
}

// Advance moves event time to wm (ignored if not newer), firing every window
// whose end has passed and dropping state past the allowed lateness.
func (o *Operator) Advance(wm int64, out *Output) {
	if wm <= o.wm {
		return
	}
	o.wm = wm
	for len(o.times) > 0 && o.times[0] <= wm {
		t := heap.Pop(&o.times).(int64)
		due := o.timers[t]
		delete(o.timers, t)
		if o.kind != Session && out.Results != nil {
			// At most one result per key (more for a sliding window
			// behind by several slides): room made once, not by doubling.
			out.Results.Grow(len(due))
		}
		for _, ks := range due {
			if ks.timer != t {
				continue // rescheduled earlier or later: stale entry
			}
			ks.timer = noTimer
			o.onTimer(ks, out)
		}
		clear(due)
		o.spareTimers = append(o.spareTimers, due[:0])
	}
	o.sweep()
}

func (o *Operator) onTimer(ks *keyState, out *Output) {
	if o.async != nil {
		o.async.touch(ks)
	}
	if o.kind == Sliding {
		for {
			e := o.nextSlidingEnd(ks)
			if e == noTimer || !o.due(e) {
				break
			}
			o.fireSliding(ks, e, out)
			ks.sl.firedEnd = e
		}
		// A slice lives until the last window holding it expires.
		o.keep(ks, func(p *pane) bool { return o.expired(alignDown(p.start, o.slide, o.off) + o.size) })
		fired := ks.sl.fired[:0]
		for _, fw := range ks.sl.fired {
			if !o.expired(fw.end) {
				fired = append(fired, fw)
			}
		}
		ks.sl.fired = fired
	} else {
		o.keep(ks, func(p *pane) bool {
			if p.pending && o.due(p.end) {
				p.pending = false
				if o.hasData(p) {
					o.assertPane(ks, p, out)
				}
			}
			return o.expired(p.end)
		})
	}
	if len(ks.panes) == 0 {
		// Keep the key for a retention period: most keys come back in the
		// next window, and reusing their state avoids churn.
		if ks.sl != nil {
			ks.sl.fired = ks.sl.fired[:0]
		}
		o.empty++
		return
	}
	o.schedule(ks)
}

// defaultRetention is how long an empty key is kept after its last pane
// ended when Config.StateTTL is not set: one window and its lateness.
func (o *Operator) defaultRetention() int64 {
	if o.kind == Session {
		return o.cfg.Assigner.Gap + o.lateness
	}
	return o.size + o.lateness
}

// retention is how long an empty key is kept after its last pane ended.
func (o *Operator) retention() int64 { return o.ttl }

// sweepEvery is how often (event time) empty keys are swept: once per
// retention, but not more often than once per window length, so a short
// TTL does not make every watermark walk every key.
func (o *Operator) sweepEvery() int64 {
	if o.kind == Session {
		return max(o.ttl, o.cfg.Assigner.Gap)
	}
	return max(o.ttl, o.slide)
}

// ExpiredKeys counts the keys dropped because they held no window for
// the state TTL.
func (o *Operator) ExpiredKeys() int64 { return o.expiredKeys }

// sweep drops keys without panes whose retention has passed. It runs at
// most once per retention period of event time, so its cost is amortized.
func (o *Operator) sweep() {
	if o.empty == 0 || o.wm < o.nextSweep {
		return
	}
	r := o.retention()
	every := o.sweepEvery()
	dropped := false
	for id := range o.slab.n {
		ks := o.slab.at(id)
		if ks.live && len(ks.panes) == 0 && (o.wm == MaxWatermark || ks.lastEnd+r <= o.wm) && o.async == nil {
			o.empty--
			o.expiredKeys++
			o.nKeys--
			o.stats.dropKey(ks)
			o.slab.release(id)
			dropped = true
		}
	}
	if dropped {
		o.reindex()
	}
	if o.wm >= MaxWatermark-every {
		o.nextSweep = MaxWatermark
	} else {
		o.nextSweep = o.wm + every
	}
}

// reindex rebuilds the key table from the live keys.
func (o *Operator) reindex() {
	o.table.reset(o.nKeys)
	for id := range o.slab.n {
		if ks := o.slab.at(id); ks.live {
			o.table.insert(ks.tag, id)
		}
	}
}

// eachKey calls f for every key, empty ones included.
func (o *Operator) eachKey(f func(*keyState)) {
	for id := range o.slab.n {
		if ks := o.slab.at(id); ks.live {
			f(ks)
		}
	}
}

// nextSlidingEnd is the end of the first sliding window of the key that
// holds data and ends after firedEnd, or noTimer.
func (o *Operator) nextSlidingEnd(ks *keyState) int64 {
	for j := range ks.panes {
		p := &ks.panes[j]
		if !o.hasData(p) {
			continue
		}
		// Windows holding the slice start in (p.start-size, p.start].
		first := alignDown(p.start-o.size, o.slide, o.off) + o.slide
		if ks.sl.firedEnd != MinWatermark {
			first = max(first, ks.sl.firedEnd-o.size+o.slide)
		}
		if first <= alignDown(p.start, o.slide, o.off) {
			return first + o.size
		}
	}
	return noTimer
}

// schedule sets the key's single timer to the next time it needs attention.
func (o *Operator) schedule(ks *keyState) {
	next := int64(noTimer)
	if o.kind == Sliding {
		if e := o.nextSlidingEnd(ks); e != noTimer {
			next = o.fireTime(e)
		}
		if len(ks.panes) > 0 {
			next = min(next, o.expiry(alignDown(ks.panes[0].start, o.slide, o.off)+o.size))
		}
	} else {
		for j := range ks.panes {
			p := &ks.panes[j]
			if p.pending {
				next = min(next, o.fireTime(p.end))
			} else {
				next = min(next, o.expiry(p.end))
			}
		}
	}
	if next < ks.timer {
		// An earlier entry supersedes the current one, which goes stale.
		o.addTimer(next, ks)
	}
}

func (o *Operator) addTimer(t int64, ks *keyState) {
	ks.timer = t
	list, ok := o.timers[t]
	if !ok {
		heap.Push(&o.times, t)
		if n := len(o.spareTimers); n > 0 {
			list = o.spareTimers[n-1]
			o.spareTimers = o.spareTimers[:n-1]
		}
	}
	o.timers[t] = append(list, ks)
}

// assertPane emits the pane's current result as its next revision.
func (o *Operator) assertPane(ks *keyState, p *pane, out *Output) {
	p.pending = false
	if !o.hasData(p) {
		p.live = false
		return
	}
	o.settle(p)
	o.emit(ks, p.start, p.end, p.next, false, o.paneWords(p), p.accs(), out)
	p.next++
	p.live = true
}

// retractPane withdraws the pane's last result. Its accumulators still
// hold what that result said: every change to a live pane is emitted at once.
func (o *Operator) retractPane(ks *keyState, p *pane, out *Output) {
	o.settle(p)
	o.emit(ks, p.start, p.end, p.next, true, o.paneWords(p), p.accs(), out)
	p.next++
	p.live = false
}

// windowAccs merges the slices of the sliding window ending at end into
// the scratch accumulators and reports whether any held data.
func (o *Operator) windowAccs(ks *keyState, end int64) bool {
	start := end - o.size
	clear(o.scratchW)
	clear(o.scratchA)
	n := 0
	for j := range ks.panes {
		p := &ks.panes[j]
		if p.start < start || p.start >= end || !o.hasData(p) {
			continue
		}
		o.settle(p)
		o.mergeState(o.scratchW, o.scratchA, o.paneWords(p), p.accs())
		n++
	}
	return n > 0
}

// fireSliding emits the sliding window ending at end at its firing time.
func (o *Operator) fireSliding(ks *keyState, end int64, out *Output) {
	if !o.windowAccs(ks, end) {
		return
	}
	o.emit(ks, end-o.size, end, 0, false, o.scratchW, o.scratchA, out)
	if !o.final && !o.expired(end) {
		ks.sl.fired = append(ks.sl.fired, firedWindow{end: end, next: 1, live: true})
	}
}

// retractSliding withdraws the last result of a fired sliding window.
func (o *Operator) retractSliding(ks *keyState, fw *firedWindow, out *Output) {
	o.windowAccs(ks, fw.end)
	o.emit(ks, fw.end-o.size, fw.end, fw.next, true, o.scratchW, o.scratchA, out)
	fw.next++
	fw.live = false
}

// assertSliding emits the current result of a fired sliding window that a
// late record changed.
func (o *Operator) assertSliding(ks *keyState, end int64, out *Output) {
	fw := ks.firedAt(end)
	if fw == nil {
		j := len(ks.sl.fired)
		for j > 0 && ks.sl.fired[j-1].end > end {
			j--
		}
		ks.sl.fired = slices.Insert(ks.sl.fired, j, firedWindow{end: end})
		fw = &ks.sl.fired[j]
	}
	if !o.windowAccs(ks, end) {
		fw.live = false
		return
	}
	o.emit(ks, end-o.size, end, fw.next, false, o.scratchW, o.scratchA, out)
	fw.next++
	fw.live = true
}

func (o *Operator) emit(ks *keyState, start, end int64, rev int32, retract bool, w []uint64, accs []Acc, out *Output) {
	switch {
	case retract:
		out.Retractions++
	case rev == 0:
		out.Firings++
	default:
		out.Updates++
	}
	row := out.Results.AppendRow(end - 1)
	n := copy(row, o.keyValues(ks, row))
	row[n] = record.TimestampMillis(start)
	row[n+1] = record.TimestampMillis(end)
	row[n+2] = record.Int(int64(rev))
	row[n+3] = record.Bool(retract)
	for k, sl := range o.slots {
		if sl.w != nil {
			row[n+4+k] = sl.w.resultW(w[sl.off:])
		} else {
			row[n+4+k] = sl.a.Result(&accs[sl.off])
		}
	}
}

type timeHeap []int64

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *timeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
