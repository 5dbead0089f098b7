package operator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/rules"
	"github.com/streamd/streamd/pkg/source"
	"github.com/streamd/streamd/pkg/window"
)

// A stage with a state budget takes keys until each subtask's state holds
// its share; records of further new keys go to the dead letters with
// reason state_limit — counted, with their row — and the status and
// metrics say the stage is limited. Nothing is lost: every record is in a
// window result or a dead letter. The same holds for a rule stage.
func TestStateBudgetDeadLettersNewKeys(t *testing.T) {
	for _, kind := range []string{"window", "rules"} {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 600
				src := newScriptSource("a")
				out := &collector{}
				reg := prometheus.NewRegistry()
				stage := StageSpec{Name: "w", Input: "in", KeyBy: []string{"key"}, StateBudget: 2 * 24 << 10}
				if kind == "window" {
					stage.Assigner = window.Assigner{Kind: window.Tumbling, Size: 10_000, Slide: 10_000}
					stage.Aggregates, stage.NewAggregate = []window.Spec{{Fn: "count"}}, window.NewAggregate
				} else {
					r, err := rules.Parse([]byte(`{"id":"r","version":1,"key":["key"],"signals":{"v":{"value":"value"}},`+
						`"states":["OK","HIGH"],"groups":[{"name":"high","state":"HIGH","conditions":["v > 0"]}]}`), rules.FormatJSON)
					require.NoError(t, err)
					stage.Rules = &RulesSpec{Options: rules.DefaultOptions(), Initial: []*rules.Rule{r}}
				}
				rt, err := New(Job{Name: "budget", Parallelism: 2, KeyGroups: 8, TickInterval: scriptTick,
					Sources: []SourceSpec{{Name: "in", Source: src, Watermark: WatermarkConfig{SenderField: -1},
						NewDecoder: func() (Decoder, error) { return scriptDecoder{}, nil }}},
					Stages: []StageSpec{stage},
					Sinks: []SinkSpec{
						{Name: "w", Input: "w", Sink: collectSink{c: out, stream: "w"}},
						{Name: "dl", Input: StreamDeadLetters, Sink: collectSink{c: out, stream: StreamDeadLetters}},
					},
				}, nil, reg)
				require.NoError(t, err)
				done := make(chan error, 1)
				go func() { done <- rt.Run(context.Background()) }()
				synctest.Wait()
				msgs := make([]source.Message, n)
				for i := range msgs {
					msgs[i] = scriptRecord{T: int64(i), Key: fmt.Sprintf("key-%04d", i), Value: 1, Seq: int64(i)}.message()
				}
				for i := 0; i < n; i += 50 {
					src.feeds["a"] <- msgs[i : i+50]
				}
				time.Sleep(3 * scriptTick) // the subtasks publish their state on ticks
				synctest.Wait()
				st := rt.Status()
				require.Len(t, st.Subtasks, 2)
				for _, sub := range st.Subtasks {
					require.True(t, sub.StateLimited, "subtask %d is limited", sub.Index)
					require.GreaterOrEqual(t, sub.StateBytes, int64(24<<10))
				}
				require.EqualValues(t, 1, testutil.ToFloat64(rt.m.stateLimited.WithLabelValues("w", "0")))
				close(src.ends["a"])
				require.NoError(t, <-done)

				accepted := map[string]bool{}
				dead := 0
				for _, c := range out.take() {
					switch c.stream {
					case "w":
						if kind == "window" {
							require.EqualValues(t, 1, c.row[5].Int(), "count of %s", c.row[0].S)
							accepted[c.row[0].S] = true
						} else {
							key := c.row[3].S
							accepted[key] = true
						}
					case StreamDeadLetters:
						dead++
						require.Equal(t, ReasonStateLimit, c.row[4].S)
						require.Equal(t, "w", c.row[1].S)
						require.Contains(t, c.row[5].S, "budget")
						key := strings.Split(strings.Split(c.row[6].S, `"key":"`)[1], `"`)[0]
						require.False(t, accepted[key], "%s both refused and taken", key)
					}
				}
				t.Logf("%d keys taken, %d refused", len(accepted), dead)
				require.Positive(t, len(accepted))
				require.Positive(t, dead)
				require.Equal(t, n, len(accepted)+dead, "every record is in a result or a dead letter")
				require.EqualValues(t, dead, testutil.ToFloat64(rt.m.stateRefused.WithLabelValues("w")))
				require.EqualValues(t, dead, testutil.ToFloat64(rt.m.deadLetters.WithLabelValues("w", ReasonStateLimit)))
			})
		})
	}
}
