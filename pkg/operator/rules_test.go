package operator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/rules"
)

// The rescaling scenario: eight machines report every 10s from 0s to 110s
// (event time); two rules keep state per machine that outlives any one
// run. "hot" turns a machine HOT once its value has been above 5 for 25s
// and back to OK with the first value at or below 5; "busy" turns it BUSY
// at its sixth reading (a count over an hour). A run stops at 40s and at
// 80s: each machine's count, and the 25s timers started before a stop,
// must come across.
const (
	hotRule = `{"id":"hot","version":1,"key":["key"],"signals":{"v":{"value":"value"}},` +
		`"states":["OK","HOT"],"groups":[{"name":"hot","state":"HOT","conditions":["v > 5"],"for":"25s"}]}`
	busyRule = `{"id":"busy","version":1,"key":["key"],"signals":{"n":{"value":"value","agg":"count","window":"1h"}},` +
		`"states":["OK","BUSY"],"groups":[{"name":"busy","state":"BUSY","conditions":["n >= 6"]}]}`
)

// hotSpans is when each machine's value is above 5: [from, to) in seconds,
// to -1 for "until the end".
var hotSpans = map[string][2]int64{
	"k0": {10, 60}, "k1": {30, 100}, "k2": {70, -1}, "k3": {30, 50},
	"k4": {0, -1}, "k5": {0, 0}, "k6": {60, 80}, "k7": {40, 70},
}

// rescaleAlerts is what the two rules emit for that input, worked out by
// hand from their definitions: rule key old->new @event time.
var rescaleAlerts = []string{
	// hot: above 5 for 25s from the first reading above 5.
	"hot k4 OK->HOT @25000", "hot k0 OK->HOT @35000", "hot k1 OK->HOT @55000", "hot k0 HOT->OK @60000",
	"hot k7 OK->HOT @65000", "hot k7 HOT->OK @70000", "hot k2 OK->HOT @95000", "hot k1 HOT->OK @100000",
	// busy: every machine's sixth reading is at 50s. k3 and k6 are hot
	// for less than 25s and never turn HOT; k5 is never hot.
	"busy k0 OK->BUSY @50000", "busy k1 OK->BUSY @50000", "busy k2 OK->BUSY @50000", "busy k3 OK->BUSY @50000",
	"busy k4 OK->BUSY @50000", "busy k5 OK->BUSY @50000", "busy k6 OK->BUSY @50000", "busy k7 OK->BUSY @50000",
	// At the end of the input event time ends: the count falls to 5 when
	// the reading at 60s leaves the hour, at 3660s.
	"busy k0 BUSY->OK @3660000", "busy k1 BUSY->OK @3660000", "busy k2 BUSY->OK @3660000", "busy k3 BUSY->OK @3660000",
	"busy k4 BUSY->OK @3660000", "busy k5 BUSY->OK @3660000", "busy k6 BUSY->OK @3660000", "busy k7 BUSY->OK @3660000",
}

// readings returns the batch of all machines' readings at second sec.
func readings(sec int64) []scriptRecord {
	var out []scriptRecord
	for i := range 8 {
		key := fmt.Sprintf("k%d", i)
		span := hotSpans[key]
		v := 1.0
		if sec >= span[0] && (span[1] < 0 || sec < span[1]) {
			v = 10
		}
		out = append(out, scriptRecord{T: sec * 1000, Key: key, Value: v, Seq: sec*10 + int64(i)})
	}
	return out
}

func rescaleJob(st store.Store, parallelism, keyGroups int) Job {
	var initial []*rules.Rule
	for _, doc := range []string{hotRule, busyRule} {
		r, err := rules.Parse([]byte(doc), rules.FormatJSON)
		if err != nil {
			panic(err)
		}
		initial = append(initial, r)
	}
	return Job{
		Name: "rescale", Parallelism: parallelism, KeyGroups: keyGroups,
		Stages:     []StageSpec{{Name: "r", Input: "in", KeyBy: []string{"key"}, Rules: &RulesSpec{Options: rules.DefaultOptions(), Initial: initial}}},
		Checkpoint: &CheckpointConfig{Store: st, SavepointOnStop: true},
	}
}

