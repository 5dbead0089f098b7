package window

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/axiomhq/hyperloglog"
	"github.com/cespare/xxhash/v2"

	"github.com/streamd/streamd/pkg/record"
)

// Aggregate function names as written in Spec.Fn.
const (
	FnCount         = "count"
	FnSum           = "sum"
	FnMin           = "min"
	FnMax           = "max"
	FnAvg           = "avg"
	FnFirst         = "first"
	FnLast          = "last"
	FnCountDistinct = "count_distinct"
	FnQuantile      = "quantile"
	FnMaxBy         = "max_by"
	FnMinBy         = "min_by"
)

// fnNames lists the functions in the order error messages present them.
var fnNames = []string{
	FnCount, FnSum, FnMin, FnMax, FnAvg, FnFirst, FnLast,
	FnCountDistinct, FnQuantile, FnMaxBy, FnMinBy,
}

const (
	// QuantileRelativeAccuracy is the relative error bound of quantile
	// results: a reported p99 of 100 ms means the true value is within 1 ms.
	QuantileRelativeAccuracy = 0.01
	// quantileMaxBins bounds a quantile sketch's memory (about 16 KiB). With
	// 1% accuracy 2048 bins span 17 orders of magnitude; beyond that the
	// lowest bins collapse, which only blurs the lowest quantiles — the ones
	// latency-style queries care least about.
	quantileMaxBins = 2048
)

// NewAggregate binds spec to the input schema in: field names are resolved to
// indexes once here so Add does no lookups. Errors name the aggregate and the
// offending parameter.
func NewAggregate(spec Spec, in *record.Schema) (Aggregate, error) {
	fn := spec.Fn
	if fn == "" {
		return nil, fmt.Errorf("aggregate: fn is required (want %s)", strings.Join(fnNames, ", "))
	}
	known := false
	for _, n := range fnNames {
		known = known || n == fn
	}
	if !known {
		return nil, fmt.Errorf("aggregate: unknown function %q (want %s)", fn, strings.Join(fnNames, ", "))
	}
	if spec.By != "" && fn != FnMaxBy && fn != FnMinBy {
		return nil, fmt.Errorf("aggregate %s: by is only used by max_by and min_by", fn)
	}
	if spec.Q != 0 && fn != FnQuantile {
		return nil, fmt.Errorf("aggregate %s: q is only used by quantile", fn)
	}

	field, ftype := -1, record.TypeNull
	if spec.Field != "" {
		i, err := lookup(fn, "field", spec.Field, in)
		if err != nil {
			return nil, err
		}
		field, ftype = i, in.Field(i).Type
	} else if fn != FnCount {
		return nil, fmt.Errorf("aggregate %s: field is required", fn)
	}

	name := spec.As
	if name == "" {
		name = defaultName(spec)
	}
	b := aggBase{name: name, typ: ftype, field: field}

	switch fn {
	case FnCount:
		b.typ = record.TypeInt
		if field < 0 {
			return &countRows{b}, nil
		}
		return &countValues{b}, nil
	case FnSum:
		if err := wantNumeric(fn, spec.Field, ftype); err != nil {
			return nil, err
		}
		if ftype == record.TypeInt {
			return &sumInt{b}, nil
		}
		return &sumFloat{b}, nil
	case FnAvg:
		if err := wantNumeric(fn, spec.Field, ftype); err != nil {
			return nil, err
		}
		b.typ = record.TypeFloat
		return &avg{b}, nil
	case FnMin, FnMax:
		if err := wantTyped(fn, spec.Field, ftype); err != nil {
			return nil, err
		}
		return &extreme{aggBase: b, sign: sign(fn == FnMax)}, nil
	case FnFirst, FnLast:
		if err := wantTyped(fn, spec.Field, ftype); err != nil {
			return nil, err
		}
		return &firstLast{aggBase: b, last: fn == FnLast}, nil
	case FnCountDistinct:
		b.typ = record.TypeInt
		return &countDistinct{b}, nil
	case FnQuantile:
		if !(spec.Q > 0 && spec.Q < 1) {
			return nil, fmt.Errorf("aggregate quantile: q must be in (0,1), got %v", spec.Q)
		}
		if err := wantNumeric(fn, spec.Field, ftype); err != nil {
			return nil, err
		}
		m, err := quantileMapping()
		if err != nil {
			return nil, fmt.Errorf("aggregate quantile: %w", err)
		}
		b.typ = record.TypeFloat
		return &quantile{aggBase: b, q: spec.Q, mapping: m}, nil
	default: // max_by, min_by
		if spec.By == "" {
			return nil, fmt.Errorf("aggregate %s: by is required", fn)
		}
		by, err := lookup(fn, "by", spec.By, in)
		if err != nil {
			return nil, err
		}
		if err := wantTyped(fn, spec.By, in.Field(by).Type); err != nil {
			return nil, err
		}
		return &extremeBy{aggBase: b, by: by, sign: sign(fn == FnMaxBy)}, nil
	}
}

