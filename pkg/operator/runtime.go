package operator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/keyed"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
	"github.com/streamd/streamd/pkg/window"
)

const (
	minWM = window.MinWatermark
	maxWM = window.MaxWatermark
)

// Runtime runs a Job.
type Runtime struct {
	job     Job
	log     *zap.Logger
	m       *metrics
	streams map[string]*stream
	stages  []*stageRT
	sinks   []*sinkRT
	sources []*sourceRT

	ready   atomic.Bool
	errOnce sync.Once
	err     error
	stop    context.CancelFunc

	statusMu sync.Mutex
	splits   map[string]*splitStatus
	subtasks []*subtaskStatus
	// writers names every open sink writer ("sink \"x\" of task t"), for
	// Stalled: a write that never returns does not stop its task's loop.
	writers map[*asyncWriter]string

	// markerMu orders marker injection with split start: a split started
	// after marker n is injected joins its consumers as "past n".
	markerMu   sync.Mutex
	lastMarker int64
	running    map[*splitTask]struct{}
	handler    MarkerHandler

	coordinator *Coordinator
	ruleManager *RuleManager
	restore     *restoreState
	// finished holds the splits read to their end ("source/split" →
	// state), carried into every checkpoint.
	finishedMu sync.Mutex
	finished   map[string]checkpoint.SplitState
	// noDrain stops subtasks without firing open windows: their state is
	// in a savepoint.
	noDrain atomic.Bool
	// failed is set by the first fail: no checkpoint may complete after it.
	failed atomic.Bool
	// lc is what ending tasks need: the drain context of sink writes and
	// the final states of writers that closed (see lifecycle.go).
	lc lifecycle
}

// SetMarkerHandler installs the handler for markers; call before Run.
func (r *Runtime) SetMarkerHandler(h MarkerHandler) { r.handler = h }

// stream is a named flow of rows of one schema with its consumers.
type stream struct {
	name    string
	schema  *record.Schema
	sinks   []*sinkRT
	stages  []*stageRT
	records prometheus.Counter
	// producers counts tasks emitting into the stream; when they are all
	// done the consuming stages' inputs are closed.
	producers sync.WaitGroup
}

type sinkRT struct {
	spec   SinkSpec
	errors prometheus.Counter
}

type sourceRT struct {
	spec   SourceSpec
	out    *stream
	splits prometheus.Gauge
}

type stageRT struct {
	spec      StageSpec
	in        *stream
	keyIdx    []int
	keyGroups int
	aggs      []window.Aggregate
	out       *stream
	late      *stream
	inputs    []chan event
	// align publishes each subtask's alignment to the producers' gates.
	align []*alignSignal
	// waitName is what a producer waiting for this stage waits on.
	waitName  string
	nextInput atomic.Int64
	// clog is set when the input is the result stream of a window stage
	// that emits updates: rows replace and retract earlier rows.
	clog *window.Changelog
	// hold is how far the stage's output watermark trails its input (the
	// allowed lateness of a window stage: its results can still change).
	hold int64
	// dropRetract is the index of the input's retract field for a rule
	// stage reading a window stage's updates (rules see results, not
	// withdrawals), or -1.
	dropRetract int
	closeOnce   sync.Once
	done        sync.WaitGroup
	// batches recycles the exchange's batches: subtasks return them once
	// the window operator has taken what it keeps. It holds at most what
	// the inputs can have queued — a sync.Pool, emptied by every
	// collection, let most batches be allocated again.
	batches *batchPool
	// ruleOps are the rule engines of a rule stage's subtasks.
	ruleOps []*ruleOperator
}

var (
	_ keyed.Operator = (*window.Operator)(nil)
	_ keyed.Operator = (*ruleOperator)(nil)
)

// maxPooledBatches bounds the exchange batches a stage keeps for reuse.
const maxPooledBatches = 1024

func (st *stageRT) getBatch(width, capacity int) *record.Batch {
	b := st.batches.get(width, capacity)
	if b.Keys == nil {
		b.Keys = make([]string, 0, capacity)
		b.KeyGroups = make([]uint16, 0, capacity)
		b.Hashes = make([]uint64, 0, capacity)
	}
	return b
}