// alertRows returns the rule stage's rows, each as all its fields, sorted.
func alertRows(out []collected) []string {
	var rows []string
	for _, c := range out {
		if c.stream != "r" {
			continue
		}
		fs := make([]string, len(c.row))
		for i, v := range c.row {
			fs[i] = string(v.AppendText(nil))
		}
		rows = append(rows, strings.Join(fs, " | "))
	}
	slices.Sort(rows)
	return rows
}

// transitions returns the rule stage's rows as "rule key old->new @time".
func transitions(out []collected) []string {
	var rows []string
	for _, c := range out {
		if c.stream != "r" {
			continue
		}
		r := c.row
		rows = append(rows, fmt.Sprintf("%s %s %s->%s @%d", r[1].S, r[3].S, r[4].S, r[5].S, r[8].Time().UnixMilli()))
	}
	return rows
}

// requireRunning fails the test if the runtime has stopped, with its error
// (a restore it refused).
func requireRunning(t *testing.T, s *scripted) {
	t.Helper()
	select {
	case err := <-s.done:
		t.Fatalf("the runtime stopped: %v", err)
	default:
	}
}

// feedSeconds feeds the readings of seconds [from, to) in steps of 10s.
func feedSeconds(s *scripted, from, to int64) {
	for sec := from; sec < to; sec += 10 {
		s.feed("a", readings(sec))
	}
}

// A rule stage checkpointed at parallelism 2 restores at 5, is checkpointed
// again and restores at 1: rule state is kept per key group, so the key
// groups move between subtasks with their keys' state and the rule set.
// The alerts are those of a run that never stopped, and those worked out
// by hand. With 4 key groups, one of the 5 subtasks owns none.
func TestRuleStageRescales(t *testing.T) {
	for _, keyGroups := range []int{10, 4} {
		t.Run(fmt.Sprintf("keyGroups=%d", keyGroups), func(t *testing.T) {
			// The machines are spread over the subtasks at both
			// parallelisms, so their state moves.
			for p, atLeast := range map[int]int{2: 2, 5: 3} {
				subtasks := map[int]bool{}
				for key := range hotSpans {
					subtasks[SubtaskFor(KeyGroup(key, keyGroups), keyGroups, p)] = true
				}
				require.GreaterOrEqual(t, len(subtasks), atLeast, "subtasks holding machines at parallelism %d", p)
			}
			synctest.Test(t, func(t *testing.T) {
				wm := WatermarkConfig{SenderField: -1}
				// Reference: one run at parallelism 2, never stopped.
				refStore, err := local.New(t.TempDir())
				require.NoError(t, err)
				ref := startScripted(t, rescaleJob(refStore, 2, keyGroups), wm, "a")
				feedSeconds(ref, 0, 120)
				ref.end()
				want := ref.out.take()
				got := transitions(want)
				slices.Sort(got)
				expected := slices.Clone(rescaleAlerts)
				slices.Sort(expected)
				require.Equal(t, expected, got, "the reference run emits the alerts worked out by hand")

				st, err := local.New(t.TempDir())
				require.NoError(t, err)
				s := startScripted(t, rescaleJob(st, 2, keyGroups), wm, "a")
				feedSeconds(s, 0, 40)
				s.restart(rescaleJob(st, 5, keyGroups))
				requireRunning(t, s)
				require.Len(t, s.rt.stages[0].inputs, 5)
				feedSeconds(s, 40, 80)
				s.restart(rescaleJob(st, 1, keyGroups))
				requireRunning(t, s)
				require.Len(t, s.rt.stages[0].inputs, 1)
				// The savepoint taken at parallelism 5 holds every key
				// group, each with the rule set, whichever subtask it was on.
				m, err := checkpoint.Latest(context.Background(), st, "pipelines/rescale")
				require.NoError(t, err)
				// Each key is filed under the key group its records are
				// routed by.
				var kgs []int
				stateKeys := 0
				for _, stage := range m.Stages {
					require.Equal(t, "r", stage.Stage)
					require.Len(t, stage.Blobs, 5)
					for _, b := range stage.Blobs {
						rd, err := st.Get(context.Background(), b.Key)
						require.NoError(t, err)
						data, err := io.ReadAll(rd)
						require.NoError(t, err)
						require.NoError(t, rd.Close())
						for _, g := range b.Groups {
							kgs = append(kgs, int(g.KeyGroup))
							var doc struct {
								Rules []json.RawMessage
								Keys  []struct{ Key string }
							}
							require.NoError(t, json.Unmarshal(data[g.Offset:g.Offset+g.Length], &doc))
							require.Len(t, doc.Rules, 2, "key group %d carries the rule set", g.KeyGroup)
							for _, k := range doc.Keys {
								require.Equal(t, KeyGroup(k.Key, keyGroups), int(g.KeyGroup), "key %s", k.Key)
								stateKeys++
							}
						}
					}
				}
				slices.Sort(kgs)
				require.Len(t, kgs, keyGroups)
				require.Len(t, slices.Compact(kgs), keyGroups, "every key group once")
				require.Equal(t, 16, stateKeys, "two rules' state for each of the eight machines")
				feedSeconds(s, 80, 120)
				s.end()
				require.Equal(t, alertRows(want), alertRows(s.out.take()))
			})
		})
	}
}