func lookup(fn, param, name string, in *record.Schema) (int, error) {
	if i, ok := in.Index(name); ok {
		return i, nil
	}
	names := make([]string, in.Len())
	for i := range names {
		names[i] = in.Field(i).Name
	}
	return 0, fmt.Errorf("aggregate %s: %s %q is not in the input (fields: %s)", fn, param, name, strings.Join(names, ", "))
}

func wantNumeric(fn, field string, t record.Type) error {
	if t == record.TypeInt || t == record.TypeFloat {
		return nil
	}
	return fmt.Errorf("aggregate %s: field %q is %s, want int or float", fn, field, t)
}

// wantTyped rejects fields whose schema type is unknown, because the output
// column of min/max/first/last takes the input's type.
func wantTyped(fn, field string, t record.Type) error {
	if t == record.TypeNull || t > record.TypeTimestamp {
		return fmt.Errorf("aggregate %s: field %q has no concrete type (%s)", fn, field, t)
	}
	return nil
}

func sign(isMax bool) int {
	if isMax {
		return 1
	}
	return -1
}

// defaultName follows the common "<fn>_<field>" convention; quantiles use the
// percentile spelling people search dashboards for (p99_latency, p999_latency).
func defaultName(s Spec) string {
	switch {
	case s.Fn == FnCount && s.Field == "":
		return FnCount
	case s.Fn == FnQuantile:
		return quantilePrefix(s.Q) + "_" + s.Field
	}
	return s.Fn + "_" + s.Field
}

// quantilePrefix spells q as "p" followed by its decimal digits, padded to two:
// 0.99 → p99, 0.5 → p50, 0.999 → p999, 0.05 → p05.
func quantilePrefix(q float64) string {
	digits := strings.TrimPrefix(strconv.FormatFloat(q, 'f', -1, 64), "0.")
	if len(digits) < 2 {
		digits += "0"
	}
	return "p" + digits
}

func quantileMapping() (mapping.IndexMapping, error) {
	m, err := mapping.NewCubicallyInterpolatedMapping(QuantileRelativeAccuracy)
	if err != nil {
		return nil, fmt.Errorf("create index mapping: %w", err)
	}
	return m, nil
}

func newQuantileSketch(m mapping.IndexMapping) *ddsketch.DDSketch {
	return ddsketch.NewDDSketch(m,
		store.NewCollapsingLowestDenseStore(quantileMaxBins),
		store.NewCollapsingLowestDenseStore(quantileMaxBins))
}

// aggBase holds what every aggregate shares: output name and type and the
// resolved input field (-1 for count of rows).
type aggBase struct {
	name  string
	typ   record.Type
	field int
}

// Name returns the output field name.
func (b *aggBase) Name() string { return b.name }

// Type returns the output field type.
func (b *aggBase) Type() record.Type { return b.typ }

// assign stores v in *dst, copying a string out of the batch arena only when
// the stored value actually changes: the arena is recycled with the batch, and
// a repeated value (last of a steady status field) must not allocate.
func assign(dst *record.Value, v record.Value) {
	if v.T == record.TypeString {
		if dst.T == record.TypeString && dst.S == v.S {
			return
		}
		v = v.Clone()
	}
	*dst = v
}

// countRows counts rows, nulls included (SQL count(*)).
type countRows struct{ aggBase }

func (c *countRows) Add(a *Acc, _ record.Row, _ int64) { a.N++ }
func (c *countRows) Merge(dst, src *Acc)               { dst.N += src.N }
func (c *countRows) Result(a *Acc) record.Value        { return record.Int(a.N) }

// countValues counts non-null values of a field (SQL count(field)).
type countValues struct{ aggBase }

func (c *countValues) Add(a *Acc, row record.Row, _ int64) {
	if !row[c.field].IsNull() {
		a.N++
	}
}
func (c *countValues) Merge(dst, src *Acc)        { dst.N += src.N }
func (c *countValues) Result(a *Acc) record.Value { return record.Int(a.N) }

