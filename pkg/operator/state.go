package operator

import (
	"context"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamd/streamd/pkg/record"
)

// ReasonStateLimit is the dead-letter reason of records refused because
// their stage's state held its budget.
const ReasonStateLimit = "state_limit"

// subtaskState reports a subtask's keyed state — its estimated size, the
// keys its TTL let go, the records its budget refused — and turns refused
// records into dead letters.
type subtaskState struct {
	bytes    prometheus.Gauge
	budget   int64
	limited  prometheus.Gauge
	expired  prometheus.Counter
	refused  prometheus.Counter
	deadC    prometheus.Counter
	lastExp  int64
	dead     *emitter
	name     string
	isLimit  bool
	inSchema *record.Schema
}

// initState sets up the subtask's state reporting; with a state budget
// the subtask also produces dead letters.
func (s *subtask) initState() error {
	st, r := s.st, s.r
	sub := strconv.Itoa(s.idx)
	ss := &s.state
	ss.name = subtaskName(st.spec.Name, s.idx)
	ss.inSchema = st.in.schema
	ss.bytes = r.m.stateBytes.WithLabelValues(st.spec.Name, sub)
	ss.limited = r.m.stateLimited.WithLabelValues(st.spec.Name, sub)
	ss.expired = r.m.stateExpired.WithLabelValues(st.spec.Name)
	ss.refused = r.m.stateRefused.WithLabelValues(st.spec.Name)
	if st.spec.StateBudget <= 0 {
		return nil
	}
	ss.budget = max(st.spec.StateBudget/int64(len(st.inputs)), 1)
	r.m.stateBudget.WithLabelValues(st.spec.Name, sub).Set(float64(ss.budget))
	ss.deadC = r.m.deadLetters.WithLabelValues(st.spec.Name, ReasonStateLimit)
	var err error
	if ss.dead, err = r.newEmitter(r.streams[StreamDeadLetters], ss.name, 0, s.status.bp); err != nil {
		return fmt.Errorf("open dead letters: %w", err)
	}
	return nil
}

// publishState updates the state gauges and counters and the status; it
// runs once per tick.
func (s *subtask) publishState() {
	ss := &s.state
	bytes := s.op.StateBytes()
	ss.bytes.Set(float64(bytes))
	s.status.stateBytes.Store(bytes)
	if exp := s.op.ExpiredKeys(); exp > ss.lastExp {
		ss.expired.Add(float64(exp - ss.lastExp))
		ss.lastExp = exp
	} else if exp < ss.lastExp {
		ss.lastExp = exp // a restored operator starts counting again
	}
	limited := ss.budget > 0 && bytes >= ss.budget
	if limited != ss.isLimit {
		ss.isLimit = limited
		v := 0.0
		if limited {
			v = 1
		}
		ss.limited.Set(v)
		s.status.stateLimited.Store(limited)
	}
}

// refusedBatch is where the operator puts refused records: nil without a
// budget (nothing can be refused).
func (s *subtask) refusedBatch() *record.Batch {
	switch {
	case s.state.budget <= 0:
		return nil
	case s.res.Refused != nil:
		return s.res.Refused // emptied by flushRefused, which copies what it keeps
	}
	return record.NewBatch(s.state.inSchema.Len(), 16)
}

// flushRefused counts the records the state budget refused and sends them
// to the dead letters with their row as JSON.
func (s *subtask) flushRefused(ctx context.Context, res *record.Batch, n int64, wm int64) {
	ss := &s.state
	if n == 0 {
		return
	}
	ss.refused.Add(float64(n))
	if ss.dead == nil || res == nil || res.Len() == 0 {
		return
	}
	ss.deadC.Add(float64(res.Len()))
	now := s.r.job.Now().UnixMilli()
	b := record.NewBatch(DeadLetterSchema.Len(), res.Len())
	detail := fmt.Sprintf("stage %s subtask %d holds %d bytes of state, its budget is %d: records of keys without state are refused", s.st.spec.Name, s.idx, s.op.StateBytes(), ss.budget)
	for i := 0; i < res.Len(); i++ {
		row := b.AppendRow(now)
		row[0] = record.TimestampMillis(now)
		row[1] = record.String(s.st.spec.Name)
		row[2] = record.String(ss.name)
		row[3] = record.String("")
		row[4] = record.String(ReasonStateLimit)
		row[5] = record.String(detail)
		row[6] = record.String(string(record.AppendJSON(nil, ss.inSchema, res.Row(i))))
	}
	ss.dead.emit(ctx, b, wm, false)
}

// stateEmitters are the subtask's emitters besides its results: the late
// stream, alerts and, with a state budget, dead letters.
func (s *subtask) stateEmitters() []*emitter {
	out := []*emitter{s.out, s.late, s.alerts}
	if s.state.dead != nil {
		out = append(out, s.state.dead)
	}
	return out
}
