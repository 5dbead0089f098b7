package operatortest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint/store/local"
	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/keyed"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source/generator"
)

// countSchema is the operator's output: one row per key and second.
var countSchema = record.MustSchema(
	record.Field{Name: "key", Type: record.TypeString},
	record.Field{Name: "second", Type: record.TypeInt},
	record.Field{Name: "n", Type: record.TypeInt},
)

// perSecond counts the records of each key per second of event time and
// emits each count once the watermark passes the second's end. Its state
// is kept per key group, as the contract asks.
type perSecond struct {
	input  *record.Schema
	wm     int64
	groups map[uint16]map[string]map[int64]int64 // key group → key → second → count
}

var _ keyed.Operator = (*perSecond)(nil)

func newPerSecond(input *record.Schema, _ []int) (keyed.Operator, error) {
	return &perSecond{input: input, wm: keyed.MinWatermark, groups: map[uint16]map[string]map[int64]int64{}}, nil
}

func (o *perSecond) Process(in *record.Batch, out *keyed.Output) {
	for i := range in.Len() {
		t := in.Time(i)
		if t <= o.wm {
			out.Late.AppendRow(t)
			copy(out.Late.Row(out.Late.Len()-1), in.Row(i))
			out.LateRecords++
			continue
		}
		kg := in.KeyGroups[i]
		keys := o.groups[kg]
		if keys == nil {
			keys = map[string]map[int64]int64{}
			o.groups[kg] = keys
		}
		k := strings.Clone(in.Keys[i])
		if keys[k] == nil {
			keys[k] = map[int64]int64{}
		}
		keys[k][floorSecond(t)]++
	}
}

func floorSecond(t int64) int64 {
	if t < 0 {
		return (t - 999) / 1000
	}
	return t / 1000
}

func (o *perSecond) Advance(wm int64, out *keyed.Output) {
	if wm <= o.wm {
		return
	}
	o.wm = wm
	for _, keys := range o.groups {
		for k, secs := range keys {
			for s, n := range secs {
				if end := (s+1)*1000 - 1; end <= wm {
					row := out.Results.AppendRow(end)
					row[0], row[1], row[2] = record.String(k), record.Int(s), record.Int(n)
					out.Firings++
					delete(secs, s)
				}
			}
			if len(secs) == 0 {
				delete(keys, k)
			}
		}
	}
}

func (o *perSecond) Watermark() int64                     { return o.wm }
func (o *perSecond) SetWatermark(wm int64)                { o.wm = max(o.wm, wm) }
func (o *perSecond) ResultSchema() *record.Schema         { return countSchema }
func (o *perSecond) LateSchema() *record.Schema           { return o.input }
func (o *perSecond) StateBytes() int64                    { return int64(o.Keys()) * 64 }
func (o *perSecond) ExpiredKeys() int64                   { return 0 }
func (o *perSecond) BeginSnapshot() keyed.PendingSnapshot { return keyed.Taken(o.Snapshot()) }
func (o *perSecond) FinishRestore() error                 { return nil }

func (o *perSecond) Keys() int {
	n := 0
	for _, keys := range o.groups {
		n += len(keys)
	}
	return n
}

func (o *perSecond) Snapshot() map[uint16][]byte {
	out := map[uint16][]byte{}
	for kg, keys := range o.groups {
		if len(keys) == 0 {
			continue
		}
		data, err := json.Marshal(keys)
		if err != nil {
			panic(err) // maps of strings and integers always encode
		}
		out[kg] = data
	}
	return out
}

func (o *perSecond) Restore(kg uint16, data []byte) error {
	keys := map[string]map[int64]int64{}
	if err := json.Unmarshal(data, &keys); err != nil {
		return fmt.Errorf("restore key group %d: %w", kg, err)
	}
	o.groups[kg] = keys
	return nil
}

// rows collects what the stage emits.
type rows struct {
	mu  sync.Mutex
	got map[string]int64 // "key/second" → count
	dup []string
}

func (s *rows) NewWriter(string, *record.Schema) (sink.Writer, error) { return s, nil }
func (s *rows) Close(context.Context) error                           { return nil }

func (s *rows) Write(_ context.Context, b *record.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range b.Len() {
		r := b.Row(i)
		id := fmt.Sprintf("%s/%d", r[0].Str(), r[1].Int())
		if _, ok := s.got[id]; ok {
			s.dup = append(s.dup, id)
		}
		s.got[id] = r[2].Int()
	}
	return nil
}