// sumInt keeps the running sum in V as an int so sums past 2^53 stay exact;
// overflow wraps like Go's int64.
type sumInt struct{ aggBase }

func (s *sumInt) Add(a *Acc, row record.Row, _ int64) {
	v := row[s.field]
	if v.IsNull() {
		return
	}
	a.V = record.Int(int64(a.V.N) + v.Int())
	a.N++
}

func (s *sumInt) Merge(dst, src *Acc) {
	if src.N == 0 {
		return
	}
	dst.V = record.Int(int64(dst.V.N) + int64(src.V.N))
	dst.N += src.N
}

func (s *sumInt) Result(a *Acc) record.Value {
	if a.N == 0 {
		return record.Null
	}
	return record.Int(int64(a.V.N))
}

// sumFloat keeps the running sum in F.
type sumFloat struct{ aggBase }

func (s *sumFloat) Add(a *Acc, row record.Row, _ int64) {
	v := row[s.field]
	if v.IsNull() {
		return
	}
	a.F += v.Float()
	a.N++
}

func (s *sumFloat) Merge(dst, src *Acc) {
	dst.F += src.F
	dst.N += src.N
}

func (s *sumFloat) Result(a *Acc) record.Value {
	if a.N == 0 {
		return record.Null
	}
	return record.Float(a.F)
}

// avg keeps sum in F and count in N, which merge exactly.
type avg struct{ aggBase }

func (s *avg) Add(a *Acc, row record.Row, _ int64) {
	v := row[s.field]
	if v.IsNull() {
		return
	}
	a.F += v.Float()
	a.N++
}

func (s *avg) Merge(dst, src *Acc) {
	dst.F += src.F
	dst.N += src.N
}

func (s *avg) Result(a *Acc) record.Value {
	if a.N == 0 {
		return record.Null
	}
	return record.Float(a.F / float64(a.N))
}

// isNaN reports a float NaN, which min and max skip like a null: NaN compares
// equal to everything and would otherwise stick once it is first.
func isNaN(v record.Value) bool {
	if v.T != record.TypeFloat {
		return false
	}
	f := v.Float()
	return f != f
}

// extreme is min (sign -1) or max (sign 1) over any ordered type, kept in V.
type extreme struct {
	aggBase
	sign int
}

func (e *extreme) Add(a *Acc, row record.Row, _ int64) {
	v := row[e.field]
	if v.IsNull() || isNaN(v) {
		return
	}
	if a.N == 0 || better(v, a.V, e.sign) {
		assign(&a.V, v)
	}
	a.N++
}

// better reports whether v beats cur for min (sign -1) or max (sign 1). Floats,
// the common case, skip record.Compare's type dispatch.
func better(v, cur record.Value, sign int) bool {
	if v.T == record.TypeFloat && cur.T == record.TypeFloat {
		if sign > 0 {
			return v.Float() > cur.Float()
		}
		return v.Float() < cur.Float()
	}
	return record.Compare(v, cur)*sign > 0
}

func (e *extreme) Merge(dst, src *Acc) {
	if src.N == 0 {
		return
	}
	// src.V is already owned by the state, and strings are immutable, so
	// sharing it needs no copy.
	if dst.N == 0 || better(src.V, dst.V, e.sign) {
		dst.V = src.V
	}
	dst.N += src.N
}

func (e *extreme) Result(a *Acc) record.Value {
	if a.N == 0 {
		return record.Null
	}
	return a.V
}

// firstLast keeps the value with the earliest (first) or latest (last) event
// time in V and that time in T. On equal times first keeps the earliest
// arrival and last the latest, so in-order input gives the intuitive answer.
type firstLast struct {
	aggBase
	last bool
}

func (f *firstLast) wins(t, cur int64) bool {
	if f.last {
		return t >= cur
	}
	return t < cur
}

func (f *firstLast) Add(a *Acc, row record.Row, t int64) {
	v := row[f.field]
	if v.IsNull() {
		return
	}
	if a.N == 0 || f.wins(t, a.T) {
		assign(&a.V, v)
		a.T = t
	}
	a.N++
}

