package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// kgOf4 spreads equipment over 4 key groups by the equipmentId field, as
// the runtime's exchange does by the stage's keyBy.
func kgOf4(row record.Row) int {
	h := fnv.New32a()
	h.Write([]byte(row[0].S))
	return int(h.Sum32() % 4)
}

var machines = []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7"}

// feedMachines drives every machine in [from, to): hot water everywhere,
// pressure high on all but m5 and m7, so the rule's 5m condition holds for
// the others.
func feedMachines(e *Engine, keep func(string) bool, from, to int64, emit func(Alert)) {
	for ts := from; ts < to; ts += 10_000 {
		for _, m := range machines {
			if !keep(m) {
				continue
			}
			p := 3.5
			if m == "m5" || m == "m7" {
				p = 1
			}
			e.Process(record.Row{record.String(m), record.String("water_temperature"), record.Float(85), record.String("Ok")}, ts, emit)
			e.Process(record.Row{record.String(m), record.String("pressure"), record.Float(p), record.String("Ok")}, ts, emit)
		}
	}
	e.Advance(to, emit)
}

func newKGEngine(t *testing.T) *Engine {
	t.Helper()
	opts := DefaultOptions()
	opts.KeyGroup = kgOf4
	e, err := New(testSchema, opts)
	require.NoError(t, err)
	return e
}

func all(string) bool { return true }

func alertIDs(as []Alert) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = fmt.Sprintf("%s %s %s->%s @%d", a.Key, a.ID, a.OldState, a.NewState, a.EventTime)
	}
	slices.Sort(out)
	return out
}

// An engine snapshotted per key group restores onto engines that own other
// sets of key groups — state of the keys of several groups merged, the
// rule set taken once — and the alerts after the restore are those of an
// engine that never stopped. The rule's 5m condition started before the
// snapshot, so each key's pending state must come across.
func TestRestoreKeyGroupsRescales(t *testing.T) {
	r, err := Parse([]byte(validYAML), FormatYAML)
	require.NoError(t, err)

	// Reference: one engine straight through.
	var want []Alert
	ref := newKGEngine(t)
	require.NoError(t, ref.Apply(Update{Rule: r}))
	feedMachines(ref, all, 0, 200_000, func(a Alert) { want = append(want, a) })
	feedMachines(ref, all, 200_000, 600_000, func(a Alert) { want = append(want, a) })
	require.Len(t, want, 5, "the five machines with high pressure turn WARNING once")

	first := newKGEngine(t)
	require.NoError(t, first.Apply(Update{Rule: r}))
	var got []Alert
	feedMachines(first, all, 0, 200_000, func(a Alert) { got = append(got, a) })
	require.Empty(t, got, "nothing fires before 5m")
	blobs, err := first.SnapshotKeyGroups([]int{0, 1, 2, 3, 9})
	require.NoError(t, err)
	require.Len(t, blobs, 5, "every group listed has a snapshot, key group 9 an empty one")
	for kg, data := range blobs {
		g, ok, err := SnapshotKeyGroupOf(bytes.NewReader(data))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, kg, g)
		list, _, err := SnapshotRules(bytes.NewReader(data))
		require.NoError(t, err)
		require.Len(t, list, 1, "key group %d carries the rule set", kg)
	}
	byGroup := map[int][]string{}
	for _, m := range machines {
		kg := kgOf4(record.Row{record.String(m)})
		byGroup[kg] = append(byGroup[kg], m)
	}
	require.GreaterOrEqual(t, len(byGroup), 3, "the machines spread over the key groups")

	// Two engines take two groups each (one of them also the empty group).
	owners := [][]int{{0, 1, 9}, {2, 3}}
	for _, owned := range owners {
		e := newKGEngine(t)
		var snaps [][]byte
		for _, kg := range owned {
			snaps = append(snaps, blobs[kg])
		}
		require.NoError(t, e.RestoreKeyGroups(snaps))
		require.Len(t, e.Rules(), 1)
		require.Equal(t, first.Watermark(), e.Watermark())
		mine := func(m string) bool { return slices.Contains(owned, kgOf4(record.Row{record.String(m)})) }
		feedMachines(e, mine, 200_000, 600_000, func(a Alert) { got = append(got, a) })
	}
	require.Equal(t, alertIDs(want), alertIDs(got))

	// An engine that owns only the empty group still gets the rules.
	empty := newKGEngine(t)
	require.NoError(t, empty.RestoreKeyGroups([][]byte{blobs[9]}))
	require.Len(t, empty.Rules(), 1)
	require.Zero(t, empty.KeyCount())

	// All groups back into one engine: the state is the one snapshotted.
	merged := newKGEngine(t)
	require.NoError(t, merged.RestoreKeyGroups([][]byte{blobs[3], blobs[0], blobs[9], blobs[2], blobs[1]}))
	var whole, again bytes.Buffer
	require.NoError(t, first.Snapshot(&whole))
	require.NoError(t, merged.Snapshot(&again))
	require.JSONEq(t, whole.String(), again.String())
}

