package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/streamd/streamd/internal/promreg"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/kafkaconn"
	"github.com/streamd/streamd/pkg/source"
)

// statsInterval is how often a reader folds kafka-go's fetch statistics
// into the Prometheus counters.
const statsInterval = time.Second

// Source is a source.Source and source.Dynamic over Kafka topics.
type Source struct {
	cfg    Config
	logger *zap.Logger
	conn   *kafkaconn.Conn
	start  func(topic string, partition int) startAt

	lag        *prometheus.GaugeVec
	fetchBytes prometheus.Counter
	fetches    prometheus.Counter
	rebalances prometheus.Counter
	restarts   prometheus.Counter
	commits    *prometheus.CounterVec

	commitMu sync.Mutex // serializes commits on the coordinator connection

	mu        sync.Mutex
	gen       *kafka.Generation
	assigned  map[string]int64 // split → offset from the current generation
	readers   map[string]*Reader
	committed map[string]int64 // split → last next-offset committed
	closed    map[string]int64 // split → next offset of its closed reader
}

var (
	_ source.Source          = (*Source)(nil)
	_ source.Dynamic         = (*Source)(nil)
	_ source.Reader          = (*Reader)(nil)
	_ source.GroupPositioner = (*Source)(nil)
)

// startAt is a resolved start position for a partition.
type startAt struct {
	offset int64     // kafka.FirstOffset, kafka.LastOffset or an offset
	at     time.Time // when non-zero, the first message at or after it
}

// New validates cfg and builds a Kafka source. It does not connect: Check
// does, and readers do when first read. A nil logger discards logs; a nil
// reg registers no metrics.
func New(cfg Config, logger *zap.Logger, reg prometheus.Registerer) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new kafka source: %w", err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = zap.NewNop()
	}
	conn, err := cfg.Connect()
	if err != nil {
		return nil, fmt.Errorf("new kafka source: %w", err)
	}
	f := promreg.With(reg)
	s := &Source{
		cfg:    cfg,
		logger: logger,
		conn:   conn,
		lag: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamd_kafka_lag_messages",
			Help: "Messages between the high watermark and the next offset handed out, per partition read here.",
		}, []string{"topic", "partition"}),
		fetchBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "streamd_kafka_fetch_bytes_total",
			Help: "Message bytes fetched from Kafka.",
		}),
		fetches: f.NewCounter(prometheus.CounterOpts{
			Name: "streamd_kafka_fetches_total",
			Help: "Fetch requests sent to Kafka.",
		}),
		rebalances: f.NewCounter(prometheus.CounterOpts{
			Name: "streamd_kafka_rebalances_total",
			Help: "Consumer group generations joined.",
		}),
		restarts: f.NewCounter(prometheus.CounterOpts{
			Name: "streamd_kafka_reader_restarts_total",
			Help: "Partition readers started again at their next offset after a failed fetch (a broker outage, a lost connection).",
		}),
		commits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "streamd_kafka_offset_commits_total",
			Help: "Offset commits to the consumer group, by result.",
		}, []string{"result"}),
		assigned:  make(map[string]int64),
		readers:   make(map[string]*Reader),
		committed: make(map[string]int64),
		closed:    make(map[string]int64),
	}
	s.start = s.configuredStart()
	return s, nil
}

func (s *Source) configuredStart() func(string, int) startAt {
	switch s.cfg.StartOffset {
	case StartEarliest:
		return func(string, int) startAt { return startAt{offset: kafka.FirstOffset} }
	case StartLatest:
		return func(string, int) startAt { return startAt{offset: kafka.LastOffset} }
	case StartOffsets:
		return func(topic string, partition int) startAt {
			if off, ok := s.cfg.Offsets[SplitID(topic, partition)]; ok {
				return startAt{offset: off}
			}
			return startAt{offset: kafka.FirstOffset}
		}
	}
	t, _ := time.Parse(time.RFC3339, s.cfg.StartOffset) // validated in New
	return func(string, int) startAt { return startAt{at: t} }
}

