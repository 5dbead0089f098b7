package operator

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/window"
)

// The reference model: what a pipeline of window stages must emit for a
// scripted workload, computed by brute force from the definitions in
// docs/windows.md — every window's result recomputed from the rows it
// accepted, sessions recomputed from their records, the watermark of every
// split and stage tracked step by step. It shares no code with the window
// operator beyond the value encoding used to order changelog rows, and it
// is deliberately simple rather than fast.

// mStage describes one window stage of a workload.
type mStage struct {
	Name     string
	Input    string // "in" or an earlier stage
	Assigner window.Assigner
	Lateness int64 // ms
	Emit     window.EmitMode
	KeyBy    []string
	Aggs     []window.Spec
}

// mStep is one step of a workload's script.
type mStep struct {
	Split int            // feed: the split fed; -1 for a wall-clock step or a restart
	Recs  []scriptRecord // feed: the records, one read
	Wall  time.Duration  // wall: how far the clock moves
	End   bool           // the split ends
	// Restart stops the pipeline with a savepoint and restores it with
	// Parallelism subtasks per stage.
	Restart     bool
	Parallelism int
}

// workload is a scripted run: splits, watermark strategy, stages, steps and
// the runtime's shape (which must not change results).
type workload struct {
	Seed        int64
	Splits      []string
	OOO         int64 // max out-of-orderness, ms
	Idle        time.Duration
	Stages      []mStage
	Steps       []mStep
	Parallelism int
	KeyGroups   int
	BatchSize   int
}

// mRow is one output row: a window result or retraction of a stage.
type mRow struct {
	Stage   string
	Ident   string // key values and window bounds
	Rev     int64
	Retract bool
	Vals    []record.Value // the aggregate values
}

// mLate is one late record of a stage.
type mLate struct {
	Stage string
	T     int64
	Row   string // the input row, rendered
	WM    int64
}

type mSplit struct {
	maxT, wm int64
	lastData time.Duration
	idle     bool
	done     bool
}

// mRec is a row a stage accepted: a record or a changelog row.
type mRec struct {
	t   int64
	row []record.Value
	seq int64
	id  string // changelog identity
}

// mWin is the state of one tumbling or sliding window of a key.
type mWin struct {
	recs    []*mRec
	byID    map[string]*mRec
	next    int64
	live    bool
	last    []record.Value
	pending bool
}

// mBook is the emission state of one session of a key.
type mBook struct {
	next    int64
	live    bool
	last    []record.Value
	pending bool
}

type mKey struct {
	vals []record.Value
	wins map[[2]int64]*mWin
	recs []*mRec // sessions: the key's live records
	book map[[2]int64]*mBook
}

type mStageRT struct {
	def      mStage
	in       *record.Schema
	out      *record.Schema
	keyIdx   []int
	aggs     []window.Aggregate // for output names and types only
	clog     bool
	identIdx []int
	retract  int
	cur      int64
	idle     bool
	keys     map[string]*mKey
	seq      int64
	next     *mStageRT
}

type model struct {
	w *workload
	// restarts holds how long each restart took on the runtime's clock
	// (stopping at a savepoint takes a tick or two of the fake clock).
	restarts []time.Duration
	now      time.Duration
	splits   []mSplit
	stages   []*mStageRT
	rows     []mRow
	late     []mLate
}

