// Package control reads rule changes from where rule authors publish them:
// rule files and directories (watched), and a compacted Kafka topic (key =
// rule id, value = the rule, empty value = delete). Each source delivers
// changes to put/del callbacks; the runtime validates them and broadcasts
// them to every subtask at one logical point.
package control

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/filestamp"
	"github.com/streamd/streamd/internal/retry"
	"github.com/streamd/streamd/pkg/rules"
)

// FormatOf guesses a rule document's format: JSON when it starts with '{'.
func FormatOf(data []byte) rules.Format {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		return rules.FormatJSON
	}
	return rules.FormatYAML
}

// DefaultMaxBytes bounds a rule file or control-topic message.
const DefaultMaxBytes = 1 << 20

// Files watches rule files and directories of *.json, *.yaml and *.yml
// files, one rule per file. A file is read only when it changed (size,
// modification time or identity), and a problem is logged once per change,
// not once per poll.
type Files struct {
	Paths []string
	Poll  time.Duration
	Log   *zap.Logger
	// MaxBytes bounds a rule file: a larger one is rejected without being
	// read. Default DefaultMaxBytes.
	MaxBytes int64

	// cache holds the outcome of the last read of each file, by path.
	cache map[string]cachedFile
	// reads counts files read, which tests use to see unchanged files are not.
	reads atomic.Int64
}

// cachedFile is a file's parsed rule (or why it has none) at a stamp.
type cachedFile struct {
	stamp filestamp.Stamp
	rule  *rules.Rule
	sum   [32]byte
	err   error
}

// Load reads every rule now. Bad files are errors: at start, a broken rule
// file should stop the pipeline from starting with a silently smaller set.
func (f *Files) Load() ([]*rules.Rule, error) {
	set, errs := f.scan()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := make([]*rules.Rule, 0, len(set))
	for _, e := range set {
		out = append(out, e.rule)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

type fileRule struct {
	rule *rules.Rule
	file string
	sum  [32]byte
}

func (f *Files) files() ([]string, error) {
	var out []string
	for _, p := range f.Paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("rule files: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("rule files: %w", err)
		}
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".json", ".yaml", ".yml":
				if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
					out = append(out, filepath.Join(p, e.Name()))
				}
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// scan parses every file; rules keyed by id.
func (f *Files) scan() (map[string]fileRule, []error) {
	files, err := f.files()
	if err != nil {
		return nil, []error{err}
	}
	set := make(map[string]fileRule)
	var errs []error
	cache := make(map[string]cachedFile, len(files))
	for _, file := range files {
		c := f.read(file)
		cache[file] = c
		if c.err != nil {
			errs = append(errs, c.err)
			continue
		}
		if prev, dup := set[c.rule.ID]; dup {
			errs = append(errs, fmt.Errorf("rule file %s: rule %q is also defined in %s", file, c.rule.ID, prev.file))
			continue
		}
		set[c.rule.ID] = fileRule{rule: c.rule, file: file, sum: c.sum}
	}
	f.cache = cache // files that disappeared are forgotten
	return set, errs
}

// read returns the cached outcome for file when it did not change, and
// reads and parses it otherwise.
func (f *Files) read(file string) cachedFile {
	stamp, size, err := filestamp.Stat(file)
	if err != nil {
		return cachedFile{err: fmt.Errorf("read rule file %s: %w", file, err)}
	}
	if c, ok := f.cache[file]; ok && c.stamp == stamp {
		return c
	}
	c := cachedFile{stamp: stamp}
	limit := f.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if size > limit {
		c.err = fmt.Errorf("rule file %s: %d bytes, over the limit of %d bytes (rules.maxRuleBytes)", file, size, limit)
		return c
	}
	f.reads.Add(1)
	data, err := readLimited(file, limit)
	if err != nil {
		c.err = fmt.Errorf("read rule file %s: %w", file, err)
		return c
	}
	r, err := rules.Parse(data, FormatOf(data))
	if err != nil {
		c.err = fmt.Errorf("rule file %s: %w", file, err)
		return c
	}
	c.rule, c.sum = r, sha256.Sum256(data)
	return c
}

// readLimited reads at most limit bytes of file, failing when there are
// more (the file grew after it was measured).
func readLimited(file string, limit int64) ([]byte, error) {
	fh, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer func() { _ = fh.Close() }()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("over the limit of %d bytes (rules.maxRuleBytes)", limit)
	}
	return data, nil
}

// Run polls the files and delivers changed, new and removed rules. A file
// that does not parse is reported and leaves its rule as it was.
func (f *Files) Run(ctx context.Context, put func(*rules.Rule) error, del func(string) error) error {
	poll := f.Poll
	if poll <= 0 {
		poll = time.Second
	}
	log := f.Log
	if log == nil {
		log = zap.NewNop()
	}
	known, _ := f.scan()
	// logged holds the problems of the last poll: a problem is logged when
	// it appears, not again while it lasts.
	logged := make(map[string]bool)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		set, errs := f.scan()
		now := make(map[string]bool, len(errs))
		for _, err := range errs {
			now[err.Error()] = true
			if !logged[err.Error()] {
				log.Warn("rule file rejected; the running rule is unchanged", zap.Error(err))
			}
		}
		logged = now
		for id, e := range set {
			if old, ok := known[id]; ok && old.sum == e.sum {
				continue
			}
			if err := put(e.rule); err != nil {
				log.Warn("rule rejected", zap.String("rule", id), zap.String("file", e.file), zap.Error(err))
				continue
			}
			log.Info("rule installed", zap.String("rule", id), zap.Int64("version", e.rule.Version), zap.String("file", e.file))
		}
		for id, old := range known {
			if _, ok := set[id]; ok || fileFailed(errs, old.file) {
				continue
			}
			if err := del(id); err != nil {
				logDeleteError(log, id, err)
				continue
			}
			log.Info("rule deleted", zap.String("rule", id), zap.String("file", old.file))
		}
		// Keep the entries of files that failed, so a fix is seen as a change.
		for id, old := range known {
			if _, ok := set[id]; !ok && fileFailed(errs, old.file) {
				set[id] = old
			}
		}
		known = set
	}
}

