package operator

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/operator/coordinator"
)

// The checkpoint coordinator lives in package coordinator; these names
// keep the runtime's API as it was.
type (
	// CheckpointConfig configures aligned checkpoints.
	CheckpointConfig = coordinator.Config
	// Coordinator runs the checkpoint protocol over a Runtime.
	Coordinator = coordinator.Coordinator
)

// NewCoordinator attaches checkpointing to rt; call before rt.Run.
func NewCoordinator(rt *Runtime, cfg CheckpointConfig, logger *zap.Logger, reg prometheus.Registerer) (*Coordinator, error) {
	c, err := coordinator.New(newCheckpointView(rt), cfg, logger, reg)
	if err != nil {
		return nil, err
	}
	rt.SetMarkerHandler(c)
	rt.coordinator = c
	return c, nil
}

// restoreState is what the runtime starts from after a restore.
type restoreState = coordinator.RestoreState

// checkpointView is the runtime as the coordinator sees it
// (coordinator.Runtime). The runtime's shape (stages, sinks, sources) is
// fixed once it is wired, so it is taken once.
type checkpointView struct {
	r        *Runtime
	stages   []string
	subtasks int
	sinks    []coordinator.Sink
	sources  []coordinator.Source
}

var _ coordinator.Runtime = (*checkpointView)(nil)

func newCheckpointView(r *Runtime) *checkpointView {
	v := &checkpointView{r: r}
	for _, st := range r.stages {
		v.stages = append(v.stages, st.spec.Name)
		v.subtasks += len(st.inputs)
	}
	for _, sk := range r.sinks {
		v.sinks = append(v.sinks, coordinator.Sink{Name: sk.spec.Name, Sink: sk.spec.Sink})
	}
	for _, src := range r.sources {
		v.sources = append(v.sources, coordinator.Source{Name: src.spec.Name, Source: src.spec.Source})
	}
	return v
}

func (v *checkpointView) Pipeline() string                   { return v.r.job.Name }
func (v *checkpointView) KeyGroups() int                     { return v.r.job.KeyGroups }
func (v *checkpointView) Stages() []string                   { return v.stages }
func (v *checkpointView) Subtasks() int                      { return v.subtasks }
func (v *checkpointView) Sinks() []coordinator.Sink          { return v.sinks }
func (v *checkpointView) Sources() []coordinator.Source      { return v.sources }
func (v *checkpointView) Failed() bool                       { return v.r.failed.Load() }
func (v *checkpointView) EndedCommitted(e coordinator.Ended) { v.r.endedCommitted(e) }

func (v *checkpointView) Inject(req *coordinator.Request, counted func(int)) (int, error) {
	_, n, err := v.r.inject(req, counted)
	return n, err
}

func (v *checkpointView) Outage(minFor time.Duration) []error {
	return v.r.outage(v.r.job.Now(), minFor)
}

func (v *checkpointView) Ended(cut []checkpoint.SplitState, seen []checkpoint.SinkState) coordinator.Ended {
	return v.r.endedParts(cut, seen, true)
}

// Restore records the splits the checkpoint read to their end, brings
// rule state of an older layout up to date and has the rule manager serve
// the restored rule set; the tasks then start from rs.
func (v *checkpointView) Restore(rs *restoreState) error {
	r := v.r
	for _, s := range rs.Splits {
		if s.Finished {
			r.splitFinished(s)
		}
	}
	if err := r.upgradeRuleState(rs); err != nil {
		return err
	}
	if rm := r.ruleManager; rm != nil {
		// The rule manager serves the rule set the engines restore.
		if err := rm.restore(rs); err != nil {
			return err
		}
	}
	r.restore = rs
	return nil
}
