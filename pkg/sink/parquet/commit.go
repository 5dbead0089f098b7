package parquet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/record"
)

// Partition commit: once the watermark of every task of the sink has
// passed the end of a time partition plus Config.PartitionCommit's allowed
// lateness, every file of that partition is complete, and the sink writes
// a manifest (manifestName) and then the empty _SUCCESS marker (the Hive
// and Spark convention) into the partition directory.
//
// Each writer keeps partStats for the partitions it wrote to: rows, event
// time bounds, late rows and its completed files. When its watermark
// passes a partition's end plus lateness it rolls that partition's open
// file, so all its rows are in completed files. In transactional mode the
// stats and the watermark travel in the prepared state, and the sink acts
// on them only in Commit, after the checkpoint is durable and the state's
// files are published: the markers are published exactly once, like the
// data files. Without checkpoints the writer hands them over on Tick,
// after its rolled files were published.
//
// The markers are written idempotently: a partition whose _SUCCESS exists
// is not written again (a restart that restores an earlier checkpoint
// redoes the same commit), and the manifest, whose content depends only on
// the committed states, is written before _SUCCESS.

const (
	successName  = "_SUCCESS"
	manifestName = "_manifest.json"
)

// partStats is what one task wrote to one partition.
type partStats struct {
	// EndMs is the exclusive end of the partition's time bucket.
	EndMs int64
	Rows  int64
	// Late counts rows that arrived after this task had closed the
	// partition (its watermark had passed EndMs plus the lateness), but
	// before the partition was committed: they are in its files.
	Late         int64
	MinMs, MaxMs int64
	// Closed is set once the task's watermark passed EndMs plus lateness.
	Closed bool
	// Files are the task's completed files of the partition.
	Files []partFileInfo
	// Sources are, by source split, the positions of the source records
	// the partition's rows came from (for rows straight from a source).
	Sources map[originKey]posRange
}

// originKey names a source split.
type originKey struct{ Source, Split string }

// posRange is a range of decimal source positions, both ends included.
type posRange struct{ First, Last string }

