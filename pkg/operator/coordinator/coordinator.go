package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/retry"
	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/operator/marker"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
)

// Config configures aligned checkpoints.
type Config struct {
	Store store.Store
	// Prefix is where this pipeline's checkpoints live in the store.
	Prefix string
	// Interval between checkpoints; 0 takes checkpoints only on request
	// and at shutdown.
	Interval time.Duration
	// Timeout fails a checkpoint that has not completed in time (default 2m).
	Timeout time.Duration
	// Retain is how many completed checkpoints to keep (default 3).
	Retain int
	// SavepointOnStop takes a final checkpoint when the pipeline is
	// stopped, instead of draining open windows.
	SavepointOnStop bool
	// RestoreFrom restores the checkpoint with this ID instead of the
	// newest one; -1 starts from the configured positions without restoring.
	RestoreFrom int64
}

// Request is the payload of checkpoint barriers.
type Request struct {
	id        int64
	savepoint bool
	// stop makes split tasks stop reading once the barrier has passed them.
	stop bool
	// stopSplit ("source/split") makes only that split stop, for good: it
	// was revoked, so it publishes all it holds with this checkpoint.
	stopSplit string
}

// ID is the checkpoint's ID.
func (req *Request) ID() int64 { return req.id }

// StopsAll reports whether every split stops reading behind the barrier
// (a stop of the pipeline): every writer publishes all it holds with the
// checkpoint.
func (req *Request) StopsAll() bool { return req.stop }

// Stops reports whether the barrier stops a split.
func (req *Request) Stops(src, split string) bool {
	return req.stop || (req.stopSplit != "" && req.stopSplit == src+"/"+split)
}

// Coordinator runs the checkpoint protocol over a Runtime: it injects
// barriers, collects the snapshots of splits and subtasks, writes state and
// then the manifest, which makes the checkpoint complete.
type Coordinator struct {
	rt  Runtime
	cfg Config
	log *zap.Logger
	m   *checkpointMetrics

	mu       sync.Mutex
	nextID   int64
	inflight *pendingCheckpoint
	last     atomic.Int64
	restored *checkpoint.Manifest
	// restoredCommitted: the restored checkpoint's commits had completed.
	restoredCommitted bool
	stopping          atomic.Bool
	// requests asks Run for a checkpoint now (see RequestCheckpoint).
	requests chan struct{}
	// storeErr is why the last checkpoint failed to write its state or
	// manifest, nil once one completes: readiness reports it.
	storeErr atomic.Pointer[storeFault]
}

// storeFault is a checkpoint that failed on its store.
type storeFault struct {
	id  int64
	err error
}

type pendingCheckpoint struct {
	req      *Request
	started  time.Time
	expected int // acknowledgements still missing
	splits   []checkpoint.SplitState
	sinks    []checkpoint.SinkState
	parts    map[string][]Part
	done     chan error
	once     sync.Once
	// finished is closed when the checkpoint completes or fails.
	finished chan struct{}
	// finalizing makes sure only one goroutine writes the manifest.
	finalizing bool
	// sinkErr and offsetErr are why the commits after the manifest
	// failed, if they did.
	sinkErr, offsetErr error
}

type checkpointMetrics struct {
	duration       prometheus.Histogram
	pause          prometheus.Histogram
	alignment      prometheus.Histogram
	size           prometheus.Gauge
	failures       prometheus.Counter
	completed      prometheus.Counter
	lastID         prometheus.Gauge
	lastTime       prometheus.Gauge
	restore        prometheus.Gauge
	restoredID     prometheus.Gauge
	commitFailures prometheus.Counter
}

