package rules

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// ttlRule keys data points by machine: a windowed count and a latest
// value, the two kinds of state a rule key holds.
const ttlRule = `
id: %s
version: %d
select: tag == "t"
key: [equipmentId]
signals:
  beats: {agg: count, window: 1m}
  level: {value: value}
groups:
  - {name: high, state: WARNING, conditions: [level > 1000]}
`

func applyRule(t *testing.T, e *Engine, id string, version int) {
	t.Helper()
	r, err := Parse(fmt.Appendf(nil, ttlRule, id, version), FormatYAML)
	require.NoError(t, err)
	require.NoError(t, e.Apply(Update{Rule: r}))
}

// heldKeys counts every (rule, key) state and every interned key.
func heldKeys(e *Engine) (states, interned int) {
	for _, s := range e.Stats() {
		for _, n := range s.Keys {
			states += n
		}
	}
	for _, sp := range e.spaces {
		interned += len(sp.ids)
	}
	return states, interned
}

// Keys that stop sending are let go once the state TTL has passed: with
// new machines every hour of event time for four days, the engine holds
// about a day's worth of keys (the default TTL, plus the sweep's quarter),
// not every key it ever saw — neither as rule state nor in the interning
// table.
func TestStateTTLBoundsRuleKeys(t *testing.T) {
	e, err := New(testSchema, DefaultOptions())
	require.NoError(t, err)
	applyRule(t, e, "r", 1)
	const perHour, hours = 500, 96
	b := record.NewBatch(testSchema.Len(), perHour)
	for h := range hours {
		at := int64(h) * time.Hour.Milliseconds()
		b.Reset()
		for i := range perHour {
			row := b.AppendRow(at)
			row[0] = record.String(fmt.Sprintf("m-%d-%d", h, i))
			row[1] = record.String("t")
			row[2] = record.Float(float64(i))
		}
		for i := 0; i < b.Len(); i++ {
			e.Process(b.Row(i), at, nil)
		}
		e.Advance(at, nil)
	}
	states, interned := heldKeys(e)
	bound := perHour * (24 + 6 + 1)
	require.LessOrEqual(t, states, bound, "rule keys held")
	require.LessOrEqual(t, interned, bound, "interned keys held")
	require.Greater(t, states, perHour*24, "keys within the TTL are kept")
}

// Deleting a rule frees everything it held: its keys, their interned
// IDs, its key space and its timers.
func TestDeleteRuleFreesItsState(t *testing.T) {
	e, err := New(testSchema, DefaultOptions())
	require.NoError(t, err)
	applyRule(t, e, "a", 1)
	applyRule(t, e, "b", 1)
	for i := range 10_000 {
		e.Process(record.Row{record.String(fmt.Sprintf("m%d", i)), record.String("t"), record.Float(1), record.String("Ok")}, int64(i), nil)
	}
	states, interned := heldKeys(e)
	require.Equal(t, 20_000, states)
	require.Equal(t, 10_000, interned, "both rules share one key space")

	require.NoError(t, e.Apply(Update{Delete: "a"}))
	states, interned = heldKeys(e)
	require.Equal(t, 10_000, states)
	require.Equal(t, 10_000, interned, "b still holds every key")

	require.NoError(t, e.Apply(Update{Delete: "b"}))
	states, interned = heldKeys(e)
	require.Zero(t, states)
	require.Zero(t, interned)
	require.Empty(t, e.spaces, "no rule uses the key space")
	require.Less(t, len(e.timers), 4096, "timers of deleted keys are compacted away")

	// A new version of a rule takes over its keys and frees the old ones.
	applyRule(t, e, "c", 1)
	for i := range 1000 {
		e.Process(record.Row{record.String(fmt.Sprintf("m%d", i)), record.String("t"), record.Float(1), record.String("Ok")}, int64(20_000+i), nil)
	}
	applyRule(t, e, "c", 2)
	states, interned = heldKeys(e)
	require.Equal(t, 1000, states)
	require.Equal(t, 1000, interned)
	require.Len(t, e.spaces, 1)
	for _, sp := range e.spaces {
		require.Equal(t, 1, sp.rules)
	}
}