// putBatch takes back a batch the subtask's operator has processed. Its
// arena holds only the keys built by the exchange (keyBy over several
// fields), which no operator keeps — windows and rule engines intern the
// keys they hold, and late and refused rows copy values, not keys — so it
// is filled again. The values' strings live in the producers' batches.
func (st *stageRT) putBatch(b *record.Batch) {
	clear(b.Keys)
	st.batches.put(b, true)
}

// New checks the job, resolves schemas and wires streams. logger may be nil;
// reg may be nil (no metrics registered).
func New(job Job, logger *zap.Logger, reg prometheus.Registerer) (*Runtime, error) {
	if err := job.defaults(); err != nil {
		return nil, fmt.Errorf("new runtime: %w", err)
	}
	if job.Parallelism == 0 {
		job.Parallelism = runtime.GOMAXPROCS(0)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	r := &Runtime{
		job:     job,
		log:     logger,
		m:       newMetrics(reg),
		streams: make(map[string]*stream),
		splits:  make(map[string]*splitStatus),
		running: make(map[*splitTask]struct{}),
	}
	if err := r.wire(); err != nil {
		return nil, fmt.Errorf("new runtime: %w", err)
	}
	// Evaluated at each scrape, so the metric and /readyz always agree.
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "streamd_ready",
		Help: "1 while the pipeline is ready (/readyz answers 200): running, no split failing and no sink or checkpoint store retrying for the failing grace, the last checkpoint not failed on its store.",
	}, func() float64 {
		if r.Ready() {
			return 1
		}
		return 0
	})
	if r.ruleManager = newRuleManager(r); r.ruleManager != nil && reg != nil {
		if err := reg.Register(newRuleCollector(r.ruleManager)); err != nil {
			return nil, fmt.Errorf("new runtime: register rule metrics: %w", err)
		}
	}
	if job.Checkpoint != nil {
		if _, err := NewCoordinator(r, *job.Checkpoint, logger, reg); err != nil {
			return nil, fmt.Errorf("new runtime: %w", err)
		}
	}
	return r, nil
}

// splitFinished records a split read to its end.
func (r *Runtime) splitFinished(st checkpoint.SplitState) {
	r.finishedMu.Lock()
	defer r.finishedMu.Unlock()
	if r.finished == nil {
		r.finished = make(map[string]checkpoint.SplitState)
	}
	st.Finished = true
	r.finished[st.Source+"/"+st.Split] = st
}

// finishedSplits returns the splits read to their end so far.
func (r *Runtime) finishedSplits() []checkpoint.SplitState {
	r.finishedMu.Lock()
	defer r.finishedMu.Unlock()
	out := make([]checkpoint.SplitState, 0, len(r.finished))
	for _, st := range r.finished {
		out = append(out, st)
	}
	return out
}

// Coordinator returns the checkpoint coordinator, nil without checkpoints.
func (r *Runtime) Coordinator() *Coordinator { return r.coordinator }

func (r *Runtime) addStream(name string, s *record.Schema) (*stream, error) {
	if _, dup := r.streams[name]; dup {
		return nil, fmt.Errorf("stream %q is defined twice", name)
	}
	st := &stream{name: name, schema: s, records: r.m.streamRecords.WithLabelValues(name)}
	r.streams[name] = st
	return st, nil
}