func newModel(w *workload) (*model, error) {
	m := &model{w: w}
	for range w.Splits {
		m.splits = append(m.splits, mSplit{maxT: math.MinInt64, wm: math.MinInt64})
	}
	schemas := map[string]*record.Schema{"in": scriptInput}
	var prev *mStageRT
	for _, def := range w.Stages {
		in := schemas[def.Input]
		st := &mStageRT{def: def, in: in, cur: math.MinInt64, keys: map[string]*mKey{}, retract: -1}
		fields := []record.Field{}
		for _, k := range def.KeyBy {
			i, ok := in.Index(k)
			if !ok {
				return nil, fmt.Errorf("stage %s: no key field %q", def.Name, k)
			}
			st.keyIdx = append(st.keyIdx, i)
			fields = append(fields, in.Field(i))
		}
		fields = append(fields,
			record.Field{Name: window.FieldWindowStart, Type: record.TypeTimestamp},
			record.Field{Name: window.FieldWindowEnd, Type: record.TypeTimestamp},
			record.Field{Name: window.FieldRevision, Type: record.TypeInt},
			record.Field{Name: window.FieldRetract, Type: record.TypeBool})
		for _, spec := range def.Aggs {
			a, err := window.NewAggregate(spec, in)
			if err != nil {
				return nil, err
			}
			st.aggs = append(st.aggs, a)
			fields = append(fields, record.Field{Name: a.Name(), Type: a.Type()})
		}
		st.out = record.MustSchema(fields...)
		if prev != nil && def.Input == prev.def.Name {
			// Rows of an earlier stage are identified by its key and window:
			// updates replace them, and ties in order-sensitive aggregates
			// are broken by that identity.
			updates := prev.def.Emit == window.EmitUpdates && prev.def.Lateness > 0
			ordered := slices.ContainsFunc(def.Aggs, func(a window.Spec) bool {
				return a.Fn == window.FnFirst || a.Fn == window.FnLast || a.Fn == window.FnMaxBy || a.Fn == window.FnMinBy
			})
			if updates || ordered {
				st.clog = true
				st.identIdx = append(st.identIdx, prev.keyIdxOut()...)
			}
			if updates {
				st.retract = len(prev.def.KeyBy) + 3
			}
		}
		schemas[def.Name] = st.out
		if prev != nil {
			prev.next = st
		}
		m.stages = append(m.stages, st)
		prev = st
	}
	return m, nil
}

// keyIdxOut lists the identity fields of the stage's results: its key
// fields and the window bounds.
func (st *mStageRT) keyIdxOut() []int {
	var out []int
	for i := range st.def.KeyBy {
		out = append(out, i)
	}
	return append(out, len(st.def.KeyBy), len(st.def.KeyBy)+1)
}

// run plays the whole workload.
func (m *model) run() {
	for _, s := range m.w.Steps {
		switch {
		case s.Split >= 0 && s.End:
			m.splits[s.Split].done = true
			m.settle(nil)
		case s.Restart:
			// A restore changes nothing but the splits' idleness: their
			// idle timers start again.
			if len(m.restarts) > 0 {
				m.now += m.restarts[0]
				m.restarts = m.restarts[1:]
			}
			for i := range m.splits {
				m.splits[i].lastData, m.splits[i].idle = m.now, false
			}
		case s.Split >= 0:
			// Every read comes a tick after the previous step (see
			// runWorkload), so no two splits ever go idle at once.
			m.wall(scriptTick)
			for len(s.Recs) > 0 {
				n := min(len(s.Recs), m.w.BatchSize)
				m.feed(s.Split, s.Recs[:n])
				s.Recs = s.Recs[n:]
			}
		default:
			m.wall(s.Wall)
		}
	}
	for i := range m.splits {
		m.splits[i].done = true
	}
	m.settle(nil)
}

// wall moves the clock on tick by tick, as the runtime's splits look at it:
// splits without data for the idle timeout go idle, each at its own tick.
func (m *model) wall(d time.Duration) {
	for end := m.now + d; m.now < end; {
		m.now += scriptTick
		for i := range m.splits {
			sp := &m.splits[i]
			sp.idle = !sp.done && m.w.Idle > 0 && m.now-sp.lastData >= m.w.Idle
		}
		m.settle(nil)
	}
}

// feed processes one read of a split.
func (m *model) feed(split int, recs []scriptRecord) {
	sp := &m.splits[split]
	var batch []*mRec
	for _, r := range recs {
		row := []record.Value{record.String(r.Key), record.Float(r.Value), record.Null, record.Int(r.Seq)}
		if r.Sender != "" {
			row[2] = record.String(r.Sender)
		}
		batch = append(batch, &mRec{t: r.T, row: row})
		sp.maxT = max(sp.maxT, r.T)
	}
	sp.lastData, sp.idle = m.now, false
	if sp.maxT != math.MinInt64 {
		sp.wm = max(sp.wm, sp.maxT-m.w.OOO-1)
	}
	m.settle(batch)
}

