package window

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// An asynchronous snapshot taken while the operator keeps processing must
// capture exactly the state at the point it began: restoring it gives the
// same results as restoring a synchronous snapshot taken at that point.
func TestAsyncSnapshotCapturesTheBarrierState(t *testing.T) {
	for _, a := range []Assigner{
		{Kind: Tumbling, Size: 1000, Slide: 1000},
		{Kind: Sliding, Size: 3000, Slide: 1000},
		{Kind: Session, Gap: 400},
	} {
		t.Run(a.Kind.String(), func(t *testing.T) {
			rngA, rngB := rand.New(rand.NewPCG(5, 6)), rand.New(rand.NewPCG(5, 6))
			syncOp, asyncOp := snapOperator(t, a, 500), snapOperator(t, a, 500)
			newOut := func(op *Operator) *Output {
				return &Output{Results: record.NewBatch(op.ResultSchema().Len(), 64), Late: record.NewBatch(op.LateSchema().Len(), 64)}
			}
			o1, o2 := newOut(syncOp), newOut(asyncOp)
			t0 := int64(0)
			for i := 0; i < 20; i++ {
				syncOp.Process(snapBatch(rngA, 200, 200, t0), o1)
				asyncOp.Process(snapBatch(rngB, 200, 200, t0), o2)
				t0 += 700
				syncOp.Advance(t0-200, o1)
				asyncOp.Advance(t0-200, o2)
			}
			want := syncOp.Snapshot()
			snap := asyncOp.BeginSnapshot()
			// Keep changing state while the background goroutine encodes.
			for i := 0; i < 10; i++ {
				asyncOp.Process(snapBatch(rngB, 200, 200, t0-300), o2)
				t0 += 700
				asyncOp.Advance(t0-200, o2)
			}
			got := snap.Finish()

			results := func(snapshot map[uint16][]byte, wm int64) []string {
				op := snapOperator(t, a, 500)
				for kg, data := range snapshot {
					require.NoError(t, op.Restore(kg, data))
				}
				op.SetWatermark(wm)
				out := newOut(op)
				op.Advance(MaxWatermark, out)
				return resultLines(out, op.ResultSchema())
			}
			wm := syncOp.Watermark()
			require.NotEmpty(t, results(want, wm))
			require.Equal(t, results(want, wm), results(got, wm))
			// A second snapshot can begin once the first has finished.
			asyncOp.BeginSnapshot().Finish()
		})
	}
}

// BenchmarkAsyncSnapshot reports the processing pause (BeginSnapshot) and
// the total time until the snapshot is complete, for 1,000,000 keys.
func BenchmarkAsyncSnapshot(b *testing.B) {
	op := bigOperator(b, 1_000_000, 0)
	var pauseNS, totalNS int64
	for b.Loop() {
		t0 := nanotime()
		s := op.BeginSnapshot()
		t1 := nanotime()
		s.Finish()
		t2 := nanotime()
		pauseNS += t1 - t0
		totalNS += t2 - t0
	}
	b.ReportMetric(float64(pauseNS)/float64(b.N)/1e6, "pause-ms")
	b.ReportMetric(float64(totalNS)/float64(b.N)/1e6, "total-ms")
}