// Check connects to every broker and checks that every topic exists. The
// error names each unreachable broker and missing topic and what to fix.
func (s *Source) Check(ctx context.Context) error {
	if err := s.conn.Check(ctx, s.cfg.Topics); err != nil {
		return fmt.Errorf("check kafka source: %w", err)
	}
	return nil
}

// Splits lists every partition of the topics when there is no group. With a
// group it returns none: partitions arrive through Watch as the group
// assigns them.
func (s *Source) Splits(ctx context.Context) ([]source.Split, error) {
	if s.cfg.Group != "" {
		return nil, nil
	}
	parts, err := s.conn.Partitions(ctx, s.cfg.Topics)
	if err != nil {
		return nil, fmt.Errorf("split kafka topics: %w", err)
	}
	var splits []source.Split
	for _, t := range s.cfg.Topics {
		for _, p := range parts[t] {
			splits = append(splits, source.Split{ID: SplitID(t, p)})
		}
	}
	return splits, nil
}

// Open returns a reader of one partition. The start is, in order: start
// when not nil (the next offset to read), the group's committed offset,
// Config.StartOffset.
func (s *Source) Open(ctx context.Context, split source.Split, start *source.Position) (source.Reader, error) {
	topic, partition, err := ParseSplitID(split.ID)
	if err != nil {
		return nil, fmt.Errorf("open kafka split: %w", err)
	}
	if !slices.Contains(s.cfg.Topics, topic) {
		return nil, fmt.Errorf("open kafka split %s: topic %q is not configured", split.ID, topic)
	}
	at := s.start(topic, partition)
	if start != nil {
		if start.Offset < 0 {
			return nil, fmt.Errorf("open kafka split %s: negative offset %d", split.ID, start.Offset)
		}
		at = startAt{offset: start.Offset}
	} else {
		s.mu.Lock()
		committed, ok := s.assigned[split.ID]
		s.mu.Unlock()
		if ok && committed >= 0 {
			at = startAt{offset: committed}
		}
	}
	r := &Reader{
		src:       s,
		split:     split.ID,
		topic:     topic,
		partition: partition,
		lag:       s.lag.WithLabelValues(topic, fmt.Sprint(partition)),
		lastStats: time.Now(),
	}
	r.next.Store(-1)
	if at.at.IsZero() && at.offset >= 0 {
		r.next.Store(at.offset)
	}
	r.resume = at.offset
	switch {
	case !at.at.IsZero():
		// Resolved once: a reader restarted after a failure resumes at the
		// same message, not at the first one after a later time.
		off, err := r.offsetAt(ctx, at.at)
		if err != nil {
			return nil, fmt.Errorf("open kafka split %s: set start offset: %w", split.ID, err)
		}
		r.resume = off
	case at.offset == kafka.LastOffset:
		// "latest" is resolved now too, so that a restart after an outage
		// does not skip what was produced meanwhile. Unreachable now, it is
		// resolved by the first fetch, as kafka-go does.
		if _, last, err := r.leaderOffsets(ctx); err == nil {
			r.resume = last
		} else {
			s.logger.Warn("resolve the latest offset of a kafka partition; the first fetch resolves it", zap.String("split", split.ID), zap.Error(err))
		}
	}
	r.r = r.newKafkaReader(r.resume)
	s.mu.Lock()
	s.readers[split.ID] = r
	delete(s.closed, split.ID)
	s.mu.Unlock()
	return r, nil
}

// newKafkaReader starts a kafka-go reader of the partition at offset (an
// offset, kafka.FirstOffset or kafka.LastOffset). It makes no request.
func (r *Reader) newKafkaReader(offset int64) *kafka.Reader {
	s := r.src
	kr := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     s.cfg.Brokers,
		Topic:       r.topic,
		Partition:   r.partition,
		Dialer:      s.conn.Dialer(),
		MinBytes:    s.cfg.MinBytes,
		MaxBytes:    s.cfg.MaxBytes,
		MaxWait:     s.cfg.MaxWait,
		ErrorLogger: kafka.LoggerFunc(s.kafkaLog(r.split)),
	})
	// SetOffset fails only on a closed reader.
	_ = kr.SetOffset(offset)
	return kr
}