// Merge treats src as having arrived after dst, which matches how slices and
// sessions are merged (older into newer order).
func (f *firstLast) Merge(dst, src *Acc) {
	if src.N == 0 {
		return
	}
	if dst.N == 0 || f.wins(src.T, dst.T) {
		dst.V, dst.T = src.V, src.T
	}
	dst.N += src.N
}

func (f *firstLast) Result(a *Acc) record.Value {
	if a.N == 0 {
		return record.Null
	}
	return a.V
}

// countDistinct estimates distinct values with a HyperLogLog sketch. The
// library's sparse representation is exact-ish at small cardinalities and
// about 1% off at large ones, in at most 16 KiB.
type countDistinct struct{ aggBase }

// hashValue hashes v's type and payload so that "1" and 1 differ. The library
// wants a uniformly distributed 64-bit hash; xxhash gives one without
// allocating.
func hashValue(v record.Value) uint64 {
	if v.T == record.TypeString {
		return xxhash.Sum64String(v.S)
	}
	n := v.N
	if v.T == record.TypeFloat && v.Float() == 0 {
		n = 0 // -0 and +0 are the same value
	}
	var buf [9]byte
	buf[0] = byte(v.T)
	for i := range 8 {
		buf[1+i] = byte(n >> (8 * i))
	}
	return xxhash.Sum64(buf[:])
}

func (c *countDistinct) Add(a *Acc, row record.Row, _ int64) {
	v := row[c.field]
	if v.IsNull() {
		return
	}
	h := hashValue(v)
	a.N++
	switch sk := a.Sketch.(type) {
	case nil:
		a.Sketch = &smallDistinct{h: append(make([]uint64, 0, 4), h)}
	case *smallDistinct:
		if sk.add(h) && len(sk.h) > smallDistinctMax {
			a.Sketch = sk.sketch(a.N >= denseAfter)
		}
	case *hyperloglog.Sketch:
		sk.InsertHash(h)
		if a.N == denseAfter {
			a.Sketch = dense(sk)
		}
	}
}

// smallDistinct holds the distinct hashes of a count_distinct that has
// seen few values: most keys of a high-cardinality keyBy (a channel, a
// URL) never see more than a handful, and a linear scan of a few hashes is
// cheaper than a sparse sketch's insertion (a lookup in its pending set,
// a merge of its list) and smaller than the sketch. Past
// smallDistinctMax distinct hashes it becomes a sketch. Its count is
// exact; a sketch's estimate of so few values is too. Snapshots store it
// as the sketch it would become.
type smallDistinct struct{ h []uint64 }

const smallDistinctMax = 64

// add adds h, reporting whether it was new.
func (s *smallDistinct) add(h uint64) bool {
	for _, x := range s.h {
		if x == h {
			return false
		}
	}
	s.h = append(s.h, h)
	return true
}

// sketch returns a sketch of the hashes, dense or sparse.
func (s *smallDistinct) sketch(dense bool) *hyperloglog.Sketch {
	sk := hyperloglog.New()
	if dense {
		sk = hyperloglog.NewNoSparse()
	}
	for _, h := range s.h {
		sk.InsertHash(h)
	}
	return sk
}

// denseAfter is the number of insertions after which a sketch is made
// dense. Sparse sketches are small (a few bytes per distinct value) but
// each insertion costs a lookup in the library's pending set and every few
// hundred new values a merge of its sparse list, which it keeps up to
// 16,384 entries; a dense insertion is one register update. A sketch that
// has taken this many values is hot, and its 16 KiB of registers cost at
// most four bytes per value it took.
const denseAfter = 1 << 12

// dense returns a dense copy of sk.
func dense(sk *hyperloglog.Sketch) *hyperloglog.Sketch {
	d := hyperloglog.NewNoSparse()
	if err := d.Merge(sk); err != nil {
		return sk // both from New: the precisions match
	}
	return d
}

func (c *countDistinct) Merge(dst, src *Acc) {
	if src.Sketch == nil {
		return
	}
	dst.N += src.N
	switch s := src.Sketch.(type) {
	case *smallDistinct:
		switch d := dst.Sketch.(type) {
		case nil:
			// A slice is merged into several windows, so dst must own its
			// copy.
			dst.Sketch = &smallDistinct{h: slices.Clone(s.h)}
		case *smallDistinct:
			for _, h := range s.h {
				d.add(h)
			}
			if len(d.h) > smallDistinctMax {
				dst.Sketch = d.sketch(dst.N >= denseAfter)
			}
		case *hyperloglog.Sketch:
			for _, h := range s.h {
				d.InsertHash(h)
			}
		}
	case *hyperloglog.Sketch:
		switch d := dst.Sketch.(type) {
		case nil:
			dst.Sketch = s.Clone()
		case *smallDistinct:
			sk := d.sketch(false)
			_ = sk.Merge(s) // same precision: cannot fail
			dst.Sketch = sk
		case *hyperloglog.Sketch:
			// Both sketches come from hyperloglog.New or from a checkpoint
			// written from one, so their precisions match and Merge cannot
			// fail.
			_ = d.Merge(s)
		}
	}
}

