package window

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"

	"github.com/streamd/streamd/pkg/record"
)

// MinWatermark is the watermark before any event time is known.
const MinWatermark = math.MinInt64

// MaxWatermark ends event time: every window fires (end of input).
const MaxWatermark = math.MaxInt64

// Output field names added by the operator around the key and aggregate fields.
const (
	FieldWindowStart = "window_start"
	FieldWindowEnd   = "window_end"
	// FieldRevision is 0 for a window's first result and counts up for
	// results updated by late records within the allowed lateness.
	FieldRevision = "revision"
	// FieldLateWatermark is appended to late records: the watermark that made them late.
	FieldLateWatermark = "_watermark"
)

// Config configures a window operator.
type Config struct {
	Assigner Assigner
	// AllowedLateness (ms) keeps windows after they fire; late records
	// within it update the result, later ones are late records.
	AllowedLateness int64
	// Input is the schema of incoming rows.
	Input *record.Schema
	// KeyFields name the fields that form the key; they are copied into results.
	KeyFields []string
	// Aggregates compute the result fields, bound to Input.
	Aggregates []Aggregate
}

// Output receives what the operator emits. Results rows follow
// Operator.ResultSchema, Late rows follow Operator.LateSchema.
type Output struct {
	Results *record.Batch
	Late    *record.Batch
	// Firings counts window results emitted on time; Updates counts
	// results re-emitted because of late records within allowed lateness.
	Firings, Updates, LateRecords int64
}

// Operator is the keyed window operator of one subtask. It is not safe for
// concurrent use: one goroutine owns it and its state.
type Operator struct {
	cfg      Config
	keyIdx   []int
	result   *record.Schema
	late     *record.Schema
	pane     int64
	slide    int64
	wm       int64
	keys     map[string]*keyState
	timers   map[int64][]*keyState
	times    timeHeap
	scratch  []Acc
	aggCount int
	// spareTimers recycles timer lists; nextSweep is when empty keys are
	// next swept out.
	spareTimers [][]*keyState
	nextSweep   int64
	empty       int
	// async is the snapshot in progress, nil most of the time.
	async *AsyncSnapshot
	epoch int64
	// all lists every key in keys (and, until the next sweep, some that
	// were dropped), so a snapshot can capture the key set with one copy.
	all []*keyState
}

type keyState struct {
	key   string
	kg    uint16
	vals  []record.Value
	panes []pane
	// timer is the one event time at which this key needs attention next,
	// or noTimer.
	timer int64
	// firedEnd is the end of the last sliding window fired for this key.
	firedEnd int64
	// revs counts updates of sliding windows by their end; allocated only
	// when late records update fired windows.
	revs map[int64]int32
	// spare is the accumulator slice of the last removed pane, reused by
	// the next one so a key costs no allocation per window.
	spare []Acc
	// lastEnd is the end of the newest pane; an empty key is dropped once
	// the watermark is a retention period past it.
	lastEnd int64
	// snap coordinates an asynchronous snapshot (see async.go).
	snap atomic.Int64
}

type pane struct {
	start, end int64
	accs       []Acc
	emitted    int32
	pending    bool
}

const noTimer = math.MaxInt64

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
	o := &Operator{
		cfg:      cfg,
		pane:     cfg.Assigner.pane(),
		slide:    cfg.Assigner.slide(),
		wm:       MinWatermark,
		keys:     make(map[string]*keyState),
		timers:   make(map[int64][]*keyState),
		aggCount: len(cfg.Aggregates),
	}
	fields := make([]record.Field, 0, len(cfg.KeyFields)+3+len(cfg.Aggregates))
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
	o.scratch = make([]Acc, o.aggCount)
	return o, nil
}

// ResultSchema is the schema of window results: key fields, window_start,
// window_end, revision, then one field per aggregate.
func (o *Operator) ResultSchema() *record.Schema { return o.result }

// LateSchema is the input schema plus the watermark that made a record late.
func (o *Operator) LateSchema() *record.Schema { return o.late }

// Watermark is the operator's current event time.
func (o *Operator) Watermark() int64 { return o.wm }

// Keys is the number of keys holding window state.
func (o *Operator) Keys() int { return len(o.keys) - o.empty }

// Process adds every row of in to its key's windows. in.Keys must be set
// (the keyBy exchange does it). Records behind the watermark by more than
// the allowed lateness go to out.Late; records that change an already fired
// window emit an updated result at once.
func (o *Operator) Process(in *record.Batch, out *Output) {
	for i := 0; i < in.Len(); i++ {
		o.add(in, i, out)
	}
}