// Snapshots that cannot come from one checkpoint are refused with the
// reason, and the engine is left as it was.
func TestRestoreKeyGroupsRefusesMismatches(t *testing.T) {
	r, err := Parse([]byte(validYAML), FormatYAML)
	require.NoError(t, err)
	snap := func(rule *Rule, kgs []int, quarantine bool) map[int][]byte {
		e := newKGEngine(t)
		require.NoError(t, e.Apply(Update{Rule: rule}))
		if quarantine {
			e.rules[rule.ID].quarantined, e.rules[rule.ID].reason = true, "too many errors"
		}
		feedMachines(e, all, 0, 100_000, func(Alert) {})
		blobs, err := e.SnapshotKeyGroups(kgs)
		require.NoError(t, err)
		return blobs
	}
	a := snap(r, []int{0, 1, 2, 3}, false)
	next := *r
	next.Version++
	b := snap(&next, []int{0, 1, 2, 3}, false)

	for _, tc := range []struct {
		name  string
		snaps [][]byte
		want  string
	}{
		{"rule versions differ", [][]byte{a[0], b[1]}, `disagree on the rule set: rule "filler-overheat" is version 3 in key group 0 and version 4 in key group 1`},
		{"one group twice", [][]byte{a[0], a[1], b[0]}, "snapshots 1 and 3 are both of key group 0"},
		{"bad format", [][]byte{a[0], []byte(`{"format":7,"rules":[],"keys":[]}`)}, "snapshot 2 of 2: unsupported snapshot format 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newKGEngine(t)
			err := e.RestoreKeyGroups(tc.snaps)
			require.ErrorContains(t, err, tc.want)
			require.Empty(t, e.Rules(), "nothing restored")
			require.Zero(t, e.KeyCount())
		})
	}

	// The same key in two snapshots: state that two subtasks both held.
	var whole bytes.Buffer
	e := newKGEngine(t)
	require.NoError(t, e.Apply(Update{Rule: r}))
	feedMachines(e, all, 0, 100_000, func(Alert) {})
	require.NoError(t, e.Snapshot(&whole))
	err = newKGEngine(t).RestoreKeyGroups([][]byte{whole.Bytes(), a[kgOf4(record.Row{record.String("m1")})]})
	require.ErrorContains(t, err, `key "m1" of rule "filler-overheat" is in snapshot 1 of 2 and in key group`)

	// A rule quarantined on one subtask stays quarantined.
	q := snap(r, []int{0, 1, 2, 3}, true)
	e = newKGEngine(t)
	require.NoError(t, e.RestoreKeyGroups([][]byte{a[0], q[1], a[2]}))
	st := e.Stats()
	require.Len(t, st, 1)
	require.True(t, st[0].Quarantined)
	require.Equal(t, "too many errors", st[0].QuarantineReason)
}

// A snapshot written before key groups (format 1, a whole engine's) still
// restores: each key's group follows from its values, so the engine can
// then be snapshotted per key group. Snapshotting groups that leave a key
// out is an error, not a silent loss of its state.
func TestRestoreFormat1AssignsKeyGroups(t *testing.T) {
	r, err := Parse([]byte(validYAML), FormatYAML)
	require.NoError(t, err)
	old, err := New(testSchema, DefaultOptions()) // no key groups, as before
	require.NoError(t, err)
	require.NoError(t, old.Apply(Update{Rule: r}))
	feedMachines(old, all, 0, 200_000, func(Alert) {})
	var buf bytes.Buffer
	require.NoError(t, old.Snapshot(&buf))
	v1 := strings.Replace(buf.String(), `{"format":2,`, `{"format":1,`, 1)
	require.NotEqual(t, buf.String(), v1)
	_, ok, err := SnapshotKeyGroupOf(strings.NewReader(v1))
	require.NoError(t, err)
	require.False(t, ok, "a format 1 snapshot is a whole engine's")

	e := newKGEngine(t)
	require.NoError(t, e.Restore(strings.NewReader(v1)))
	require.Equal(t, old.KeyCount(), e.KeyCount())
	blobs, err := e.SnapshotKeyGroups([]int{0, 1, 2, 3})
	require.NoError(t, err)
	for kg, data := range blobs {
		var doc snapshotDoc
		require.NoError(t, json.Unmarshal(data, &doc))
		for _, k := range doc.Keys {
			require.Equal(t, kg, kgOf4(record.Row{record.String(k.Key)}), "key %s", k.Key)
		}
	}
	_, err = e.SnapshotKeyGroups([]int{0})
	require.ErrorContains(t, err, "which is not among the 1 key groups snapshotted")
}