// leaderOffsets asks the partition's leader for its first and last
// offsets, trying each bootstrap broker in turn until ctx ends.
func (r *Reader) leaderOffsets(ctx context.Context) (first, last int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, kafkaconn.DialTimeout)
	defer cancel()
	err = errors.New("no broker")
	for _, b := range r.src.cfg.Brokers {
		var conn *kafka.Conn
		conn, err = r.src.conn.Dialer().DialLeader(ctx, "tcp", b, r.topic, r.partition)
		if err != nil {
			continue
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		first, last, err = conn.ReadOffsets()
		_ = conn.Close()
		if err == nil {
			return first, last, nil
		}
	}
	return 0, 0, fmt.Errorf("ask the leader of kafka partition %s: %w", r.split, err)
}

// offsetAt returns the offset of the first message at or after t.
func (r *Reader) offsetAt(ctx context.Context, t time.Time) (int64, error) {
	kr := r.newKafkaReader(kafka.FirstOffset)
	defer func() { _ = kr.Close() }()
	if err := kr.SetOffsetAt(ctx, t); err != nil {
		return 0, err
	}
	return kr.Offset(), nil
}

// kafkaLog adapts kafka-go's error log, which reports retried fetch
// failures, to zap.
func (s *Source) kafkaLog(split string) func(string, ...any) {
	l := s.logger.With(zap.String("split", split))
	return func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if strings.Contains(msg, "i/o timeout") {
			// A long poll on an idle partition that the broker answered
			// late: kafka-go reconnects and carries on.
			l.Debug(msg)
			return
		}
		if strings.Contains(msg, "error initializing the kafka reader") {
			// The attempts kafka-go makes before it reports a failure: the
			// runtime logs the failure it reports, with its retries.
			l.Debug(msg)
			return
		}
		l.Warn(msg)
	}
}

// Close implements source.Source. Readers own their connections.
func (s *Source) Close(context.Context) error { return nil }