func (o *Operator) add(in *record.Batch, i int, out *Output) {
	t := in.Times[i]
	key := in.Keys[i]
	ks := o.keys[key]
	if o.cfg.Assigner.Kind == Session {
		o.addSession(ks, in, i, t, out)
		return
	}
	s := floorTo(t, o.pane)
	lastEnd := floorTo(t, o.slide) + o.cfg.Assigner.Size
	if o.expired(lastEnd) {
		o.emitLate(in, i, out)
		return
	}
	if ks == nil {
		ks = o.newKey(key, in.Row(i))
		if in.KeyGroups != nil {
			ks.kg = in.KeyGroups[i]
		}
	} else if o.async != nil {
		o.async.touch(ks)
	}
	p := ks.paneAt(s)
	if p == nil {
		p = o.newPane(ks, s, s+o.pane)
	}
	row := in.Row(i)
	for j, a := range o.cfg.Aggregates {
		a.Add(&p.accs[j], row, t)
	}
	if o.cfg.Assigner.Kind == Tumbling {
		if p.end-1 <= o.wm {
			o.emitPane(ks, p, out)
		} else {
			p.pending = true
		}
	} else if ks.firedEnd != MinWatermark {
		// Re-emit every fired sliding window this slice belongs to.
		first := floorTo(s, o.slide) + o.slide
		for e := first; e <= ks.firedEnd && e <= lastEnd; e += o.slide {
			if !o.expired(e) {
				o.emitSliding(ks, e, out)
			}
		}
	}
	o.schedule(ks)
	if ks.timer <= o.wm {
		// A window of this key is already due (its first record arrived
		// behind the watermark but within lateness): fire now.
		ks.timer = noTimer
		o.onTimer(ks, out)
	}
}