// Result is 0, not null, for an empty Acc, like SQL count(distinct x).
func (c *countDistinct) Result(a *Acc) record.Value {
	switch sk := a.Sketch.(type) {
	case *smallDistinct:
		return record.Int(int64(len(sk.h)))
	case *hyperloglog.Sketch:
		return record.Int(int64(sk.Estimate()))
	}
	return record.Int(0)
}

// quantile estimates the q-quantile of a numeric field with a DDSketch of
// QuantileRelativeAccuracy.
type quantile struct {
	aggBase
	q       float64
	mapping mapping.IndexMapping
}

func (qa *quantile) Add(a *Acc, row record.Row, _ int64) {
	v := row[qa.field]
	if !v.Numeric() {
		return
	}
	f := v.Float()
	if f != f {
		return
	}
	sk, _ := a.Sketch.(*ddsketch.DDSketch)
	if sk == nil {
		sk = newQuantileSketch(qa.mapping)
		a.Sketch = sk
	}
	// Add fails only for magnitudes beyond ~1e308, which have no bin.
	if sk.Add(f) == nil {
		a.N++
	}
}

func (qa *quantile) Merge(dst, src *Acc) {
	s, _ := src.Sketch.(*ddsketch.DDSketch)
	if s == nil {
		return
	}
	dst.N += src.N
	d, _ := dst.Sketch.(*ddsketch.DDSketch)
	if d == nil {
		dst.Sketch = s.Copy()
		return
	}
	// Every sketch uses the same mapping (ReadAcc rejects others), so
	// MergeWith cannot fail.
	_ = d.MergeWith(s)
}

func (qa *quantile) Result(a *Acc) record.Value {
	sk, _ := a.Sketch.(*ddsketch.DDSketch)
	if sk == nil || sk.IsEmpty() {
		return record.Null
	}
	f, err := sk.GetValueAtQuantile(qa.q)
	if err != nil {
		return record.Null
	}
	return record.Float(f)
}

// extremeBy is max_by (sign 1) or min_by (sign -1): V holds the field's value
// at the row whose by-value, kept in X, is the extreme, and T that row's
// event time. Rows where either is null are skipped; on ties the earliest
// event time wins, then the earliest arrival, so merging slices in any
// order gives the same answer.
type extremeBy struct {
	aggBase
	by   int
	sign int
}

func (e *extremeBy) beats(x record.Value, t int64, a *Acc) bool {
	if a.N == 0 {
		return true
	}
	c := record.Compare(x, a.X) * e.sign
	return c > 0 || c == 0 && t < a.T
}

func (e *extremeBy) Add(a *Acc, row record.Row, t int64) {
	v, x := row[e.field], row[e.by]
	if v.IsNull() || x.IsNull() || isNaN(x) {
		return
	}
	if e.beats(x, t, a) {
		assign(&a.X, x)
		assign(&a.V, v)
		a.T = t
	}
	a.N++
}

func (e *extremeBy) Merge(dst, src *Acc) {
	if src.N == 0 {
		return
	}
	if e.beats(src.X, src.T, dst) {
		dst.X, dst.V, dst.T = src.X, src.V, src.T
	}
	dst.N += src.N
}

func (e *extremeBy) Result(a *Acc) record.Value {
	if a.N == 0 {
		return record.Null
	}
	return a.V
}

var (
	_ Aggregate = (*countRows)(nil)
	_ Aggregate = (*countValues)(nil)
	_ Aggregate = (*sumInt)(nil)
	_ Aggregate = (*sumFloat)(nil)
	_ Aggregate = (*avg)(nil)
	_ Aggregate = (*extreme)(nil)
	_ Aggregate = (*firstLast)(nil)
	_ Aggregate = (*countDistinct)(nil)
	_ Aggregate = (*quantile)(nil)
	_ Aggregate = (*extremeBy)(nil)
)