// settle runs a batch of records (may be nil) through every stage at the
// watermark before it, then moves each stage's watermark on.
func (m *model) settle(batch []*mRec) {
	st := m.stages[0]
	low, active, open := int64(math.MaxInt64), 0, 0
	for _, sp := range m.splits {
		if sp.done {
			continue
		}
		open++
		if sp.idle {
			continue
		}
		active++
		low = min(low, sp.wm)
	}
	inWM, inIdle := st.cur, false
	switch {
	case open == 0:
		inWM = math.MaxInt64
	case active > 0:
		inWM = max(st.cur, low)
	default:
		inIdle = true
	}
	m.stageStep(st, batch, inWM, inIdle)
}

// stageStep runs a batch through a stage and moves its watermark on: a
// stage reading splits holds while they are all idle; a stage reading a
// stage follows it.
func (m *model) stageStep(st *mStageRT, batch []*mRec, inWM int64, inIdle bool) {
	var out []*mRec
	emit := func(r mRow, t int64, row []record.Value) {
		m.rows = append(m.rows, r)
		if st.next != nil {
			out = append(out, &mRec{t: t, row: row})
		}
	}
	for _, r := range batch {
		st.add(m, r, emit)
	}
	st.idle = inIdle
	if (!inIdle || st.def.Input != "in") && inWM > st.cur {
		st.cur = inWM
		st.advance(emit)
	}
	if st.next != nil {
		nwm := window.HoldBack(st.cur, st.def.Lateness)
		m.stageStep(st.next, out, max(st.next.cur, nwm), st.idle)
	}
}

