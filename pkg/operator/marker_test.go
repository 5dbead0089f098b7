package operator

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/source/generator"
	"github.com/streamd/streamd/pkg/window"
)

// cutRecorder checks the consistency of marker cuts: at every subtask, the
// records processed before marker n are exactly those each split had read
// before n passed it.
type cutRecorder struct {
	mu   sync.Mutex
	cuts map[int64]map[string]int64 // marker → split → next offset
	seen map[int64]map[int]int64    // marker → subtask → records processed before it
}

func (c *cutRecorder) AtSplit(m Marker, cut SplitCut) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cuts[m.ID] == nil {
		c.cuts[m.ID] = map[string]int64{}
	}
	c.cuts[m.ID][cut.Split] = cut.Next.Offset
}

func (c *cutRecorder) AtSubtask(m Marker, st *SubtaskContext) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[m.ID] == nil {
		c.seen[m.ID] = map[int]int64{}
	}
	c.seen[m.ID][st.Index] = st.Records
}

func TestMarkersAreAlignedCuts(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	gen, err := generator.New(generator.Config{Seed: 1, Splits: 3, Machines: 9, Tags: 2, Rate: 30000, StartTime: time.Unix(1_700_000_000, 0)})
	require.NoError(t, err)
	fields := []decode.Field{
		{Name: "equipmentId", Path: []string{"equipmentId"}, Type: record.TypeString},
		{Name: "value", Path: []string{"value"}, Type: record.TypeFloat},
		{Name: "seq", Path: []string{"meta", "sequenceNumber"}, Type: record.TypeInt},
	}
	job := Job{
		Name: "markers", Parallelism: 2, BatchSize: 64, TickInterval: 20 * time.Millisecond,
		Sources: []SourceSpec{{
			Name: "gen", Source: gen, Watermark: WatermarkConfig{SenderField: -1},
			NewDecoder: func() (Decoder, error) { return decode.NewJSON(decode.Config{Fields: fields}) },
		}},
		Stages: []StageSpec{{
			Name: "count", Input: "gen", KeyBy: []string{"equipmentId"},
			Assigner:     window.Assigner{Kind: window.Tumbling, Size: 1 << 40, Slide: 1 << 40},
			Aggregates:   []window.Spec{{Fn: "count"}},
			NewAggregate: window.NewAggregate,
		}},
	}
	rt, err := New(job, nil, nil)
	require.NoError(t, err)
	rec := &cutRecorder{cuts: map[int64]map[string]int64{}, seen: map[int64]map[int]int64{}}
	rt.SetMarkerHandler(rec)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	for !rt.Ready() {
		time.Sleep(5 * time.Millisecond)
	}
	var ids []int64
	for i := 0; i < 10; i++ {
		time.Sleep(30 * time.Millisecond)
		id, err := rt.Inject("probe")
		require.NoError(t, err)
		ids = append(ids, id)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, id := range ids {
		cut := rec.cuts[id]
		require.Len(t, cut, 3, "marker %d passed every split", id)
		require.Len(t, rec.seen[id], 2, "marker %d aligned at every subtask", id)
		// Records routed to each subtask before the cut, computed from
		// the generator's records and the key-group mapping.
		want := map[int]int64{}
		for split := 0; split < 3; split++ {
			next := cut[fmt.Sprintf("gen-%d", split)]
			for n := int64(0); n < next; n++ {
				kg := KeyGroup(gen.Point(split, n).EquipmentID, 128)
				want[SubtaskFor(kg, 128, 2)]++
			}
		}
		require.Equal(t, want, rec.seen[id], "marker %d: each subtask processed exactly the records read before the cut", id)
	}
}