func fileFailed(errs []error, file string) bool {
	for _, err := range errs {
		if strings.Contains(err.Error(), file) {
			return true
		}
	}
	return false
}

// Kafka reads a compacted control topic from its beginning, then follows it.
type Kafka struct {
	Brokers []string
	Topic   string
	Log     *zap.Logger
	// MaxBytes bounds a rule message; a larger one is rejected. Default
	// DefaultMaxBytes.
	MaxBytes int64
	// Dialer is optional (TLS/SASL).
	Dialer *kafka.Dialer
}

// Run consumes every partition of the topic until ctx is done.
func (k *Kafka) Run(ctx context.Context, put func(*rules.Rule) error, del func(string) error) error {
	log := k.Log
	if log == nil {
		log = zap.NewNop()
	}
	dialer := k.Dialer
	if dialer == nil {
		dialer = &kafka.Dialer{Timeout: 10 * time.Second}
	}
	var parts []kafka.Partition
	var err error
	bo := retry.Exponential(time.Second, 30*time.Second, 0.2)
	for {
		parts, err = readPartitions(ctx, dialer, k.Brokers, k.Topic)
		if err == nil {
			break
		}
		log.Warn("read rule topic partitions; retrying", zap.String("topic", k.Topic), zap.Error(err))
		if !retry.Wait(ctx, bo.Next()) {
			return nil
		}
	}
	errc := make(chan error, len(parts))
	for _, p := range parts {
		go func(p int) {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers, Topic: k.Topic, Partition: p, MaxWait: 100 * time.Millisecond, Dialer: dialer})
			defer r.Close()
			_ = r.SetOffset(kafka.FirstOffset)
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					errc <- nil
					return
				}
				id := string(m.Key)
				if len(m.Value) == 0 {
					if err := del(id); err != nil {
						logDeleteError(log, id, err)
					}
					continue
				}
				limit := k.MaxBytes
				if limit <= 0 {
					limit = DefaultMaxBytes
				}
				if int64(len(m.Value)) > limit {
					log.Warn("rule from control topic rejected", zap.String("rule", id), zap.Int64("offset", m.Offset),
						zap.Int("bytes", len(m.Value)), zap.Int64("limit", limit), zap.String("setting", "rules.maxRuleBytes"))
					continue
				}
				rule, err := rules.Parse(m.Value, FormatOf(m.Value))
				if err == nil && id != "" && rule.ID != id {
					err = fmt.Errorf("message key %q does not match rule id %q", id, rule.ID)
				}
				if err == nil {
					err = put(rule)
				}
				if err != nil {
					log.Warn("rule from control topic rejected", zap.String("rule", id), zap.Int64("offset", m.Offset), zap.Error(err))
				}
			}
		}(p.ID)
	}
	for range parts {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}

// logDeleteError reports a failed delete. A rule that is not there is
// the normal case of a tombstone read again after a restart (the rule was
// deleted before the checkpoint), not a problem.
func logDeleteError(log *zap.Logger, id string, err error) {
	if errors.Is(err, rules.ErrNoRule) {
		log.Debug("rule to delete is not in force", zap.String("rule", id))
		return
	}
	log.Warn("rule delete failed", zap.String("rule", id), zap.Error(err))
}

func readPartitions(ctx context.Context, d *kafka.Dialer, brokers []string, topic string) ([]kafka.Partition, error) {
	var last error
	for _, b := range brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err != nil {
			last = err
			continue
		}
		parts, err := conn.ReadPartitions(topic)
		_ = conn.Close()
		if err != nil {
			last = err
			continue
		}
		if len(parts) == 0 {
			return nil, fmt.Errorf("topic %q has no partitions", topic)
		}
		return parts, nil
	}
	return nil, fmt.Errorf("read partitions of %q: %w", topic, last)
}