// A rule stage may run more subtasks than there are key groups, with
// checkpoints: the subtasks that own none hold no state.
func TestRuleStageMoreSubtasksThanKeyGroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := local.New(t.TempDir())
		require.NoError(t, err)
		wm := WatermarkConfig{SenderField: -1}
		s := startScripted(t, rescaleJob(st, 4, 2), wm, "a")
		requireRunning(t, s)
		feedSeconds(s, 0, 60)
		s.restart(rescaleJob(st, 3, 2))
		requireRunning(t, s)
		feedSeconds(s, 60, 120)
		s.end()
		got := transitions(s.out.take())
		slices.Sort(got)
		expected := slices.Clone(rescaleAlerts)
		slices.Sort(expected)
		require.Equal(t, expected, got)
	})
}

// A checkpoint written before rule state was kept per key group — one
// whole engine per subtask — still restores, at the parallelism it was
// written with and at others: its state is split into key groups first.
// testdata/rules-per-subtask is the savepoint streamd took (before this
// change) after the first 40s of the rescaling scenario at parallelism 2
// with 10 key groups. The alerts after restoring it, with those its run
// emitted before the savepoint, are those of a run that never stopped.
func TestRuleStageRestoresPerSubtaskCheckpoint(t *testing.T) {
	for _, p := range []int{2, 3, 1} {
		t.Run(fmt.Sprintf("parallelism=%d", p), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				wm := WatermarkConfig{SenderField: -1}
				refStore, err := local.New(t.TempDir())
				require.NoError(t, err)
				ref := startScripted(t, rescaleJob(refStore, 2, 10), wm, "a")
				feedSeconds(ref, 0, 120)
				ref.end()
				want := alertRows(ref.out.take())

				// What the run that wrote the savepoint emitted before it.
				firstStore, err := local.New(t.TempDir())
				require.NoError(t, err)
				first := startScripted(t, rescaleJob(firstStore, 2, 10), wm, "a")
				feedSeconds(first, 0, 40)
				first.stop()
				require.NoError(t, <-first.done)
				synctest.Wait()
				got := first.out.take()

				dir := t.TempDir()
				require.NoError(t, os.CopyFS(dir, os.DirFS("testdata/rules-per-subtask")))
				st, err := local.New(dir)
				require.NoError(t, err)
				s := startScripted(t, rescaleJob(st, p, 10), wm, "a")
				requireRunning(t, s)
				require.EqualValues(t, 1, s.rt.coordinator.LastCompleted(), "restored the savepoint")
				feedSeconds(s, 40, 120)
				s.end()
				got = append(got, s.out.take()...)
				require.Equal(t, want, alertRows(got))
			})
		})
	}
}