// windowsOf lists the tumbling or sliding windows holding t, by brute force.
func windowsOf(a window.Assigner, t int64) [][2]int64 {
	slide := a.Slide
	if a.Kind == window.Tumbling {
		slide = a.Size
	}
	off := ((a.Offset % slide) + slide) % slide
	var out [][2]int64
	k0 := floorDiv(t-off-a.Size, slide) - 1
	k1 := floorDiv(t-off, slide) + 1
	for k := k0; k <= k1; k++ {
		s := off + k*slide
		if s <= t && t < s+a.Size {
			out = append(out, [2]int64{s, s + a.Size})
		}
	}
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func (st *mStageRT) expired(end int64) bool {
	return st.cur != math.MinInt64 && end-1 <= st.cur-st.def.Lateness
}

func (st *mStageRT) due(end int64) bool {
	if st.def.Emit == window.EmitFinal {
		return st.expired(end)
	}
	return end-1 <= st.cur
}

func (st *mStageRT) keyOf(row []record.Value) (string, []record.Value) {
	var sb strings.Builder
	var vals []record.Value
	for _, i := range st.keyIdx {
		sb.WriteString(row[i].GoString())
		sb.WriteByte(0)
		vals = append(vals, row[i])
	}
	return sb.String(), vals
}

func (st *mStageRT) key(row []record.Value) *mKey {
	id, vals := st.keyOf(row)
	k := st.keys[id]
	if k == nil {
		k = &mKey{vals: vals, wins: map[[2]int64]*mWin{}, book: map[[2]int64]*mBook{}}
		st.keys[id] = k
	}
	return k
}

type emitFunc func(r mRow, t int64, row []record.Value)

func (st *mStageRT) row(k *mKey, w [2]int64, rev int64, retract bool, vals []record.Value, emit emitFunc) {
	var sb strings.Builder
	for _, v := range k.vals {
		sb.WriteString(v.GoString())
		sb.WriteByte(' ')
	}
	fmt.Fprintf(&sb, "%d..%d", w[0], w[1])
	full := slices.Clone(k.vals)
	full = append(full, record.TimestampMillis(w[0]), record.TimestampMillis(w[1]), record.Int(rev), record.Bool(retract))
	full = append(full, vals...)
	emit(mRow{Stage: st.def.Name, Ident: sb.String(), Rev: rev, Retract: retract, Vals: vals}, w[1]-1, full)
}

func (st *mStageRT) lateRow(m *model, r *mRec) {
	var sb strings.Builder
	for _, v := range r.row {
		sb.WriteString(v.GoString())
		sb.WriteByte(' ')
	}
	m.late = append(m.late, mLate{Stage: st.def.Name, T: r.t, Row: sb.String(), WM: st.cur})
}

func (st *mStageRT) add(m *model, r *mRec, emit emitFunc) {
	st.seq++
	r.seq = st.seq
	if st.clog {
		var id []byte
		for _, i := range st.identIdx {
			id = record.AppendValue(id, r.row[i])
		}
		r.id = string(id)
	}
	if st.def.Assigner.Kind == window.Session {
		st.addSession(m, r, emit)
		return
	}
	var accepted [][2]int64
	for _, w := range windowsOf(st.def.Assigner, r.t) {
		if !st.expired(w[1]) {
			accepted = append(accepted, w)
		}
	}
	if len(accepted) == 0 {
		st.lateRow(m, r)
		return
	}
	retract := st.retract >= 0 && r.row[st.retract].Bool()
	if retract {
		_, ok := st.keys[func() string { id, _ := st.keyOf(r.row); return id }()]
		if !ok {
			return
		}
	}
	k := st.key(r.row)
	for _, w := range accepted {
		win := k.wins[w]
		if retract && (win == nil || win.byID[r.id] == nil) {
			continue
		}
		if win == nil {
			win = &mWin{byID: map[string]*mRec{}}
			k.wins[w] = win
		}
		fired := st.def.Emit == window.EmitUpdates && w[1]-1 <= st.cur
		if fired && win.live {
			st.row(k, w, win.next, true, win.last, emit)
			win.next++
			win.live = false
		}
		switch {
		case retract:
			delete(win.byID, r.id)
		case st.clog:
			win.byID[r.id] = r
		default:
			win.recs = append(win.recs, r)
		}
		if fired {
			st.assert(k, w, win, emit)
		} else {
			win.pending = true
		}
	}
}

func (st *mStageRT) winRecs(win *mWin) []*mRec {
	if !st.clog {
		return win.recs
	}
	recs := make([]*mRec, 0, len(win.byID))
	for _, r := range win.byID {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b *mRec) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return recs
}

func (st *mStageRT) assert(k *mKey, w [2]int64, win *mWin, emit emitFunc) {
	win.pending = false
	recs := st.winRecs(win)
	if len(recs) == 0 {
		win.live = false
		return
	}
	vals := st.values(recs)
	st.row(k, w, win.next, false, vals, emit)
	win.next++
	win.live, win.last = true, vals
}

func (st *mStageRT) advance(emit emitFunc) {
	for _, k := range st.keys {
		if st.def.Assigner.Kind == window.Session {
			st.advanceSessions(k, emit)
			continue
		}
		for w, win := range k.wins {
			if win.pending && st.due(w[1]) {
				st.assert(k, w, win, emit)
			}
			if st.expired(w[1]) {
				delete(k.wins, w)
			}
		}
	}
}

type mSession struct {
	bounds [2]int64
	recs   []*mRec
}

// sessions recomputes a key's sessions from its live records: [t, t+gap)
// per record, merged where they overlap or touch.
func (st *mStageRT) sessions(recs []*mRec) []mSession {
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b *mRec) int { return cmp.Compare(a.t, b.t) })
	var out []mSession
	gap := st.def.Assigner.Gap
	for _, r := range sorted {
		if n := len(out); n > 0 && r.t <= out[n-1].bounds[1] {
			out[n-1].bounds[1] = max(out[n-1].bounds[1], r.t+gap)
			out[n-1].recs = append(out[n-1].recs, r)
			continue
		}
		out = append(out, mSession{bounds: [2]int64{r.t, r.t + gap}, recs: []*mRec{r}})
	}
	for i := range out {
		slices.SortFunc(out[i].recs, func(a, b *mRec) int { return cmp.Compare(a.seq, b.seq) })
	}
	return out
}