func newCheckpointMetrics(reg prometheus.Registerer) *checkpointMetrics {
	f := promauto.With(reg)
	buckets := prometheus.ExponentialBuckets(0.001, 2, 16)
	return &checkpointMetrics{
		duration:       f.NewHistogram(prometheus.HistogramOpts{Name: "streamd_checkpoint_duration_seconds", Help: "Time from triggering a checkpoint to its manifest being written.", Buckets: buckets}),
		pause:          f.NewHistogram(prometheus.HistogramOpts{Name: "streamd_checkpoint_pause_seconds", Help: "Time a subtask stops processing to snapshot its state.", Buckets: buckets}),
		alignment:      f.NewHistogram(prometheus.HistogramOpts{Name: "streamd_checkpoint_alignment_seconds", Help: "Time from triggering a checkpoint until every task acknowledged it.", Buckets: buckets}),
		size:           f.NewGauge(prometheus.GaugeOpts{Name: "streamd_checkpoint_size_bytes", Help: "State bytes of the last completed checkpoint."}),
		failures:       f.NewCounter(prometheus.CounterOpts{Name: "streamd_checkpoint_failures_total", Help: "Checkpoints that failed or timed out."}),
		completed:      f.NewCounter(prometheus.CounterOpts{Name: "streamd_checkpoints_completed_total", Help: "Checkpoints completed."}),
		lastID:         f.NewGauge(prometheus.GaugeOpts{Name: "streamd_checkpoint_last_id", Help: "ID of the last completed checkpoint."}),
		lastTime:       f.NewGauge(prometheus.GaugeOpts{Name: "streamd_checkpoint_last_completed_timestamp_seconds", Help: "When the last checkpoint completed (Unix seconds)."}),
		restore:        f.NewGauge(prometheus.GaugeOpts{Name: "streamd_restore_duration_seconds", Help: "Time the last restore took."}),
		restoredID:     f.NewGauge(prometheus.GaugeOpts{Name: "streamd_restored_checkpoint_id", Help: "ID of the checkpoint the pipeline was restored from (0: none)."}),
		commitFailures: f.NewCounter(prometheus.CounterOpts{Name: "streamd_checkpoint_commit_failures_total", Help: "Sink commits after a completed checkpoint that failed (retried on recovery)."}),
	}
}