// lessPos orders decimal positions (Kafka offsets, Kinesis sequence
// numbers) without parsing them: a shorter one is smaller.
func lessPos(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// addOrigin widens the partition's range of o's split to cover o.
func (p *partStats) addOrigin(o *record.Origin) {
	k := originKey{o.Source, o.Split}
	r, ok := p.Sources[k]
	if !ok {
		if p.Sources == nil {
			p.Sources = make(map[originKey]posRange)
		}
		p.Sources[k] = posRange{o.First, o.Last}
		return
	}
	if lessPos(o.First, r.First) {
		r.First = o.First
	}
	if lessPos(r.Last, o.Last) {
		r.Last = o.Last
	}
	p.Sources[k] = r
}

// partFileInfo is one completed file in a partition manifest.
type partFileInfo struct {
	Seq        uint64
	Rows, Size int64
}

func (p *partStats) add(ms int64) {
	if p.Rows == 0 || ms < p.MinMs {
		p.MinMs = ms
	}
	if p.Rows == 0 || ms > p.MaxMs {
		p.MaxMs = ms
	}
	p.Rows++
	if p.Closed {
		p.Late++
	}
}

func (p *partStats) clone() partStats {
	c := *p
	c.Files = slices.Clone(p.Files)
	c.Sources = maps.Clone(p.Sources)
	return c
}

// taskCommit is the committed view of one task: its watermark and its
// partitions, from the last state the sink committed (or, without
// checkpoints, the last Tick).
type taskCommit struct {
	watermark int64
	parts     map[string]partStats
	// live is set for tasks with a writer; only they hold partitions back.
	live bool
}

// commitEnabled reports whether the sink commits partitions.
func (s *Sink) commitEnabled() bool { return s.cfg.PartitionCommit.Enabled }

// lateness is the allowed lateness in milliseconds.
func (s *Sink) lateness() int64 { return s.cfg.PartitionCommit.AllowedLateness.Milliseconds() }

// registerTask makes a task live for partition commits.
func (s *Sink) registerTask(task string) {
	if !s.commitEnabled() {
		return
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	tc := s.commits[task]
	if tc == nil {
		tc = &taskCommit{watermark: math.MinInt64}
		s.commits[task] = tc
	}
	tc.live = true
}

// retireTask stops a closed writer's task from holding partitions back.
func (s *Sink) retireTask(task string) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if tc := s.commits[task]; tc != nil {
		tc.live = false
	}
}

// noteFinished adds a file that recovery finished for a task without a
// writer to that task's committed partition, so the manifest lists it.
func (s *Sink) noteFinished(task, dir string, f partFileInfo) {
	if !s.commitEnabled() {
		return
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if tc := s.commits[task]; tc != nil {
		if p, ok := tc.parts[dir]; ok && !slices.ContainsFunc(p.Files, func(x partFileInfo) bool { return x.Seq == f.Seq }) {
			p.Files = append(slices.Clone(p.Files), f)
			tc.parts[dir] = p
		}
	}
}

// isMarked reports whether a partition was committed by this process.
func (s *Sink) isMarked(dir string) bool {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	return s.marked[dir]
}

// advance records a task's committed watermark and partitions and commits
// every partition that all live tasks are past.
func (s *Sink) advance(ctx context.Context, task string, watermark int64, parts map[string]partStats) error {
	if !s.commitEnabled() {
		return nil
	}
	s.commitMu.Lock()
	tc := s.commits[task]
	if tc == nil {
		tc = &taskCommit{watermark: math.MinInt64}
		s.commits[task] = tc
	}
	tc.watermark = max(tc.watermark, watermark)
	tc.parts = parts
	w := int64(math.MaxInt64)
	live := 0
	for _, c := range s.commits {
		if c.live {
			w = min(w, c.watermark)
			live++
		}
	}
	due := map[string]*partitionManifest{}
	if live > 0 {
		for _, t := range slices.Sorted(maps.Keys(s.commits)) {
			for dir, p := range s.commits[t].parts {
				if s.marked[dir] || p.EndMs > math.MaxInt64-s.lateness() || p.EndMs+s.lateness() > w {
					continue
				}
				m := due[dir]
				if m == nil {
					m = &partitionManifest{Partition: dir, endMs: p.EndMs}
					due[dir] = m
				}
				m.merge(t, p)
			}
		}
	}
	// Claimed before the I/O, so concurrent callers commit a partition once.
	for dir := range due {
		s.marked[dir] = true
	}
	s.commitMu.Unlock()

	var errs []error
	for _, dir := range slices.Sorted(maps.Keys(due)) {
		if err := s.commitPartition(ctx, due[dir]); err != nil {
			errs = append(errs, err)
			s.commitMu.Lock()
			delete(s.marked, dir) // the next call tries again
			s.commitMu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// partitionManifest is the content of a partition's manifest file.
type partitionManifest struct {
	Partition    string         `json:"partition"`
	Start        string         `json:"start"`
	End          string         `json:"end"`
	Files        []manifestFile `json:"files"`
	Rows         int64          `json:"rows"`
	MinEventTime string         `json:"minEventTime,omitempty"`
	MaxEventTime string         `json:"maxEventTime,omitempty"`
	// LateRecords arrived after their task had closed the partition but
	// were still in time for the commit; they are in the files.
	LateRecords int64 `json:"lateRecords"`
	// SourceOffsets are, by source split, the positions of the first and
	// last source records of the reads the partition's rows came from,
	// when the sink is fed by a source (not by a stage).
	SourceOffsets []manifestSource `json:"sourceOffsets,omitempty"`
	sources       map[originKey]posRange

	endMs, minMs, maxMs int64
	hasRows             bool
}

// manifestSource is one split's range of positions in a manifest.
type manifestSource struct {
	Source string `json:"source"`
	Split  string `json:"split"`
	First  string `json:"first"`
	Last   string `json:"last"`
}

type manifestFile struct {
	Name  string `json:"name"`
	Rows  int64  `json:"rows"`
	Bytes int64  `json:"bytes"`
}

func (m *partitionManifest) merge(task string, p partStats) {
	for _, f := range p.Files {
		m.Files = append(m.Files, manifestFile{Name: fileName(task, f.Seq), Rows: f.Rows, Bytes: f.Size})
	}
	m.Rows += p.Rows
	m.LateRecords += p.Late
	for k, r := range p.Sources {
		if m.sources == nil {
			m.sources = make(map[originKey]posRange)
		}
		cur, ok := m.sources[k]
		if !ok {
			m.sources[k] = r
			continue
		}
		if lessPos(r.First, cur.First) {
			cur.First = r.First
		}
		if lessPos(cur.Last, r.Last) {
			cur.Last = r.Last
		}
		m.sources[k] = cur
	}
	if p.Rows > 0 {
		if !m.hasRows || p.MinMs < m.minMs {
			m.minMs = p.MinMs
		}
		if !m.hasRows || p.MaxMs > m.maxMs {
			m.maxMs = p.MaxMs
		}
		m.hasRows = true
	}
}

func msTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// markerTimeout bounds the writes of one partition commit.
const markerTimeout = 30 * time.Second

// commitPartition writes a partition's manifest, then its _SUCCESS. The
// files it covers are published already, so the markers are written even
// when the caller is being stopped, within markerTimeout.
func (s *Sink) commitPartition(ctx context.Context, m *partitionManifest) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markerTimeout)
	defer cancel()
	done, err := s.dest.exists(ctx, m.Partition, successName)
	if err != nil {
		return fmt.Errorf("commit partition %s: %w", m.Partition, err)
	}
	if done {
		return nil // committed before this restart
	}
	slices.SortFunc(m.Files, func(a, b manifestFile) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	if m.Files == nil {
		m.Files = []manifestFile{}
	}
	bucket := s.bucketMs()
	m.Start, m.End = msTime(m.endMs-bucket), msTime(m.endMs)
	if m.hasRows {
		m.MinEventTime, m.MaxEventTime = msTime(m.minMs), msTime(m.maxMs)
	}
	m.SourceOffsets = nil
	for _, k := range slices.SortedFunc(maps.Keys(m.sources), func(a, b originKey) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.Split, b.Split)
	}) {
		r := m.sources[k]
		m.SourceOffsets = append(m.SourceOffsets, manifestSource{Source: k.Source, Split: k.Split, First: r.First, Last: r.Last})
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("commit partition %s: %w", m.Partition, err)
	}
	body = append(body, '\n')
	if err := s.dest.putMarker(ctx, m.Partition, manifestName, body); err != nil {
		return fmt.Errorf("commit partition %s: %w", m.Partition, err)
	}
	if err := s.dest.putMarker(ctx, m.Partition, successName, nil); err != nil {
		return fmt.Errorf("commit partition %s: %w", m.Partition, err)
	}
	s.metrics.partitions.Inc()
	s.metrics.commitDelay.Observe(float64(time.Now().UnixMilli()-m.endMs) / 1000)
	s.logger.Debug("committed parquet partition", zap.String("partition", m.Partition),
		zap.Int("files", len(m.Files)), zap.Int64("rows", m.Rows))
	return nil
}

// bucketMs is the width of the sink's time partitions.
func (s *Sink) bucketMs() int64 {
	segs, _ := parseTemplate(s.cfg.Partition)
	var b int64
	for _, sg := range segs {
		switch sg.kind {
		case segDate:
			b = finer(b, msPerDay)
		case segHour:
			b = finer(b, msPerHour)
		case segMinute:
			b = finer(b, msPerMinute)
		}
	}
	return b
}

// checkCommitTemplate reports a partition template whose time tokens do
// not name one time bucket per directory: {hour} without {date} repeats
// the same directory every day, so it could never be complete.
func checkCommitTemplate(template string) error {
	segs, err := parseTemplate(template)
	if err != nil {
		return err
	}
	var date, hour, minute bool
	for _, sg := range segs {
		switch sg.kind {
		case segDate:
			date = true
		case segHour:
			hour = true
		case segMinute:
			minute = true
		}
	}
	switch {
	case !date:
		return fmt.Errorf("partitionCommit needs {date} in the partition template, got %q", template)
	case minute && !hour:
		return fmt.Errorf("partitionCommit needs {hour} with {minute} in the partition template, got %q", template)
	}
	return nil
}