func (st *mStageRT) addSession(m *model, r *mRec, emit emitFunc) {
	k := st.keys[func() string { id, _ := st.keyOf(r.row); return id }()]
	var before []mSession
	var live []*mRec
	if k != nil {
		before = st.sessions(k.recs)
		live = k.recs
	}
	after := st.sessions(append(slices.Clone(live), r))
	var merged mSession
	for _, s := range after {
		if slices.Contains(s.recs, r) {
			merged = s
		}
	}
	if st.expired(merged.bounds[1]) {
		st.lateRow(m, r)
		return
	}
	k = st.key(r.row)
	k.recs = append(k.recs, r)
	updates := st.def.Emit == window.EmitUpdates
	for _, s := range before {
		if s.bounds == merged.bounds || s.bounds[0] < merged.bounds[0] || s.bounds[1] > merged.bounds[1] {
			continue // kept its bounds, or not part of the merge
		}
		if b := k.book[s.bounds]; b != nil {
			if b.live && updates {
				st.row(k, s.bounds, b.next, true, b.last, emit)
				b.next++
			}
			delete(k.book, s.bounds)
		}
	}
	b := k.book[merged.bounds]
	if b == nil {
		b = &mBook{}
		k.book[merged.bounds] = b
	}
	if updates && merged.bounds[1]-1 <= st.cur {
		if b.live {
			st.row(k, merged.bounds, b.next, true, b.last, emit)
			b.next++
		}
		vals := st.values(merged.recs)
		st.row(k, merged.bounds, b.next, false, vals, emit)
		b.next++
		b.live, b.last, b.pending = true, vals, false
	} else {
		b.pending = true
	}
}

func (st *mStageRT) advanceSessions(k *mKey, emit emitFunc) {
	var kept []*mRec
	for _, s := range st.sessions(k.recs) {
		b := k.book[s.bounds]
		if b != nil && b.pending && st.due(s.bounds[1]) {
			vals := st.values(s.recs)
			st.row(k, s.bounds, b.next, false, vals, emit)
			b.next++
			b.live, b.last, b.pending = true, vals, false
		}
		if st.expired(s.bounds[1]) {
			delete(k.book, s.bounds)
			continue
		}
		kept = append(kept, s.recs...)
	}
	k.recs = kept
}

// values computes every aggregate of the stage over recs, given in the
// order ties are broken by (arrival, or (time, identity) for changelogs).
func (st *mStageRT) values(recs []*mRec) []record.Value {
	if st.clog {
		recs = slices.Clone(recs)
		slices.SortFunc(recs, func(a, b *mRec) int {
			if c := cmp.Compare(a.t, b.t); c != 0 {
				return c
			}
			return strings.Compare(a.id, b.id)
		})
	}
	out := make([]record.Value, len(st.def.Aggs))
	for i, spec := range st.def.Aggs {
		out[i] = modelAggregate(spec, st.in, recs)
	}
	return out
}