// Watch joins the consumer group and calls fn for every partition assigned
// to or revoked from this member, until ctx is done; then it commits the
// handed-out offsets (unless DisableAutoCommit) and leaves the group.
// Without a group it waits for ctx: the splits never change.
//
// The group rebalances eagerly: when a generation ends, every partition of
// this member is revoked — fn drains each before it returns, which with
// checkpoints publishes the partition's output and commits its position
// through the ending generation — and the next generation assigns them
// anew, each starting at its committed offset. So a partition that moves
// to another member continues exactly where this one stopped.
func (s *Source) Watch(ctx context.Context, fn func(source.Event) error) error {
	if s.cfg.Group == "" {
		<-ctx.Done()
		return nil
	}
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                s.cfg.Group,
		Brokers:           s.cfg.Brokers,
		Dialer:            s.conn.Dialer(),
		Topics:            s.cfg.Topics,
		SessionTimeout:    s.cfg.SessionTimeout,
		HeartbeatInterval: s.cfg.HeartbeatInterval,
		// A partition without a committed offset reports a negative offset
		// and Open applies StartOffset itself.
		StartOffset: kafka.FirstOffset,
		ErrorLogger: kafka.LoggerFunc(s.kafkaLog("group " + s.cfg.Group)),
	})
	if err != nil {
		return fmt.Errorf("watch kafka group %s: %w", s.cfg.Group, err)
	}
	defer func() { _ = cg.Close() }()

	var wg sync.WaitGroup
	defer wg.Wait()
	if !s.cfg.DisableAutoCommit {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		wg.Go(func() { s.autoCommit(cctx) })
	}

	// events serializes calls to fn between the generation loop and the
	// revocation at the end of a generation; current is what fn was told.
	var events sync.Mutex
	current := map[string]bool{}
	var fnErr error
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			// The group retries by itself; the error is for the log.
			s.logger.Warn("kafka consumer group generation failed, retrying", zap.String("group", s.cfg.Group), zap.Error(err))
			continue
		}
		s.rebalances.Inc()
		next := make(map[string]bool)
		assigned := make(map[string]int64)
		for topic, parts := range gen.Assignments {
			for _, p := range parts {
				id := SplitID(topic, p.ID)
				next[id] = true
				assigned[id] = p.Offset
			}
		}
		s.mu.Lock()
		s.gen, s.assigned = gen, assigned
		for id := range s.committed {
			if !next[id] {
				delete(s.committed, id)
			}
		}
		for id := range s.closed {
			if !next[id] {
				delete(s.closed, id)
			}
		}
		s.mu.Unlock()
		s.logger.Info("kafka consumer group generation",
			zap.String("group", s.cfg.Group), zap.Int32("generation", gen.ID), zap.Int("partitions", len(next)))
		gen.Start(func(gctx context.Context) {
			<-gctx.Done()
			if ctx.Err() == nil {
				// The group is rebalancing: hand every partition back,
				// drained, while this generation can still commit.
				events.Lock()
				for _, id := range sortedDiff(current, nil) {
					if err := fn(source.Event{Split: source.Split{ID: id}, Revoked: true}); err != nil && fnErr == nil {
						fnErr = fmt.Errorf("watch kafka group %s: revoke %s: %w", s.cfg.Group, id, err)
					}
				}
				current = map[string]bool{}
				events.Unlock()
			}
			if !s.cfg.DisableAutoCommit {
				// Commit what was handed out before the group moves
				// partitions, so the next owner starts where this member
				// stopped.
				s.commitHandedOut(gen)
			}
		})
		events.Lock()
		if fnErr != nil {
			events.Unlock()
			return fnErr
		}
		for _, id := range sortedDiff(current, next) {
			if err := fn(source.Event{Split: source.Split{ID: id}, Revoked: true}); err != nil {
				events.Unlock()
				return fmt.Errorf("watch kafka group %s: revoke %s: %w", s.cfg.Group, id, err)
			}
		}
		for _, id := range sortedDiff(next, current) {
			if err := fn(source.Event{Split: source.Split{ID: id}}); err != nil {
				events.Unlock()
				return fmt.Errorf("watch kafka group %s: assign %s: %w", s.cfg.Group, id, err)
			}
		}
		current = next
		events.Unlock()
	}
	if !s.cfg.DisableAutoCommit {
		s.mu.Lock()
		gen := s.gen
		s.mu.Unlock()
		if gen != nil {
			s.commitHandedOut(gen)
		}
	}
	return nil
}