func (r *Runtime) wire() error {
	if _, err := r.addStream(StreamDeadLetters, DeadLetterSchema); err != nil {
		return err
	}
	if _, err := r.addStream(StreamAlerts, AlertSchema); err != nil {
		return err
	}
	for _, spec := range r.job.Sources {
		schema, err := sourceSchema(spec)
		if err != nil {
			return fmt.Errorf("source %q: %w", spec.Name, err)
		}
		out, err := r.addStream(spec.Name, schema)
		if err != nil {
			return err
		}
		r.sources = append(r.sources, &sourceRT{spec: spec, out: out, splits: r.m.splitsAssigned.WithLabelValues(spec.Name)})
	}
	for _, spec := range r.job.Stages {
		in, ok := r.streams[spec.Input]
		if !ok || in.name == StreamDeadLetters || in.name == StreamAlerts {
			return fmt.Errorf("stage %q: input %q is not a source or an earlier stage", spec.Name, spec.Input)
		}
		if spec.Rules != nil && spec.NewOperator != nil {
			return fmt.Errorf("stage %q: a rule stage runs the rule engine, not an operator of its own", spec.Name)
		}
		st := &stageRT{spec: spec, in: in, keyGroups: r.job.KeyGroups, dropRetract: -1, waitName: "stage:" + spec.Name}
		if up := r.stageNamed(in.name); up != nil && up.spec.Rules == nil {
			updates := up.spec.Emit == window.EmitUpdates && up.spec.AllowedLateness > 0
			if spec.Rules != nil {
				if updates {
					st.dropRetract, _ = in.schema.Index(window.FieldRetract)
				}
			} else {
				clog, err := window.StageInput(in.schema, len(up.spec.KeyBy), updates, spec.Aggregates)
				if err != nil {
					return fmt.Errorf("stage %q: %w", spec.Name, err)
				}
				st.clog = clog
			}
		}
		if spec.Rules == nil {
			st.hold = spec.AllowedLateness.Milliseconds()
		}
		for _, k := range spec.KeyBy {
			i, ok := in.schema.Index(k)
			if !ok {
				return fmt.Errorf("stage %q: key field %q is not in %q (%s)", spec.Name, k, in.name, in.schema)
			}
			st.keyIdx = append(st.keyIdx, i)
		}
		if spec.Rules == nil {
			for _, a := range spec.Aggregates {
				agg, err := spec.NewAggregate(a, in.schema)
				if err != nil {
					return fmt.Errorf("stage %q: %w", spec.Name, err)
				}
				st.aggs = append(st.aggs, agg)
			}
		}
		probe, err := r.newOperator(st, 0)
		if err != nil {
			return fmt.Errorf("stage %q: %w", spec.Name, err)
		}
		if st.out, err = r.addStream(spec.Name, probe.ResultSchema()); err != nil {
			return err
		}
		if st.late, err = r.addStream(spec.Name+"."+StreamLate, probe.LateSchema()); err != nil {
			return err
		}
		for _, a := range spec.Alerts {
			if _, err := a.NewCondition(probe.ResultSchema()); err != nil {
				return fmt.Errorf("stage %q: alert %q: %w", spec.Name, a.Name, err)
			}
		}
		st.inputs = make([]chan event, r.job.Parallelism)
		st.batches = newBatchPool(min(r.job.Parallelism*(inputCapacity+1), maxPooledBatches))
		st.align = make([]*alignSignal, r.job.Parallelism)
		for i := range st.inputs {
			st.inputs[i] = make(chan event, inputCapacity)
			st.align[i] = newAlignSignal()
		}
		in.stages = append(in.stages, st)
		r.stages = append(r.stages, st)
	}
	for _, spec := range r.job.Sinks {
		sk := &sinkRT{spec: spec, errors: r.m.sinkErrors.WithLabelValues(spec.Name)}
		r.sinks = append(r.sinks, sk)
		if spec.Input == StreamLate {
			if len(r.stages) == 0 {
				return fmt.Errorf("sink %q: there is no late stream without stages", spec.Name)
			}
			for _, st := range r.stages {
				st.late.sinks = append(st.late.sinks, sk)
			}
			continue
		}
		in, ok := r.streams[spec.Input]
		if !ok {
			return fmt.Errorf("sink %q: input %q is not a stream", spec.Name, spec.Input)
		}
		in.sinks = append(in.sinks, sk)
	}
	return nil
}

func sourceSchema(spec SourceSpec) (*record.Schema, error) {
	dec, err := spec.NewDecoder()
	if err != nil {
		return nil, err
	}
	schema := dec.Schema()
	if spec.NewSteps != nil {
		steps, err := spec.NewSteps()
		if err != nil {
			return nil, err
		}
		for _, s := range steps {
			schema = s.Schema()
		}
	}
	return schema, nil
}