func (o *Operator) addSession(ks *keyState, in *record.Batch, i int, t int64, out *Output) {
	gap := o.cfg.Assigner.Gap
	start, end := t, t+gap
	var first, last = -1, -1
	if ks != nil {
		for j := range ks.panes {
			p := &ks.panes[j]
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
	if ks == nil {
		ks = o.newKey(in.Keys[i], in.Row(i))
		if in.KeyGroups != nil {
			ks.kg = in.KeyGroups[i]
		}
	} else if o.async != nil {
		o.async.touch(ks)
	}
	var p *pane
	if first < 0 {
		p = o.newPane(ks, start, end)
	} else {
		p = &ks.panes[first]
		for j := first + 1; j <= last; j++ {
			q := &ks.panes[j]
			for k, a := range o.cfg.Aggregates {
				a.Merge(&p.accs[k], &q.accs[k])
			}
			p.emitted = max(p.emitted, q.emitted)
		}
		ks.panes = append(ks.panes[:first+1], ks.panes[last+1:]...)
		p = &ks.panes[first]
		p.start, p.end = start, end
	}
	row := in.Row(i)
	for k, a := range o.cfg.Aggregates {
		a.Add(&p.accs[k], row, t)
	}
	if p.end-1 <= o.wm {
		o.emitPane(ks, p, out)
	} else {
		p.pending = true
	}
	o.schedule(ks)
}

// expired reports whether a window ending at end is past its allowed lateness.
func (o *Operator) expired(end int64) bool {
	return o.wm != MinWatermark && end-1 <= o.wm-o.cfg.AllowedLateness
}

func (o *Operator) newPane(ks *keyState, start, end int64) *pane {
	accs := ks.spare
	ks.spare = nil
	if accs == nil {
		accs = make([]Acc, o.aggCount)
	}
	if len(ks.panes) == 0 {
		o.empty--
	}
	ks.lastEnd = max(ks.lastEnd, end)
	return ks.insert(pane{start: start, end: end, accs: accs})
}

// dropPane recycles a removed pane's accumulators.
func (ks *keyState) dropPane(p *pane) {
	if ks.spare == nil {
		clear(p.accs)
		ks.spare = p.accs
	}
}

func (o *Operator) newKey(key string, row record.Row) *keyState {
	o.empty++ // until its first pane
	ks := &keyState{key: key, timer: noTimer, firedEnd: MinWatermark, vals: make([]record.Value, len(o.keyIdx))}
	// A key born after a snapshot began is not part of it.
	ks.snap.Store(2*o.epoch + 1)
	for j, idx := range o.keyIdx {
		ks.vals[j] = row[idx].Clone()
	}
	ks.key = strings.Clone(key) // the batch's key lives in its arena
	o.keys[ks.key] = ks
	o.all = append(o.all, ks)
	return ks
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
	if o.cfg.Assigner.Kind == Sliding {
		for {
			e := o.nextSlidingEnd(ks)
			if e == noTimer || e-1 > o.wm {
				break
			}
			o.emitSliding(ks, e, out)
			ks.firedEnd = e
		}
		kept := ks.panes[:0]
		for j := range ks.panes {
			p := ks.panes[j]
			if !o.expired(floorTo(p.start, o.slide) + o.cfg.Assigner.Size) {
				kept = append(kept, p)
			} else {
				ks.dropPane(&p)
			}
		}
		clear(ks.panes[len(kept):])
		ks.panes = kept
	} else {
		kept := ks.panes[:0]
		for j := range ks.panes {
			p := &ks.panes[j]
			if p.pending && p.end-1 <= o.wm {
				o.emitPane(ks, p, out)
			}
			if !o.expired(p.end) {
				kept = append(kept, *p)
			} else {
				ks.dropPane(p)
			}
		}
		clear(ks.panes[len(kept):])
		ks.panes = kept
	}
	if len(ks.panes) == 0 {
		// Keep the key for a retention period: most keys come back in the
		// next window, and reusing their state avoids churn.
		o.empty++
		return
	}
	o.schedule(ks)
}

// retention is how long an empty key is kept after its last pane ended.
func (o *Operator) retention() int64 {
	if o.cfg.Assigner.Kind == Session {
		return o.cfg.Assigner.Gap + o.cfg.AllowedLateness
	}
	return o.cfg.Assigner.Size + o.cfg.AllowedLateness
}

// sweep drops keys without panes whose retention has passed. It runs at
// most once per retention period of event time, so its cost is amortized.
func (o *Operator) sweep() {
	if o.empty == 0 || o.wm < o.nextSweep {
		return
	}
	r := o.retention()
	kept := o.all[:0]
	for _, ks := range o.all {
		if o.keys[ks.key] != ks {
			continue // dropped earlier
		}
		if len(ks.panes) == 0 && (o.wm == MaxWatermark || ks.lastEnd+r <= o.wm) && o.async == nil {
			delete(o.keys, ks.key)
			o.empty--
			continue
		}
		kept = append(kept, ks)
	}
	clear(o.all[len(kept):])
	o.all = kept
	if o.wm >= MaxWatermark-r {
		o.nextSweep = MaxWatermark
	} else {
		o.nextSweep = o.wm + r
	}
}

// nextSlidingEnd is the end of the first unfired sliding window holding data.
func (o *Operator) nextSlidingEnd(ks *keyState) int64 {
	for _, p := range ks.panes {
		base := floorTo(p.start, o.slide)
		e := max(base+o.slide, ks.firedEnd+o.slide)
		if ks.firedEnd == MinWatermark {
			e = base + o.slide
		}
		if e <= base+o.cfg.Assigner.Size {
			return e
		}
	}
	return noTimer
}

// schedule sets the key's single timer to the next time it needs attention.
func (o *Operator) schedule(ks *keyState) {
	next := int64(noTimer)
	if o.cfg.Assigner.Kind == Sliding {
		if e := o.nextSlidingEnd(ks); e != noTimer {
			next = e - 1
		}
		if len(ks.panes) > 0 {
			next = min(next, floorTo(ks.panes[0].start, o.slide)+o.cfg.Assigner.Size-1+o.cfg.AllowedLateness)
		}
	} else {
		for _, p := range ks.panes {
			if p.pending {
				next = min(next, p.end-1)
			} else {
				next = min(next, p.end-1+o.cfg.AllowedLateness)
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

func (o *Operator) emitPane(ks *keyState, p *pane, out *Output) {
	o.emit(ks, p.start, p.end, p.emitted, p.accs, out)
	p.emitted++
	p.pending = false
}

func (o *Operator) emitSliding(ks *keyState, end int64, out *Output) {
	start := end - o.cfg.Assigner.Size
	clear(o.scratch)
	n := 0
	for j := range ks.panes {
		p := &ks.panes[j]
		if p.start < start || p.start >= end {
			continue
		}
		for k, a := range o.cfg.Aggregates {
			a.Merge(&o.scratch[k], &p.accs[k])
		}
		n++
	}
	if n == 0 {
		return
	}
	var rev int32
	if end <= ks.firedEnd {
		if ks.revs == nil {
			ks.revs = make(map[int64]int32)
		}
		ks.revs[end]++
		rev = ks.revs[end]
	}
	o.emit(ks, start, end, rev, o.scratch, out)
}

func (o *Operator) emit(ks *keyState, start, end int64, rev int32, accs []Acc, out *Output) {
	if rev == 0 {
		out.Firings++
	} else {
		out.Updates++
	}
	row := out.Results.AppendRow(end - 1)
	n := copy(row, ks.vals)
	row[n] = record.TimestampMillis(start)
	row[n+1] = record.TimestampMillis(end)
	row[n+2] = record.Int(int64(rev))
	for k, a := range o.cfg.Aggregates {
		row[n+3+k] = a.Result(&accs[k])
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