// plainCounts counts the generator's records per equipment and second:
// the reference the operator's output is compared with.
func plainCounts(t *testing.T, gcfg generator.Config) map[string]int64 {
	t.Helper()
	ref, err := generator.New(gcfg)
	require.NoError(t, err)
	want := map[string]int64{}
	for sp := range gcfg.Splits {
		for n := range gcfg.Count {
			p := ref.Point(sp, n)
			want[fmt.Sprintf("%s/%d", p.EquipmentID, floorSecond(p.Timestamp))]++
		}
	}
	return want
}

// countJob reads a new generator of gcfg into a stage keyed by equipment
// whose operator newOp makes, and its results into out.
func countJob(t *testing.T, gcfg generator.Config, parallelism int, newOp func(*record.Schema, []int) (keyed.Operator, error), out *rows) *operator.Runtime {
	t.Helper()
	gen, err := generator.New(gcfg)
	require.NoError(t, err)
	fields := []decode.Field{
		{Name: "equipmentId", Path: []string{"equipmentId"}, Type: record.TypeString},
		{Name: "ts", Path: []string{"timestamp"}, Type: record.TypeTimestamp, TimeFormat: decode.TimeEpochMS},
	}
	rt, err := operator.New(operator.Job{
		Name: "custom", Parallelism: parallelism,
		Sources: []operator.SourceSpec{{
			Name: "gen", Source: gen, Watermark: operator.WatermarkConfig{SenderField: -1},
			NewDecoder: func() (operator.Decoder, error) {
				return decode.NewJSON(decode.Config{Fields: fields, EventTimeField: "ts"})
			},
		}},
		Stages: []operator.StageSpec{{Name: "per-second", Input: "gen", KeyBy: []string{"equipmentId"}, NewOperator: newOp}},
		Sinks:  []operator.SinkSpec{{Name: "counts", Input: "per-second", Sink: out}},
	}, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	return rt
}

// requireCounts checks that out holds every count of want once.
func requireCounts(t *testing.T, want map[string]int64, out *rows) {
	t.Helper()
	out.mu.Lock()
	defer out.mu.Unlock()
	require.Empty(t, out.dup, "no count is emitted twice")
	require.Equal(t, len(want), len(out.got))
	for _, id := range slices.Sorted(maps.Keys(want)) {
		require.Equal(t, want[id], out.got[id], id)
	}
}

// The runtime runs an operator it knows nothing of, made by the stage's
// NewOperator at every subtask: keyed by equipment, it counts every
// record once per second of event time, as a plain count over the
// generator's records says, at several parallelisms.
func TestRuntimeRunsAnOperatorOfItsOwnPackage(t *testing.T) {
	gcfg := generator.Config{Seed: 7, Splits: 3, Machines: 12, Tags: 2, Count: 4000, Step: time.Millisecond, StartTime: time.Unix(1_700_000_000, 0)}
	want := plainCounts(t, gcfg)
	for _, parallelism := range []int{1, 3, 5} {
		t.Run(fmt.Sprint("parallelism=", parallelism), func(t *testing.T) {
			var made atomic.Int32
			out := &rows{got: map[string]int64{}}
			rt := countJob(t, gcfg, parallelism, func(in *record.Schema, kgs []int) (keyed.Operator, error) {
				made.Add(1)
				return newPerSecond(in, kgs)
			}, out)
			require.NoError(t, rt.Run(context.Background()))
			require.Equal(t, int32(parallelism+1), made.Load(), "one operator per subtask, and one for the schemas")
			requireCounts(t, want, out)
		})
	}
}

// Stopped with a savepoint at parallelism 2 and restored at 3, the
// operator's key groups move between subtasks through its own snapshots:
// the two runs together emit every count once, equal to the plain count.
func TestOperatorOfItsOwnPackageRescales(t *testing.T) {
	gcfg := generator.Config{Seed: 11, Splits: 3, Machines: 12, Tags: 2, Count: 6000, Step: time.Millisecond,
		Rate: 15000, StartTime: time.Unix(1_700_000_000, 0)}
	want := plainCounts(t, gcfg)
	st, err := local.New(t.TempDir())
	require.NoError(t, err)
	out := &rows{got: map[string]int64{}}
	run := func(parallelism int, stopAfter time.Duration) {
		rt := countJob(t, gcfg, parallelism, newPerSecond, out)
		_, err := operator.NewCoordinator(rt, operator.CheckpointConfig{Store: st, Interval: time.Hour, Timeout: time.Minute, SavepointOnStop: true}, nil, prometheus.NewRegistry())
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if stopAfter > 0 {
			time.AfterFunc(stopAfter, cancel)
		}
		require.NoError(t, rt.Run(ctx))
	}
	run(2, 400*time.Millisecond)
	out.mu.Lock()
	first := len(out.got)
	out.mu.Unlock()
	require.Less(t, first, len(want), "the first run stopped before the end of the input")
	run(3, 0)
	requireCounts(t, want, out)
}
