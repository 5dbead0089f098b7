package window

import (
	"github.com/streamd/streamd/pkg/record"
)

// Acc is the accumulator of one aggregate in one pane (a tumbling window, a
// slice of sliding windows, or a session). Its fields are interpreted by the
// aggregate that owns it; an Acc is plain data so it can be snapshotted.
type Acc struct {
	// N counts values added.
	N int64
	// F holds a running sum, min or max.
	F float64
	// V holds a value of the input's own type (min/max of strings,
	// first/last, the winning value of max_by/min_by).
	V record.Value
	// T is the event time (ms) that decided V for first/last.
	T int64
	// X holds the deciding value of max_by/min_by.
	X record.Value
	// Sketch holds distinct-count and quantile sketches.
	Sketch any
}

// Spec describes one aggregate as written in a pipeline file.
type Spec struct {
	// Fn is the function: count, sum, min, max, avg, first, last,
	// count_distinct, quantile, max_by, min_by.
	Fn string `yaml:"fn"`
	// Field is the input field (not needed for count).
	Field string `yaml:"field"`
	// By is the field that decides max_by/min_by.
	By string `yaml:"by"`
	// Q is the quantile in (0, 1) for quantile.
	Q float64 `yaml:"q"`
	// As names the output field; defaults to "<fn>_<field>".
	As string `yaml:"as"`
}

// Aggregate is an aggregate function bound to an input schema. Add, Merge
// and Result must not allocate on the common path except to create a sketch
// the first time.
type Aggregate interface {
	// Name is the output field name.
	Name() string
	// Type is the output field type.
	Type() record.Type
	// Add folds row (event time t, ms) into a.
	Add(a *Acc, row record.Row, t int64)
	// Merge folds src into dst (sliding-window slices, merged sessions).
	Merge(dst, src *Acc)
	// Result returns the aggregate's value; null when nothing was added.
	Result(a *Acc) record.Value
}