// Freed key IDs are reused, so a key space's tables stay as large as the
// keys held at once, however many come and go.
func TestKeySpaceReusesFreedIDs(t *testing.T) {
	s := &keySpace{ids: map[string]int32{}}
	for round := range 50 {
		var ids []int32
		for i := range 100 {
			id := s.intern(fmt.Sprintf("k-%d-%d", round, i))
			s.hold(id)
			ids = append(ids, id)
		}
		for _, id := range ids {
			s.release(id)
		}
	}
	require.Empty(t, s.ids)
	require.LessOrEqual(t, cap(s.refs), 128)
	id := s.intern("x")
	s.hold(id)
	s.hold(id)
	s.release(id)
	require.Equal(t, "x", s.keys[id], "held by one more rule")
	s.release(id)
	require.Empty(t, s.ids)
}

// A state TTL below a millisecond is rejected with the field's name.
func TestStateTTLValidate(t *testing.T) {
	o := DefaultOptions()
	o.StateTTL = -time.Second
	require.ErrorContains(t, o.Validate(), "stateTTL")
	o.StateTTL = 0
	require.NoError(t, o.Validate(), "0 means the default")
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// The state estimate follows the live heap within a third, and returns to
// zero once every key is gone: it never drifts.
func TestRuleStateBytesEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 50,000 keys")
	}
	rows := make([]record.Row, 0, 50_000)
	for i := range 50_000 {
		rows = append(rows, record.Row{record.String(fmt.Sprintf("machine-%06d", i)), record.String("t"), record.Float(1), record.String("Ok")})
	}
	before := liveHeap()
	e, err := New(testSchema, DefaultOptions())
	require.NoError(t, err)
	applyRule(t, e, "r", 1)
	for round := range 4 {
		for _, row := range rows {
			e.Process(row, int64(round*10), nil)
		}
	}
	live := float64(liveHeap() - before)
	est := float64(e.StateBytes())
	t.Logf("estimate %.0f bytes/key, live heap %.0f bytes/key", est/50_000, live/50_000)
	require.InDelta(t, live, est, live/3)
	runtime.KeepAlive(rows)

	applyRule(t, e, "r", 2) // carried over: the same state
	require.InDelta(t, est, float64(e.StateBytes()), est/20)
	e.Advance(10*60_000, nil) // the count windows empty
	require.Less(t, float64(e.StateBytes()), est)
	require.NoError(t, e.Apply(Update{Delete: "r"}))
	require.Zero(t, e.StateBytes())
}

// With a state budget, once the state holds it, records stop creating
// keys — they are refused and counted — while keys with state go on.
func TestRuleStateBudgetRefusesNewKeys(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxStateBytes = 256 << 10
	e, err := New(testSchema, opts)
	require.NoError(t, err)
	applyRule(t, e, "r", 1)
	row := func(i int) record.Row {
		return record.Row{record.String(fmt.Sprintf("m%d", i)), record.String("t"), record.Float(2000), record.String("Ok")}
	}
	var alerts []Alert
	emit := func(a Alert) { alerts = append(alerts, a) }
	for i := range 10_000 {
		e.Process(row(i), 1, emit)
	}
	states, _ := heldKeys(e)
	require.Positive(t, states)
	require.Less(t, states, 10_000)
	require.EqualValues(t, 10_000-states, e.RefusedRecords())
	require.Len(t, alerts, states, "a key with state fires; a refused one raises nothing")
	require.GreaterOrEqual(t, e.StateBytes(), opts.MaxStateBytes)
	refused := e.RefusedRecords()
	e.Process(row(0), 2, emit)
	require.Equal(t, refused, e.RefusedRecords(), "a key with state takes records")
	_, interned := heldKeys(e)
	require.Equal(t, states, interned, "refused keys are not interned")
}