// sortedDiff returns the keys of a not in b, sorted.
func sortedDiff(a, b map[string]bool) []string {
	var out []string
	for id := range a {
		if !b[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Source) autoCommit(ctx context.Context) {
	t := time.NewTicker(s.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		gen := s.gen
		s.mu.Unlock()
		if gen != nil {
			s.commitHandedOut(gen)
		}
	}
}

// commitHandedOut commits, through gen, the next offset of every reader of
// a partition gen assigns to this member.
func (s *Source) commitHandedOut(gen *kafka.Generation) {
	offsets := make(map[string]int64)
	s.mu.Lock()
	// Readers closed at shutdown still have offsets to commit.
	for id, next := range s.closed {
		offsets[id] = next
	}
	for id, r := range s.readers {
		if next := r.next.Load(); next >= 0 {
			offsets[id] = next
		}
	}
	s.mu.Unlock()
	if err := s.commit(gen, offsets); err != nil {
		s.logger.Warn("commit kafka offsets", zap.String("group", s.cfg.Group), zap.Error(err))
	}
}

// Commit commits, for each split ("topic/partition"), the offset of the next
// message to read, so the group resumes there and lag tooling measures
// from it. Splits not assigned to this member in the current generation are
// skipped: their new owner commits them. Without a group it does nothing.
func (s *Source) Commit(ctx context.Context, offsets map[string]int64) error {
	if s.cfg.Group == "" {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("commit kafka offsets: %w", err)
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	if gen == nil {
		return errors.New("commit kafka offsets: not a member of the group yet")
	}
	return s.commit(gen, offsets)
}

func (s *Source) commit(gen *kafka.Generation, offsets map[string]int64) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	req := make(map[string]map[int]int64)
	s.mu.Lock()
	owned := s.gen == gen
	for id, off := range offsets {
		if _, ok := s.assigned[id]; !ok || !owned || s.committed[id] == off {
			continue
		}
		topic, p, err := ParseSplitID(id)
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("commit kafka offsets: %w", err)
		}
		if req[topic] == nil {
			req[topic] = make(map[int]int64)
		}
		req[topic][p] = off
	}
	s.mu.Unlock()
	if len(req) == 0 {
		return nil
	}
	if err := gen.CommitOffsets(req); err != nil {
		s.commits.WithLabelValues("error").Inc()
		return fmt.Errorf("commit kafka offsets: generation %d: %w", gen.ID, err)
	}
	s.commits.WithLabelValues("ok").Inc()
	s.mu.Lock()
	for topic, parts := range req {
		for p, off := range parts {
			s.committed[SplitID(topic, p)] = off
		}
	}
	s.mu.Unlock()
	return nil
}

// Reader reads one partition. It is used by one goroutine.
type Reader struct {
	src       *Source
	split     string
	topic     string
	partition int
	r         *kafka.Reader
	// resume is where a kafka-go reader started after a failure begins
	// before any message was handed out: the start offset, resolved to an
	// offset where it was relative (latest, a time).
	resume    int64
	next      atomic.Int64 // offset after the last message handed out; -1 before
	headers   []source.Header
	lag       prometheus.Gauge
	lastStats time.Time
	// unavailable is set from a failed read until the partition has
	// answered again (a message, or its leader's offsets).
	unavailable bool
}

// probeTimeout bounds the check, after a failed read, that a partition's
// leader answers again.
const probeTimeout = 2 * time.Second

// Position returns the position of the next message Read will return, the
// position to store in a checkpoint. Before the first message it is the
// start offset, or -1 when the start is relative (earliest, latest, a time).
func (r *Reader) Position() source.Position { return source.Position{Offset: r.next.Load()} }

// Read blocks for the first message, then keeps adding messages for up to
// Config.MaxWait while they arrive, up to max. Messages stay valid after
// the next Read (kafka-go allocates them) except their Headers slices,
// which are reused.
//
// A failed fetch starts a new kafka-go reader at the next offset (see
// restart), and until the partition's leader answers again every Read that
// finds no message reports why, wrapping source.ErrUnavailable, instead of
// ctx's error: the partition is failing, not idle.
func (r *Reader) Read(ctx context.Context, b *source.Batch, max int) error {
	if max <= 0 {
		return nil
	}
	r.headers = r.headers[:0]
	// Fold fetch statistics on every read, including reads that time out
	// on an idle partition, so the counters keep up.
	defer func() {
		if now := time.Now(); now.Sub(r.lastStats) >= statsInterval {
			r.lastStats = now
			r.foldStats()
		}
	}()
	m, err := r.r.FetchMessage(ctx)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			if r.unavailable && errors.Is(ctxErr, context.DeadlineExceeded) {
				// No message says nothing about a partition that just
				// failed: kafka-go retries quietly before it reports. (A
				// cancelled read is a stop: no probe delays it.)
				pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
				_, _, perr := r.leaderOffsets(pctx)
				cancel()
				if perr != nil {
					return fmt.Errorf("read kafka %s: %w: %w", r.split, source.ErrUnavailable, perr)
				}
				r.recovered()
			}
			return ctxErr
		}
		r.restart()
		return fmt.Errorf("read kafka %s: %w: %w", r.split, source.ErrUnavailable, err)
	}
	if r.unavailable {
		r.recovered()
	}
	r.append(b, &m)
	last, hwm := m.Offset, m.HighWaterMark
	if max > 1 {
		more, cancel := context.WithTimeout(ctx, r.src.cfg.MaxWait)
		for n := 1; n < max; n++ {
			m, err = r.r.FetchMessage(more)
			if err != nil {
				break
			}
			r.append(b, &m)
			last, hwm = m.Offset, m.HighWaterMark
		}
		cancel()
		if err != nil && more.Err() == nil {
			// Handed out what came before the failure; the next Read
			// reports it.
			r.restart()
		}
	}
	r.next.Store(last + 1)
	r.lag.Set(float64(max64(hwm-last-1, 0)))
	return nil
}