// New makes a coordinator for rt. The runtime hands it the markers that
// pass its tasks (it is a marker.Handler) and starts Run.
func New(rt Runtime, cfg Config, logger *zap.Logger, reg prometheus.Registerer) (*Coordinator, error) {
	if cfg.Store == nil {
		return nil, errors.New("new checkpoint coordinator: no store")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "pipelines/" + rt.Pipeline()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Retain == 0 {
		cfg.Retain = 3
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	c := &Coordinator{rt: rt, cfg: cfg, log: logger.With(zap.String("component", "checkpoint")), m: newCheckpointMetrics(reg), nextID: 1, requests: make(chan struct{}, 1)}
	for _, sk := range rt.Sinks() {
		if ca, ok := sk.Sink.(sink.CheckpointAware); ok {
			ca.BindCheckpoints(c.RequestCheckpoint)
		}
	}
	return c, nil
}

// Config returns the coordinator's configuration, defaults filled in.
func (c *Coordinator) Config() Config { return c.cfg }

// RequestCheckpoint asks for a checkpoint as soon as possible — right
// away, or right after the one in progress — without waiting for it.
// Sinks that bound what they hold call it (see sink.CheckpointAware).
func (c *Coordinator) RequestCheckpoint() {
	select {
	case c.requests <- struct{}{}:
	default: // one is asked for already
	}
}

// StoreFailure returns why the last checkpoint failed to write to its
// store, nil once one has completed since.
func (c *Coordinator) StoreFailure() error {
	if f := c.storeErr.Load(); f != nil {
		return fmt.Errorf("checkpoint %d failed on its store: %w", f.id, f.err)
	}
	return nil
}

// checkpointOutageAfter is how long a sink or the checkpoint store must
// have been retrying a failed request before periodic checkpoints fail
// for it: longer than the first retries of a passing error take.
const checkpointOutageAfter = 5 * time.Second

// outage returns why a periodic checkpoint cannot complete now: a sink
// or the checkpoint store has been retrying a request for
// checkpointOutageAfter (an endpoint answering 503). Its barrier would
// wait behind the retried write until the checkpoint timed out.
func (c *Coordinator) outage() error {
	return errors.Join(c.rt.Outage(checkpointOutageAfter)...)
}

// LastCompleted is the ID of the newest completed (or restored) checkpoint.
func (c *Coordinator) LastCompleted() int64 { return c.last.Load() }

// Run triggers a checkpoint every interval, and whenever one is
// requested, until ctx is done.
func (c *Coordinator) Run(ctx context.Context) {
	// Once no checkpoint will come, writers must not wait for one.
	defer c.abortWaiters(math.MaxInt64)
	var tick <-chan time.Time
	if c.cfg.Interval > 0 {
		t := time.NewTicker(c.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		requested := false
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-c.requests:
			requested = true
		}
		if c.stopping.Load() {
			return
		}
		_, err := c.Trigger(ctx, false, false)
		for requested && errors.Is(err, errInFlight) {
			// Asked for while one is in progress: the requester needs a
			// barrier after it, so take one as soon as it is done.
			c.mu.Lock()
			var finished chan struct{}
			if p := c.inflight; p != nil {
				finished = p.finished
			}
			c.mu.Unlock()
			if finished != nil {
				select {
				case <-finished:
				case <-ctx.Done():
					return
				}
			}
			if c.stopping.Load() {
				return
			}
			_, err = c.Trigger(ctx, false, false)
		}
		if err != nil && requested {
			// A writer waits for this checkpoint to start; it cannot.
			c.mu.Lock()
			next := c.nextID
			c.mu.Unlock()
			c.abortWaiters(next)
		}
		if err != nil && !errors.Is(err, errInFlight) && !errors.Is(err, marker.ErrNotRunning) && !errors.Is(err, ErrNoSplits) {
			c.log.Warn("checkpoint failed", zap.Error(err))
		}
	}
}

// abortWaiters tells sinks that bound what they hold that checkpoint id
// will not complete.
func (c *Coordinator) abortWaiters(id int64) {
	for _, sk := range c.rt.Sinks() {
		if ca, ok := sk.Sink.(sink.CheckpointAware); ok {
			ca.CheckpointAborted(id)
		}
	}
}

var errInFlight = errors.New("a checkpoint is already in progress")

// ErrNoSplits fails a checkpoint triggered while no split is being read
// (a consumer group still assigning partitions): no barrier would reach
// the subtasks.
var ErrNoSplits = errors.New("no split is being read yet")

// Trigger takes a checkpoint and waits for it to complete or fail.
func (c *Coordinator) Trigger(ctx context.Context, savepoint, stop bool) (int64, error) {
	if savepoint {
		c.stopping.Store(stop)
	}
	id, _, err := c.trigger(ctx, &Request{savepoint: savepoint, stop: stop})
	return id, err
}

// Drain takes a checkpoint whose barrier stops every split, after which
// none is taken, and waits for it to complete: a stop that drains (no
// savepoint) ends the splits where the sources can still commit their
// positions.
func (c *Coordinator) Drain(ctx context.Context) (int64, error) {
	c.stopping.Store(true)
	id, _, err := c.trigger(ctx, &Request{stop: true})
	return id, err
}

// StopSplit takes a checkpoint whose barrier stops one split for good and
// waits for it to complete and commit: the split's output up to the
// barrier is published and its position committed to the broker, so
// whoever reads the split next continues exactly there.
//
// When only the offset commit failed it returns the split's position: the
// output is published, and a reader of the split in this process must
// resume there rather than at the older committed offset.
func (c *Coordinator) StopSplit(ctx context.Context, src, split string) (*checkpoint.SplitState, error) {
	_, p, err := c.trigger(ctx, &Request{stopSplit: src + "/" + split})
	if err != nil {
		return nil, err
	}
	if p.sinkErr != nil {
		return nil, p.sinkErr
	}
	if p.offsetErr == nil {
		return nil, nil
	}
	// Another member that takes the split starts from an older offset and
	// repeats some output; nothing is lost.
	c.log.Warn("revoked split drained, but its position could not be committed to the broker", zap.String("split", src+"/"+split), zap.Error(p.offsetErr))
	for _, s := range p.splits {
		if s.Source == src && s.Split == split {
			return &s, nil
		}
	}
	return nil, nil
}

// trigger runs the checkpoint protocol for req (its id is assigned here).
// Requests other than periodic checkpoints wait for one in progress.
func (c *Coordinator) trigger(ctx context.Context, req *Request) (int64, *pendingCheckpoint, error) {
	waits := req.savepoint || req.stop || req.stopSplit != ""
	c.mu.Lock()
	for c.inflight != nil {
		p := c.inflight
		if time.Since(p.started) >= c.cfg.Timeout {
			c.fail(p, fmt.Errorf("checkpoint %d timed out after %s", p.req.id, c.cfg.Timeout))
			break
		}
		if !waits {
			c.mu.Unlock()
			return 0, nil, errInFlight
		}
		// A savepoint waits for the checkpoint in progress.
		c.mu.Unlock()
		select {
		case <-p.finished:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
		c.mu.Lock()
	}
	if !waits {
		if err := c.outage(); err != nil {
			c.mu.Unlock()
			c.m.failures.Inc()
			return 0, nil, fmt.Errorf("take checkpoint: %w", err)
		}
	}
	req.id = c.nextID
	c.nextID++
	p := &pendingCheckpoint{req: req, started: time.Now(), parts: make(map[string][]Part), done: make(chan error, 1), finished: make(chan struct{})}
	c.inflight = p
	// Every subtask acknowledges; so does every split the barrier reaches,
	// counted by Inject under the same lock as split registration.
	p.expected = c.rt.Subtasks()
	c.mu.Unlock()

	splits, err := c.rt.Inject(req, func(n int) {
		c.mu.Lock()
		p.expected += n
		c.mu.Unlock()
	})
	if err == nil && splits == 0 {
		// No split is reading yet (a consumer group still assigning
		// partitions): there is nothing to cut, and no barrier would reach
		// the subtasks. Try again at the next interval.
		err = ErrNoSplits
	}
	if err != nil {
		c.mu.Lock()
		if c.inflight == p {
			c.inflight = nil
		}
		p.once.Do(func() { close(p.finished) })
		c.nextID--
		c.mu.Unlock()
		return 0, p, err
	}
	for _, sk := range c.rt.Sinks() {
		if ca, ok := sk.Sink.(sink.CheckpointAware); ok {
			ca.CheckpointStarted(req.id)
		}
	}
	c.maybeComplete(p)
	timer := time.NewTimer(c.cfg.Timeout)
	defer timer.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		select {
		case err := <-p.done:
			return req.id, p, err
		case <-timer.C:
			c.mu.Lock()
			c.fail(p, fmt.Errorf("checkpoint %d timed out after %s", req.id, c.cfg.Timeout))
			c.mu.Unlock()
			return req.id, p, <-p.done
		case <-check.C:
			if waits {
				continue
			}
			if err := c.outage(); err != nil {
				c.mu.Lock()
				c.fail(p, fmt.Errorf("checkpoint %d: %w", req.id, err))
				c.mu.Unlock()
				return req.id, p, <-p.done
			}
		case <-ctx.Done():
			return req.id, p, ctx.Err()
		}
	}
}

// fail ends a pending checkpoint; c.mu is held.
func (c *Coordinator) fail(p *pendingCheckpoint, err error) {
	if c.inflight == p {
		c.inflight = nil
	}
	p.once.Do(func() {
		c.m.failures.Inc()
		p.done <- err
		close(p.finished)
		// Writers waiting for this checkpoint to release what they hold
		// must not wait for it any more.
		c.abortWaiters(p.req.id)
	})
}

// AtSplit records a split's position as the barrier passes it.
func (c *Coordinator) AtSplit(m marker.Marker, cut marker.SplitCut) {
	req, ok := m.Payload.(*Request)
	if !ok {
		return
	}
	c.mu.Lock()
	p := c.inflight
	if p == nil || p.req != req {
		c.mu.Unlock()
		return
	}
	p.splits = append(p.splits, checkpoint.SplitState{Source: cut.Source, Split: cut.Split, Next: cut.Next, Watermark: cut.Watermark})
	p.sinks = append(p.sinks, cut.Sinks...)
	p.expected--
	c.mu.Unlock()
	c.maybeComplete(p)
}

// AtSubtask snapshots a subtask's state on its goroutine: the processing
// pause of a checkpoint.
func (c *Coordinator) AtSubtask(m marker.Marker, st *marker.SubtaskContext) {
	req, ok := m.Payload.(*Request)
	if !ok {
		return
	}
	op := st.Operator
	if op == nil {
		return
	}
	wm := op.Watermark()
	sinks := st.Sinks
	finish := func(groups map[uint16][]byte) {
		c.addPart(req, st.Stage, Part{Index: st.Index, Watermark: wm, Groups: groups}, sinks)
	}
	if st.Async == nil {
		start := time.Now()
		groups := op.Snapshot()
		c.m.pause.Observe(time.Since(start).Seconds())
		finish(groups)
		return
	}
	// The pause is what BeginSnapshot does on the subtask: a window
	// operator captures its key set and encodes the state in the
	// background while the subtask goes on.
	st.Async(func() (<-chan struct{}, func()) {
		start := time.Now()
		snap := op.BeginSnapshot()
		c.m.pause.Observe(time.Since(start).Seconds())
		return snap.Done(), func() { finish(snap.Finish()) }
	})
}

// addPart records a subtask's acknowledgement of a checkpoint.
func (c *Coordinator) addPart(req *Request, stage string, part Part, sinks []checkpoint.SinkState) {
	c.mu.Lock()
	p := c.inflight
	if p == nil || p.req != req {
		c.mu.Unlock()
		return
	}
	p.parts[stage] = append(p.parts[stage], part)
	p.sinks = append(p.sinks, sinks...)
	p.expected--
	c.mu.Unlock()
	c.maybeComplete(p)
}

func (c *Coordinator) maybeComplete(p *pendingCheckpoint) {
	c.mu.Lock()
	ready := c.inflight == p && p.expected == 0 && !p.finalizing
	if ready {
		p.finalizing = true
	}
	c.mu.Unlock()
	if !ready {
		return
	}
	c.m.alignment.Observe(time.Since(p.started).Seconds())
	for _, sk := range c.rt.Sinks() {
		if ca, ok := sk.Sink.(sink.CheckpointAware); ok {
			ca.CheckpointAcknowledged(p.req.id)
		}
	}
	go func() {
		err := c.finalize(p)
		if err != nil && !c.rt.Failed() {
			c.storeErr.Store(&storeFault{id: p.req.id, err: err})
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			c.fail(p, err)
			return
		}
		if c.inflight == p {
			c.inflight = nil
		}
		p.once.Do(func() {
			p.done <- nil
			close(p.finished)
		})
	}()
}

// finalize writes the state blobs, then the manifest, then drops old checkpoints.
func (c *Coordinator) finalize(p *pendingCheckpoint) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	m := &checkpoint.Manifest{
		Version: checkpoint.ManifestVersion, ID: p.req.id, Pipeline: c.rt.Pipeline(), Created: time.Now().UTC(),
		Savepoint: p.req.savepoint, KeyGroups: c.rt.KeyGroups(), Splits: p.splits, Sinks: p.sinks,
	}
	// Splits that ended before the barrier (read to their end, or stopped
	// by a drain) are carried with the final states of their writers, until
	// a checkpoint that lists them has committed.
	ended := c.rt.Ended(p.splits, p.sinks)
	m.Splits = append(m.Splits, ended.Splits...)
	m.Sinks = append(m.Sinks, ended.Sinks...)
	c.markHandovers(ctx, m)
	err := c.complete(ctx, m, p.parts, p.started)
	if err == nil {
		p.sinkErr, p.offsetErr = c.commit(ctx, m)
		if p.sinkErr == nil {
			c.rt.EndedCommitted(ended)
		}
		c.retain(ctx)
	}
	return err
}

// inlineSinkState is the largest sink state kept in the manifest; larger
// ones (held rows near their bound) are blobs of their own. Small states
// stay inline: a blob is one more store request per task and checkpoint.
const inlineSinkState = 64 << 10

// complete writes the state blobs of parts, then the manifest: the
// checkpoint is complete once that returns nil.
func (c *Coordinator) complete(ctx context.Context, m *checkpoint.Manifest, parts map[string][]Part, started time.Time) error {
	if c.rt.Failed() {
		// A task whose prepare or write failed may be missing from the
		// checkpoint; the restart restores an earlier one.
		return fmt.Errorf("complete checkpoint %d: the pipeline failed", m.ID)
	}
	id := m.ID
	dir := checkpoint.Dir(c.cfg.Prefix, id)
	var total int64
	for _, stage := range c.rt.Stages() {
		ss := checkpoint.StageState{Stage: stage}
		for _, part := range parts[stage] {
			var buf bytes.Buffer
			blob := checkpoint.StateBlob{Key: dir + "/state/" + stage + "-" + strconv.Itoa(part.Index), Watermark: part.Watermark}
			for kg, data := range part.Groups {
				blob.Groups = append(blob.Groups, checkpoint.KeyGroupRange{KeyGroup: kg, Offset: int64(buf.Len()), Length: int64(len(data))})
				buf.Write(data)
			}
			blob.Size = int64(buf.Len())
			if err := c.cfg.Store.Put(ctx, blob.Key, bytes.NewReader(buf.Bytes()), blob.Size); err != nil {
				return fmt.Errorf("write checkpoint %d state: %w", id, err)
			}
			total += blob.Size
			ss.Blobs = append(ss.Blobs, blob)
		}
		m.Stages = append(m.Stages, ss)
	}
	enc := *m
	enc.Sinks = make([]checkpoint.SinkState, len(m.Sinks))
	for i, ss := range m.Sinks {
		if len(ss.State) > inlineSinkState {
			key := dir + "/sinks/" + strconv.Itoa(i)
			if err := c.cfg.Store.Put(ctx, key, bytes.NewReader(ss.State), int64(len(ss.State))); err != nil {
				return fmt.Errorf("write checkpoint %d sink state: %w", id, err)
			}
			total += int64(len(ss.State))
			ss.Key, ss.Size, ss.State = key, int64(len(ss.State)), nil
		}
		enc.Sinks[i] = ss
	}
	data, err := enc.Encode()
	if err != nil {
		return err
	}
	if err := c.cfg.Store.PutIfAbsent(ctx, checkpoint.ManifestKey(c.cfg.Prefix, id), data); err != nil {
		return fmt.Errorf("write checkpoint %d manifest: %w", id, err)
	}
	c.last.Store(id)
	c.storeErr.Store(nil)
	c.m.completed.Inc()
	c.m.lastID.Set(float64(id))
	c.m.lastTime.Set(float64(time.Now().UnixMilli()) / 1000)
	c.m.size.Set(float64(total))
	c.m.duration.Observe(time.Since(started).Seconds())
	c.log.Info("checkpoint complete", zap.Int64("id", id), zap.Bool("savepoint", m.Savepoint), zap.Bool("final", m.Final), zap.Int64("stateBytes", total), zap.Duration("duration", time.Since(started)))
	return nil
}

// Final takes the last checkpoint of a pipeline whose tasks have all
// ended (end of the input, or a drain): no barrier is needed, the splits'
// end positions and the final states of every writer are known (ended),
// and so is the state of stages that keep some past the end of the input
// (parts, by stage: rule definitions). Its commit publishes all remaining
// output.
func (c *Coordinator) Final(ended Ended, parts map[string][]Part) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	c.mu.Lock()
	for c.inflight != nil {
		p := c.inflight
		c.mu.Unlock()
		select {
		case <-p.finished:
		case <-ctx.Done():
			return 0, fmt.Errorf("final checkpoint: wait for checkpoint %d: %w", p.req.id, ctx.Err())
		}
		c.mu.Lock()
	}
	id := c.nextID
	c.nextID++
	// Nothing else starts now: every task has ended.
	placeholder := &pendingCheckpoint{req: &Request{id: id}, started: time.Now(), finished: make(chan struct{})}
	c.inflight = placeholder
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inflight = nil
		close(placeholder.finished)
		c.mu.Unlock()
	}()
	m := &checkpoint.Manifest{
		Version: checkpoint.ManifestVersion, ID: id, Pipeline: c.rt.Pipeline(), Created: time.Now().UTC(),
		Final: true, KeyGroups: c.rt.KeyGroups(), Splits: ended.Splits, Sinks: ended.Sinks,
	}
	c.markHandovers(ctx, m)
	if err := c.complete(ctx, m, parts, time.Now()); err != nil {
		c.m.failures.Inc()
		return id, err
	}
	// Offsets are committed when the group is still joined (not after a
	// drain, which left it): the checkpoint, not the group, is what a
	// restart resumes from.
	sinkErr, _ := c.commit(ctx, m)
	c.retain(ctx)
	if sinkErr != nil {
		// The checkpoint is complete: the next start commits it again.
		return id, fmt.Errorf("final checkpoint %d: %w", id, sinkErr)
	}
	return id, nil
}

