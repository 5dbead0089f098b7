package operator

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/window"
)

// Threshold alerts are evaluated on window results, never on the
// retractions that precede an update: an update raises one alert for its
// new revision.
func TestAlertsSkipRetractions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		always := func(*record.Schema) (func(record.Row) (bool, error), error) {
			return func(record.Row) (bool, error) { return true, nil }, nil
		}
		job := Job{Name: "alerts", Parallelism: 1, Stages: []StageSpec{{
			Name: "w", Input: "in", KeyBy: []string{"key"},
			Assigner:        window.Assigner{Kind: window.Tumbling, Size: 10_000, Slide: 10_000},
			AllowedLateness: 10 * time.Second,
			Aggregates:      []window.Spec{{Fn: "count"}},
			NewAggregate:    window.NewAggregate,
			Alerts:          []AlertSpec{{Name: "any", Severity: "info", NewCondition: always}},
		}}}
		s := startScripted(t, job, WatermarkConfig{SenderField: -1}, "a")
		s.feed("a", []scriptRecord{{T: 1000, Key: "m1", Seq: 1}, {T: 12_000, Key: "m1", Seq: 2}})
		s.feed("a", []scriptRecord{{T: 5000, Key: "m1", Seq: 3}})
		s.end()
		var revs []int64
		retracts := 0
		for _, c := range s.out.take() {
			switch c.stream {
			case StreamAlerts:
				revs = append(revs, c.row[7].Int())
			case "w":
				if c.row[4].Bool() {
					retracts++
				}
			}
		}
		require.Equal(t, 1, retracts, "the late record withdraws the first result")
		require.Equal(t, []int64{0, 2, 0}, revs, "alerts for [0s,10s) revisions 0 and 2 and for [10s,20s), none for the retraction")
	})
}