// newOperator returns the operator of a stage's subtask idx.
func (r *Runtime) newOperator(st *stageRT, idx int) (keyed.Operator, error) {
	budget := st.spec.StateBudget / int64(r.job.Parallelism) // each subtask's share
	if st.spec.StateBudget > 0 {
		budget = max(budget, 1)
	}
	var owned []int
	for kg := range st.keyGroups {
		if SubtaskFor(kg, st.keyGroups, r.job.Parallelism) == idx {
			owned = append(owned, kg)
		}
	}
	if f := st.spec.NewOperator; f != nil {
		return f(st.in.schema, owned)
	}
	if st.spec.Rules != nil {
		return newRuleOperator(st.spec.Name, r.ruleSpec(st, budget), st.in.schema, st.spec.AllowedLateness.Milliseconds(), owned, r.log.With(zap.String("stage", st.spec.Name)))
	}
	return window.NewOperator(window.Config{
		Assigner:        st.spec.Assigner,
		AllowedLateness: st.spec.AllowedLateness.Milliseconds(),
		Emit:            st.spec.Emit,
		Input:           st.in.schema,
		KeyFields:       st.spec.KeyBy,
		Aggregates:      st.aggs,
		Changelog:       st.clog,
		StateTTL:        st.spec.StateTTL.Milliseconds(),
		MaxStateBytes:   budget,
	})
}

// ruleSpec is a rule stage's spec as one engine runs it: the stage's
// state TTL and budget share, and the key groups of the keyBy exchange.
func (r *Runtime) ruleSpec(st *stageRT, budget int64) *RulesSpec {
	spec := *st.spec.Rules
	if st.spec.StateTTL > 0 {
		spec.Options.StateTTL = st.spec.StateTTL
	}
	spec.Options.MaxStateBytes = budget
	kr := &keyer{idx: st.keyIdx, keyGroups: st.keyGroups}
	spec.Options.KeyGroup = kr.group
	return &spec
}

// stageNamed returns the stage whose results form the stream name, if any.
func (r *Runtime) stageNamed(name string) *stageRT {
	for _, st := range r.stages {
		if st.spec.Name == name {
			return st
		}
	}
	return nil
}

// Schema returns the schema of a stream, for tools and tests.
func (r *Runtime) Schema(stream string) (*record.Schema, bool) {
	s, ok := r.streams[stream]
	if !ok {
		return nil, false
	}
	return s.schema, true
}

// Ready reports whether the pipeline is ready (see NotReady).
func (r *Runtime) Ready() bool { return r.NotReady() == nil }