// markHandovers records in m, for each sink that asks for it, where the
// hand-over of m's rows begins in the sink's output: the next hand-over
// is m's (checkpoints commit one after another), and a restore of m reads
// the output back from there.
func (c *Coordinator) markHandovers(ctx context.Context, m *checkpoint.Manifest) {
	for _, sk := range c.rt.Sinks() {
		cc, ok := sk.Sink.(sink.CheckpointCommitter)
		if !ok {
			continue
		}
		if mark := cc.HandoverMark(ctx, m.ID); mark != nil {
			if m.Marks == nil {
				m.Marks = make(map[string][]byte)
			}
			m.Marks[sk.Name] = mark
		}
	}
}

// sinkNamed returns a sink by name, nil if there is none.
func (c *Coordinator) sinkNamed(name string) sink.Sink {
	for _, sk := range c.rt.Sinks() {
		if sk.Name == name {
			return sk.Sink
		}
	}
	return nil
}

// commit publishes the sinks' output covered by a completed checkpoint and
// records source offsets in the brokers. Failures are logged and returned,
// those of sinks and of offsets apart: the checkpoint is complete, and
// recovery commits the sinks again idempotently.
func (c *Coordinator) commit(ctx context.Context, m *checkpoint.Manifest) (sinkErr, offsetErr error) {
	var errs, offsetErrs []error
	for _, s := range m.Sinks {
		sk := c.sinkNamed(s.Sink)
		tx, isTx := sk.(sink.Transactional)
		if !isTx {
			continue
		}
		commit := func() error { return tx.Commit(ctx, s.Task, s.State) }
		if cc, ok := sk.(sink.CheckpointCommitter); ok {
			commit = func() error { return cc.CommitCheckpoint(ctx, m.ID, s.Task, s.State) }
		}
		if err := commit(); err != nil {
			errs = append(errs, fmt.Errorf("commit sink %q: %w", s.Sink, err))
			c.m.commitFailures.Inc()
			c.log.Warn("commit sink output; it will be committed on recovery", zap.String("sink", s.Sink), zap.String("task", s.Task), zap.Int64("checkpoint", m.ID), zap.Error(err))
		}
	}
	if len(errs) == 0 {
		// Recovery from this checkpoint need not deliver its output again.
		// Without the record, recovery hands the output over again: files
		// are rewound first and Kafka read back, so only outputs that can
		// do neither repeat it.
		_ = retry.Do(ctx, 5, retry.Exponential(50*time.Millisecond, time.Second, 0.2), func(err error) bool {
			return errors.Is(err, store.ErrExists)
		}, func() error {
			err := c.cfg.Store.PutIfAbsent(ctx, committedKey(c.cfg.Prefix, m.ID), []byte("committed\n"))
			if err != nil && !errors.Is(err, store.ErrExists) {
				c.log.Warn("record completed commit", zap.Int64("checkpoint", m.ID), zap.Error(err))
			}
			return err
		})
	}
	for _, src := range c.rt.Sources() {
		oc, ok := src.Source.(source.OffsetCommitter)
		if !ok {
			continue
		}
		offsets := make(map[string]int64)
		for _, s := range m.Splits {
			if s.Source == src.Name && s.Next.Offset >= 0 {
				offsets[s.Split] = s.Next.Offset
			}
		}
		if len(offsets) == 0 {
			continue
		}
		if err := oc.Commit(ctx, offsets); err != nil {
			offsetErrs = append(offsetErrs, fmt.Errorf("commit offsets of source %q: %w", src.Name, err))
			c.log.Warn("commit source offsets", zap.String("source", src.Name), zap.Error(err))
		}
	}
	return errors.Join(errs...), errors.Join(offsetErrs...)
}

func committedKey(prefix string, id int64) string { return checkpoint.Dir(prefix, id) + "/_committed" }

// retain deletes checkpoints older than the newest Retain.
func (c *Coordinator) retain(ctx context.Context) {
	infos, err := checkpoint.List(ctx, c.cfg.Store, c.cfg.Prefix)
	if err != nil || len(infos) <= c.cfg.Retain {
		return
	}
	for _, old := range infos[:len(infos)-c.cfg.Retain] {
		dir := checkpoint.Dir(c.cfg.Prefix, old.ID)
		objs, err := c.cfg.Store.List(ctx, dir+"/")
		if err != nil {
			c.log.Warn("list old checkpoint", zap.Int64("id", old.ID), zap.Error(err))
			continue
		}
		// The manifest goes first so a half-deleted checkpoint never looks complete.
		keys := []string{old.Manifest}
		for _, o := range objs {
			if o.Key != old.Manifest {
				keys = append(keys, o.Key)
			}
		}
		if err := c.cfg.Store.Delete(ctx, keys...); err != nil {
			c.log.Warn("delete old checkpoint", zap.Int64("id", old.ID), zap.Error(err))
		}
	}
}