// modelAggregate computes one aggregate from scratch.
func modelAggregate(spec window.Spec, in *record.Schema, recs []*mRec) record.Value {
	field, by := -1, -1
	if spec.Field != "" {
		field, _ = in.Index(spec.Field)
	}
	if spec.By != "" {
		by, _ = in.Index(spec.By)
	}
	type tv struct {
		t    int64
		v, x record.Value
		pos  int
	}
	var vals []tv
	for pos, r := range recs {
		if field < 0 {
			vals = append(vals, tv{t: r.t, pos: pos})
			continue
		}
		v := r.row[field]
		if v.IsNull() {
			continue
		}
		e := tv{t: r.t, v: v, pos: pos}
		if by >= 0 {
			e.x = r.row[by]
			if e.x.IsNull() || e.x.T == record.TypeFloat && math.IsNaN(e.x.Float()) {
				continue
			}
		}
		vals = append(vals, e)
	}
	switch spec.Fn {
	case window.FnCount:
		return record.Int(int64(len(vals)))
	case window.FnSum, window.FnAvg:
		if len(vals) == 0 {
			return record.Null
		}
		if spec.Fn == window.FnSum && in.Field(field).Type == record.TypeInt {
			var s int64
			for _, e := range vals {
				s += e.v.Int()
			}
			return record.Int(s)
		}
		var s float64
		for _, e := range vals {
			s += e.v.Float()
		}
		if spec.Fn == window.FnAvg {
			return record.Float(s / float64(len(vals)))
		}
		return record.Float(s)
	case window.FnMin, window.FnMax:
		var best record.Value
		found := false
		for _, e := range vals {
			if e.v.T == record.TypeFloat && math.IsNaN(e.v.Float()) {
				continue
			}
			c := record.Compare(e.v, best)
			if !found || (spec.Fn == window.FnMax && c > 0) || (spec.Fn == window.FnMin && c < 0) {
				best, found = e.v, true
			}
		}
		return best
	case window.FnFirst, window.FnLast:
		if len(vals) == 0 {
			return record.Null
		}
		best := vals[0]
		for _, e := range vals[1:] {
			if spec.Fn == window.FnFirst && (e.t < best.t || e.t == best.t && e.pos < best.pos) ||
				spec.Fn == window.FnLast && (e.t > best.t || e.t == best.t && e.pos > best.pos) {
				best = e
			}
		}
		return best.v
	case window.FnMaxBy, window.FnMinBy:
		if len(vals) == 0 {
			return record.Null
		}
		best := vals[0]
		for _, e := range vals[1:] {
			c := record.Compare(e.x, best.x)
			if spec.Fn == window.FnMinBy {
				c = -c
			}
			if c > 0 || c == 0 && (e.t < best.t || e.t == best.t && e.pos < best.pos) {
				best = e
			}
		}
		return best.v
	case window.FnCountDistinct:
		seen := map[string]bool{}
		for _, e := range vals {
			v := e.v
			if v.T == record.TypeFloat && v.Float() == 0 {
				v = record.Float(0)
			}
			seen[v.GoString()] = true
		}
		return record.Int(int64(len(seen)))
	case window.FnQuantile:
		var fs []float64
		for _, e := range vals {
			if f := e.v.Float(); e.v.Numeric() && !math.IsNaN(f) {
				fs = append(fs, f)
			}
		}
		if len(fs) == 0 {
			return record.Null
		}
		slices.Sort(fs)
		// The exact rank; the comparison allows the sketch's relative error
		// around the neighbouring values (see approxEqual).
		rank := spec.Q * float64(len(fs)-1)
		lo, hi := fs[int(math.Floor(rank))], fs[int(math.Ceil(rank))]
		return record.String(fmt.Sprintf("quantile[%v,%v]", lo, hi))
	}
	panic("model: unknown aggregate " + spec.Fn)
}

// valueMatches compares a runtime value with the model's: exactly, except
// for sketches (count_distinct within 2% or 1, quantile within the sketch's
// relative accuracy of the neighbouring ranks).
func valueMatches(spec window.Spec, got, want record.Value) bool {
	switch spec.Fn {
	case window.FnCountDistinct:
		d := math.Abs(float64(got.Int() - want.Int()))
		return got.T == record.TypeInt && d <= math.Max(1, 0.02*float64(want.Int()))
	case window.FnQuantile:
		if want.IsNull() || got.IsNull() {
			return want.IsNull() && got.IsNull()
		}
		var lo, hi float64
		if _, err := fmt.Sscanf(want.S, "quantile[%g,%g]", &lo, &hi); err != nil {
			return false
		}
		g := got.Float()
		eps := window.QuantileRelativeAccuracy * 1.01
		return g >= lo*(1-eps)-1e-9 && g <= hi*(1+eps)+1e-9
	}
	return record.Equal(got, want)
}