// NotReady returns why the pipeline is not ready, nil when it is: every
// source has started reading, and for Job.FailingGrace or longer no split
// has been failing its reads, no sink and not the checkpoint store been
// retrying a failed request; nor did the last checkpoint fail on its
// store. A pipeline that waits out an outage is alive (see Stalled) but
// not ready.
func (r *Runtime) NotReady() error {
	if !r.ready.Load() {
		return errors.New("the pipeline is not running")
	}
	var errs []error
	r.statusMu.Lock()
	now := r.job.Now()
	for _, s := range r.splits {
		if f := s.failure.Load(); f != nil && now.Sub(f.since) >= r.job.FailingGrace {
			errs = append(errs, fmt.Errorf("split %s/%s is failing since %s: %s", s.source, s.split, f.since.UTC().Format(time.RFC3339), f.err))
		}
	}
	r.statusMu.Unlock()
	errs = append(errs, r.outage(now, r.job.FailingGrace)...)
	if c := r.coordinator; c != nil {
		if err := c.StoreFailure(); err != nil {
			errs = append(errs, err)
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// outage returns the failures that sinks and the checkpoint store have
// been retrying for at least minFor.
func (r *Runtime) outage(now time.Time, minFor time.Duration) []error {
	var errs []error
	for _, sk := range r.sinks {
		if rt, ok := sk.spec.Sink.(sink.Retrier); ok {
			if err := rt.Retrying(); err != nil && retriedFor(err, now) >= minFor {
				errs = append(errs, fmt.Errorf("sink %q is retrying: %w", sk.spec.Name, err))
			}
		}
	}
	if c := r.coordinator; c != nil {
		if rt, ok := c.Config().Store.(store.Retrier); ok {
			if err := rt.Retrying(); err != nil && retriedFor(err, now) >= minFor {
				errs = append(errs, fmt.Errorf("the checkpoint store is retrying: %w", err))
			}
		}
	}
	return errs
}

// retriedFor is how long the failure err of a Retrier has been retried;
// one that does not say since when counts as long.
func retriedFor(err error, now time.Time) time.Duration {
	var re *store.RetryError
	if errors.As(err, &re) {
		return now.Sub(re.Since)
	}
	return math.MaxInt64
}

// started reports whether Run has started the pipeline and not finished.
func (r *Runtime) started() bool { return r.ready.Load() }

func (r *Runtime) fail(err error) {
	r.errOnce.Do(func() {
		r.err = err
		r.failed.Store(true)
		if r.coordinator != nil {
			// The restart restores the last completed checkpoint: firing
			// windows or publishing now would only produce output that
			// the restored pipeline produces again.
			r.noDrain.Store(true)
			r.log.Error("pipeline failed; stopping sources without publishing more output", zap.Error(err))
		} else {
			r.log.Error("pipeline failed; stopping sources and draining", zap.Error(err))
		}
		if r.stop != nil {
			r.stop()
		}
		r.beginDrain()
	})
}

// startStages starts the subtasks of every stage, later stages first: a
// subtask joins every subtask of the next stage on creation, and with more
// subtasks than an input channel holds, those must already be reading.
// When one cannot be made, the subtasks not started give up their counts
// in the stage's producers, so that those started end with their inputs.
func (r *Runtime) startStages(tasks *sync.WaitGroup) error {
	for j := len(r.stages) - 1; j >= 0; j-- {
		st := r.stages[j]
		for i := range st.inputs {
			err := r.startSubtask(st, i, tasks)
			if err == nil {
				continue
			}
			st.abandon(len(st.inputs) - i)
			for _, earlier := range r.stages[:j] {
				earlier.abandon(len(earlier.inputs))
			}
			return fmt.Errorf("run stage %q: %w", st.spec.Name, err)
		}
	}
	return nil
}

// startSubtask makes subtask i of st and runs it.
func (r *Runtime) startSubtask(st *stageRT, i int, tasks *sync.WaitGroup) error {
	op, err := r.newOperator(st, i)
	if err != nil {
		return err
	}
	sub, err := r.newSubtask(st, i, op)
	if err != nil {
		return err
	}
	tasks.Add(1)
	go func() {
		defer tasks.Done()
		sub.run()
	}()
	return nil
}

// abandon gives up the counts of n subtasks of st that will not run.
func (st *stageRT) abandon(n int) {
	st.done.Add(-n)
	st.out.producers.Add(-n)
	st.late.producers.Add(-n)
}

// Run runs the job until every source ends or ctx is done. Cancelling ctx
// stops the sources; everything already read is drained through the
// stages (open windows fire) and sinks before Run returns.
func (r *Runtime) Run(ctx context.Context) error {
	// Sources stop when ctx is done — after a savepoint, if checkpoints
	// are configured to take one — not at the same instant.
	srcCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	r.stop = stop
	r.initWrites(ctx)
	defer r.lc.cancelWrites()
	defer r.stopDrainClock()
	finished := make(chan struct{})
	var stopping sync.WaitGroup
	stopping.Add(1)
	go func() {
		defer stopping.Done()
		select {
		case <-ctx.Done():
			r.onStop()
			stop()
			r.beginDrain()
		case <-finished:
		}
	}()
	var once sync.Once
	// endStop waits for a shutdown savepoint (and its commits) to finish.
	endStop := func() {
		once.Do(func() {
			close(finished)
			stopping.Wait()
		})
	}
	defer endStop()
	if c := r.coordinator; c != nil {
		if from := c.Config().RestoreFrom; from >= 0 {
			if _, err := c.Restore(ctx, from); err != nil && !errors.Is(err, checkpoint.ErrNoCheckpoint) {
				return fmt.Errorf("run: %w", err)
			}
		}
		if err := c.RecoverSinks(ctx); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		go c.Run(srcCtx)
	}

	var tasks sync.WaitGroup
	for _, st := range r.stages {
		st.done.Add(len(st.inputs))
		st.out.producers.Add(len(st.inputs))
		st.late.producers.Add(len(st.inputs))
	}
	// Stage inputs close when every producer of their input stream is
	// done; this cascades the end of input from sources to the last stage.
	for _, s := range r.streams {
		if len(s.stages) == 0 {
			continue
		}
		s.producers.Add(1) // held by Run until sources are started
		go func(s *stream) {
			s.producers.Wait()
			for _, st := range s.stages {
				st.closeOnce.Do(func() {
					for _, in := range st.inputs {
						close(in)
					}
				})
			}
		}(s)
	}
	started := true
	if err := r.startStages(&tasks); err != nil {
		// What started ends as after any failure: the inputs close below,
		// with no source started, and Run returns the error.
		started = false
		r.fail(err)
	}
	if started {
		// Subtasks of a stage register as inputs of downstream stages before
		// any data flows, so no watermark can overtake them; so do the
		// initial splits of every source, which start reading together below.
		var held []func()
		for _, src := range r.sources {
			if fn, ok := src.spec.Source.(source.FinishedNotifier); ok {
				if ids := r.restore.FinishedSplits(src.spec.Name); len(ids) > 0 {
					fn.SplitsFinished(ids)
				}
			}
		}
		for _, src := range r.sources {
			splits, err := src.spec.Source.Splits(srcCtx)
			if err != nil {
				r.fail(fmt.Errorf("list splits of source %q: %w", src.spec.Name, err))
				break
			}
			for _, sp := range splits {
				r.startSplit(srcCtx, src, sp, nil, &tasks, &held)
			}
		}
		for _, launch := range held {
			launch()
		}
		for _, src := range r.sources {
			if dyn, ok := src.spec.Source.(source.Dynamic); ok {
				src.out.producers.Add(1)
				tasks.Add(1)
				go func() {
					defer tasks.Done()
					defer src.out.producers.Done()
					r.watchSplits(srcCtx, src, dyn, &tasks)
				}()
			}
		}
	}
	for _, s := range r.streams {
		if len(s.stages) > 0 {
			s.producers.Done()
		}
	}
	r.ready.Store(started)
	var controls sync.WaitGroup
	r.runControls(srcCtx, &controls)
	defer controls.Wait()
	r.log.Info("pipeline running", zap.String("pipeline", r.job.Name), zap.Int("parallelism", r.job.Parallelism), zap.Int("stages", len(r.stages)))

	tasks.Wait()
	// Sinks close only after a shutdown savepoint has committed their output.
	endStop()
	r.ready.Store(false)
	// The end of the input, or a drain, ends in a checkpoint that covers
	// everything published, so a later restore continues exactly.
	finalErr := r.finalCheckpoint()
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if r.err != nil {
		errs = append(errs, r.err)
	}
	if finalErr != nil {
		errs = append(errs, finalErr)
	}
	for _, sk := range r.sinks {
		if err := sk.spec.Sink.Close(closeCtx); err != nil {
			errs = append(errs, fmt.Errorf("close sink %q: %w", sk.spec.Name, err))
		}
	}
	for _, src := range r.sources {
		if err := src.spec.Source.Close(closeCtx); err != nil {
			errs = append(errs, fmt.Errorf("close source %q: %w", src.spec.Name, err))
		}
	}
	return errors.Join(errs...)
}

// onStop runs when Run's context is done: with checkpoints, take a savepoint
// and stop the splits right behind its barrier, keeping window state for
// the restart instead of firing it.
func (r *Runtime) onStop() {
	c := r.coordinator
	if c == nil || !r.started() {
		return
	}
	if !c.Config().SavepointOnStop {
		r.drainStop(c)
		return
	}
	r.noDrain.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), c.Config().Timeout)
	defer cancel()
	id, err := c.Trigger(ctx, true, true)
	if err != nil {
		r.log.Error("savepoint at shutdown failed; the next start restores the last completed checkpoint", zap.Error(err))
		return
	}
	r.log.Info("savepoint complete", zap.Int64("id", id))
}

func (r *Runtime) watchSplits(ctx context.Context, src *sourceRT, dyn source.Dynamic, tasks *sync.WaitGroup) {
	var mu sync.Mutex
	running := make(map[string]*splitHandle)
	err := dyn.Watch(ctx, func(ev source.Event) error {
		mu.Lock()
		defer mu.Unlock()
		// The contract: a revoked split is drained and closed before the
		// next event, so a quick re-assignment never runs two tasks of the
		// same split (same file names, same status keys).
		if h, ok := running[ev.Split.ID]; ok {
			delete(running, ev.Split.ID)
			r.revokeSplit(ctx, src, ev.Split.ID, h)
		}
		if ev.Revoked {
			return nil
		}
		splitCtx, cancel := context.WithCancel(ctx)
		if h := r.startSplit(splitCtx, src, ev.Split, nil, tasks, nil); h != nil {
			h.cancel = cancel
			running[ev.Split.ID] = h
		} else {
			cancel()
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		r.fail(fmt.Errorf("watch splits of source %q: %w", src.spec.Name, err))
	}
}

// emitter delivers one task's rows of one stream to the stream's sinks and
// downstream stages. Each sink writer runs on its own goroutine behind a
// bounded queue (asyncWriter); waiting for room there, or for a
// downstream subtask, is the task's backpressure.
type emitter struct {
	r       *Runtime
	task    string
	stream  *stream
	writers []*asyncWriter
	sinks   []*sinkRT
	outs    []*exchangeOut
	bp      *backpressure
}

func (r *Runtime) newEmitter(s *stream, task string, after int64, bp *backpressure) (*emitter, error) {
	e := &emitter{r: r, stream: s, task: task, bp: bp}
	for _, sk := range s.sinks {
		w, err := sk.spec.Sink.NewWriter(task, s.schema)
		if err != nil {
			e.closeWriters(context.Background())
			return nil, fmt.Errorf("open sink %q: %w", sk.spec.Name, err)
		}
		onError := func(err error) {
			sk.errors.Inc()
			r.fail(fmt.Errorf("write sink %q: %w", sk.spec.Name, err))
		}
		aw := newAsyncWriterClock(w, r.job.SinkQueue, bp, "sink:"+sk.spec.Name, onError, r.job.Now)
		r.statusMu.Lock()
		if r.writers == nil {
			r.writers = make(map[*asyncWriter]string)
		}
		r.writers[aw] = fmt.Sprintf("sink %q of task %s", sk.spec.Name, task)
		r.statusMu.Unlock()
		e.writers = append(e.writers, aw)
		e.sinks = append(e.sinks, sk)
	}
	for _, st := range s.stages {
		id := int(st.nextInput.Add(1) - 1)
		x := newExchangeOut(st, id, s.schema.Len(), after)
		x.bp = bp
		for _, in := range st.inputs {
			in <- event{from: id, wm: minWM, join: true, after: after}
		}
		e.outs = append(e.outs, x)
	}
	return e, nil
}

// prepare asks every writer that takes part in checkpoints to make its
// output recoverable, and collects their states.
//
// With final set (a split stopping for good behind the barrier), writers
// that can publish everything they hold do so at this checkpoint's commit.
func (e *emitter) prepare(ctx context.Context, id int64, task string, out []checkpoint.SinkState, final bool) ([]checkpoint.SinkState, error) {
	for i, w := range e.writers {
		if w.prep == nil {
			continue
		}
		var state []byte
		var err error
		if final && w.final != nil {
			state, err = w.PrepareFinal(ctx, id)
		} else {
			state, err = w.Prepare(ctx, id)
		}
		if err != nil {
			return out, fmt.Errorf("prepare sink %q for checkpoint %d: %w", e.sinks[i].spec.Name, id, err)
		}
		out = append(out, checkpoint.SinkState{Sink: e.sinks[i].spec.Name, Task: task, State: state})
	}
	return out, nil
}

// marker forwards a marker downstream.
func (e *emitter) marker(m *Marker) {
	for _, x := range e.outs {
		x.sendMarker(m)
	}
}

// emit writes b (may be nil for a watermark-only update) and forwards the watermark.
func (e *emitter) emit(ctx context.Context, b *record.Batch, wm int64, idle bool) {
	e.emitFrom(ctx, b, wm, idle, nil)
}

// emitFrom is emit of a batch taken from pool (nil: a batch not to be
// recycled): it goes back to the pool once the writers have written it
// and the exchanges have copied its rows. The caller must not use b
// afterwards.
func (e *emitter) emitFrom(ctx context.Context, b *record.Batch, wm int64, idle bool, pool *batchPool) {
	var loan *batchLoan
	if b != nil && b.Len() > 0 {
		e.stream.records.Add(float64(b.Len()))
		if pool != nil {
			loan = pool.lend(b, len(e.writers)+1)
		}
		for _, w := range e.writers {
			w.write(ctx, b, loan)
		}
	} else {
		b = nil
	}
	for _, x := range e.outs {
		x.send(b, wm, idle)
	}
	loan.release()
}

func (e *emitter) tick(ctx context.Context, now time.Time, wm int64) {
	for _, w := range e.writers {
		w.tick(ctx, now.UnixMilli(), wm)
	}
}

// finish ends this producer's part of the stream.
func (e *emitter) finish(ctx context.Context) {
	for _, x := range e.outs {
		x.finish()
	}
	e.closeWriters(ctx)
}

// leave ends this producer's part of the stream without ending event time
// for the consumers: a revoked split may be read again, here or elsewhere.
func (e *emitter) leave(ctx context.Context) {
	for _, x := range e.outs {
		x.leave()
	}
	e.closeWriters(ctx)
}

// finalPreparer is implemented by transactional writers that can publish
// everything they hold when the input has ended for good.
type finalPreparer interface {
	PrepareFinal(ctx context.Context, checkpointID int64) ([]byte, error)
}

// finalStates prepares, for the final checkpoint of a task that ends,
// every writer that takes part in checkpoints so that the checkpoint's
// commit publishes all it holds. The runtime carries the states into the
// next checkpoint (see lifecycle.go); the writers are closed afterwards.
func (e *emitter) finalStates(ctx context.Context) []checkpoint.SinkState {
	// The task's input has ended (or is drained as if it had): event time
	// ends for its writers before they prepare, so a writer that commits
	// by the watermark (Parquet partitions) commits what it wrote.
	now := e.r.job.Now().UnixMilli()
	for i, w := range e.writers {
		if err := w.endInput(ctx, now); err != nil {
			e.sinks[i].errors.Inc()
			e.r.fail(fmt.Errorf("end the input of sink %q: %w", e.sinks[i].spec.Name, err))
		}
	}
	var out []checkpoint.SinkState
	for i, w := range e.writers {
		var state []byte
		var err error
		switch {
		case w.final != nil:
			state, err = w.PrepareFinal(ctx, 0)
		case w.prep != nil:
			state, err = w.Prepare(ctx, 0)
		default:
			continue
		}
		if err != nil {
			e.sinks[i].errors.Inc()
			e.r.fail(fmt.Errorf("prepare sink %q for the final checkpoint: %w", e.sinks[i].spec.Name, err))
			continue
		}
		out = append(out, checkpoint.SinkState{Sink: e.sinks[i].spec.Name, Task: e.task, State: state})
	}
	return out
}

// closeWriters closes the writers. A transactional writer publishes
// nothing by closing: what it holds is published by the commit of a
// checkpoint that lists it (finalStates at the end of the input).
func (e *emitter) closeWriters(ctx context.Context) {
	for i, w := range e.writers {
		if err := w.Close(ctx); err != nil {
			e.sinks[i].errors.Inc()
			e.r.fail(fmt.Errorf("close sink %q: %w", e.sinks[i].spec.Name, err))
		}
		e.r.statusMu.Lock()
		delete(e.r.writers, w)
		e.r.statusMu.Unlock()
	}
	e.writers = nil
}

func alertID(stage, alert, key string, start int64, rev int64) string {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(stage)
	_, _ = d.WriteString("\x00")
	_, _ = d.WriteString(alert)
	_, _ = d.WriteString("\x00")
	_, _ = d.WriteString(key)
	_, _ = d.WriteString("\x00")
	_, _ = d.WriteString(strconv.FormatInt(start, 10))
	_, _ = d.WriteString("\x00")
	_, _ = d.WriteString(strconv.FormatInt(rev, 10))
	return fmt.Sprintf("%016x", d.Sum64())
}