// restart replaces the kafka-go reader after a failed fetch with one that
// starts at the next offset. kafka-go keeps retrying in the background
// after its MaxAttempts, but queues each failure (up to QueueCapacity, 100)
// and hands out one per fetch, oldest first: after an outage a reader read
// every few seconds reports failures that are minutes old for minutes,
// while the partition is readable again (segmentio/kafka-go#1046 and #387
// describe the symptom). A new reader has no such backlog.
func (r *Reader) restart() {
	r.foldStats()
	if err := r.r.Close(); err != nil {
		r.src.logger.Debug("close failed kafka reader", zap.String("split", r.split), zap.Error(err))
	}
	from := r.resume
	if next := r.next.Load(); next >= 0 {
		from = next
	}
	r.r = r.newKafkaReader(from)
	r.unavailable = true
	r.src.restarts.Inc()
}

// recovered records that the partition answers again.
func (r *Reader) recovered() {
	r.unavailable = false
	r.src.logger.Info("kafka partition readable again", zap.String("split", r.split), zap.Int64("next", r.next.Load()))
}

func (r *Reader) append(b *source.Batch, m *kafka.Message) {
	var hs []source.Header
	if len(m.Headers) > 0 {
		start := len(r.headers)
		for _, h := range m.Headers {
			r.headers = append(r.headers, source.Header{Key: h.Key, Value: h.Value})
		}
		hs = r.headers[start:len(r.headers):len(r.headers)]
	}
	var ts int64
	if !m.Time.IsZero() {
		ts = m.Time.UnixMilli()
	}
	b.Messages = append(b.Messages, source.Message{
		Value:     m.Value,
		Key:       m.Key,
		Headers:   hs,
		Timestamp: ts,
		Position:  source.Position{Offset: m.Offset},
	})
}

// foldStats adds kafka-go's counters since the last call to the metrics.
func (r *Reader) foldStats() {
	st := r.r.Stats()
	r.src.fetchBytes.Add(float64(st.Bytes))
	r.src.fetches.Add(float64(st.Fetches))
}

// Close stops fetching the partition and drops its lag series: another
// member reports it now.
func (r *Reader) Close() error {
	r.foldStats()
	s := r.src
	s.mu.Lock()
	if s.readers[r.split] == r {
		delete(s.readers, r.split)
		if next := r.next.Load(); next >= 0 {
			s.closed[r.split] = next
		}
	}
	s.mu.Unlock()
	s.lag.DeleteLabelValues(r.topic, fmt.Sprint(r.partition))
	if err := r.r.Close(); err != nil {
		return fmt.Errorf("close kafka reader %s: %w", r.split, err)
	}
	return nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// GroupPosition returns the offset the group committed for a partition
// assigned to this member in the current generation.
func (s *Source) GroupPosition(split string) (source.Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off, ok := s.assigned[split]
	if !ok || off < 0 {
		return source.Position{}, false
	}
	return source.Position{Offset: off}, true
}

// AutoCommitDisabled reports whether offsets are committed only through
// Commit (by completed checkpoints), never as records are handed out.
func (s *Source) AutoCommitDisabled() bool { return s.cfg.DisableAutoCommit }
