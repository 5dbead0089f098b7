package operator

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/window"
)

// Defaults of the per-sender watermark's bounds.
const (
	// DefaultSenderTTL is how far (ms of event time) a sender may fall
	// behind the split's newest event time before it is forgotten: an
	// hour, so one dead device holds event time back by at most that.
	DefaultSenderTTL = int64(time.Hour / time.Millisecond)
	// DefaultMaxSenders is how many senders a split tracks at most (about
	// 100 bytes each).
	DefaultMaxSenders = 100_000
)

// Reasons a sender is forgotten, as metric labels.
const (
	senderForgetTTL   = "ttl"
	senderForgetLimit = "limit"
	senderForgetIdle  = "idle"
)

// senderSet is the per-sender state of one split's watermark: each
// sender's newest event time, bounded in event time (a sender further
// than ttl behind the newest sender is forgotten) and in count (past max
// senders, those furthest behind are forgotten first). A forgotten sender
// no longer holds the watermark back — exactly what its silence would do
// with an idle timeout — and comes back as a new sender if it sends again;
// its records behind the watermark are late, counted and routed as any.
type senderSet struct {
	byID map[string]*sender
	ttl  int64
	max  int
	// newest is the newest event time of any sender, forgotten ones too.
	newest int64
	// forgotten counts senders forgotten, by reason; the split task
	// publishes them as streamd_watermark_senders_forgotten_total.
	ttlC, limitC, idleC prometheus.Counter
	count               prometheus.Gauge
	log                 *zap.Logger
	warned              bool
	// peak is the most senders tracked since the map was last rebuilt.
	peak int
}

type sender struct {
	maxTime int64
	seen    time.Time
}

func newSenderSet(cfg WatermarkConfig) *senderSet {
	s := &senderSet{byID: make(map[string]*sender), ttl: cfg.SenderTTL, max: cfg.MaxSenders, newest: window.MinWatermark, log: zap.NewNop()}
	if s.ttl <= 0 {
		s.ttl = DefaultSenderTTL
	}
	if s.max <= 0 {
		s.max = DefaultMaxSenders
	}
	return s
}

// bind attaches the split's metrics and logger.
func (s *senderSet) bind(m *metrics, log *zap.Logger, source, split string) {
	s.ttlC = m.sendersForgotten.WithLabelValues(source, split, senderForgetTTL)
	s.limitC = m.sendersForgotten.WithLabelValues(source, split, senderForgetLimit)
	s.idleC = m.sendersForgotten.WithLabelValues(source, split, senderForgetIdle)
	s.count = m.senders.WithLabelValues(source, split)
	if log != nil {
		s.log = log
	}
}

// observe records a record of sender id at event time t.
func (s *senderSet) observe(id string, t int64, now time.Time) {
	sd := s.byID[id]
	if sd == nil {
		sd = &sender{maxTime: t}
		s.byID[strings.Clone(id)] = sd
		s.peak = max(s.peak, len(s.byID))
	}
	sd.maxTime = max(sd.maxTime, t)
	sd.seen = now
	s.newest = max(s.newest, t)
}

// trim forgets the senders furthest behind while more than max are
// tracked, down to nine tenths of max so the sort is paid once per many
// new senders rather than once per record.
func (s *senderSet) trim() {
	if len(s.byID) <= s.max {
		return
	}
	type entry struct {
		id string
		t  int64
	}
	all := make([]entry, 0, len(s.byID))
	for id, sd := range s.byID {
		all = append(all, entry{id, sd.maxTime})
	}
	slices.SortFunc(all, func(a, b entry) int { return cmp.Or(cmp.Compare(a.t, b.t), strings.Compare(a.id, b.id)) })
	n := len(all) - s.max*9/10
	for _, e := range all[:n] {
		delete(s.byID, e.id)
	}
	if s.limitC != nil {
		s.limitC.Add(float64(n))
	}
	if !s.warned {
		s.warned = true
		s.log.Warn("too many senders for the per-sender watermark; forgetting those furthest behind (they stop holding the watermark back)",
			zap.Int("maxSenders", s.max), zap.Int("forgotten", n))
	}
	s.compact()
}

// low returns the minimum newest event time over the senders that hold
// the watermark back and how many do, forgetting on the way those the
// bounds let go. idle > 0 excludes senders silent that long (wall clock)
// and forgets them after ten times that.
func (s *senderSet) low(now time.Time, idle time.Duration) (int64, int) {
	low, active := int64(window.MaxWatermark), 0
	var byTTL, byIdle int
	for id, sd := range s.byID {
		// Unsigned: two event times can be further apart than int64 holds.
		if uint64(s.newest)-uint64(sd.maxTime) > uint64(s.ttl) {
			delete(s.byID, id)
			byTTL++
			continue
		}
		if idle > 0 && now.Sub(sd.seen) >= idle {
			if now.Sub(sd.seen) >= 10*idle {
				delete(s.byID, id) // long gone
				byIdle++
			}
			continue
		}
		active++
		low = min(low, sd.maxTime)
	}
	if byTTL > 0 && s.ttlC != nil {
		s.ttlC.Add(float64(byTTL))
	}
	if byIdle > 0 && s.idleC != nil {
		s.idleC.Add(float64(byIdle))
	}
	if byTTL+byIdle > 0 {
		s.compact()
	}
	if s.count != nil {
		s.count.Set(float64(len(s.byID)))
	}
	return low, active
}

// compact copies the map to a new one when it holds far fewer senders
// than at its peak: Go maps do not shrink.
func (s *senderSet) compact() {
	if s.peak <= 1024 || len(s.byID) >= s.peak/4 {
		return
	}
	m := make(map[string]*sender, len(s.byID))
	for id, sd := range s.byID {
		m[id] = sd
	}
	s.byID, s.peak = m, len(m)
}
