package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/retry"
	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/keyed"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
)

// RestoreState is what the runtime starts from after a restore
// (Runtime.Restore): the checkpoint's split positions and its state by
// stage and key group, whatever the parallelism that wrote it.
type RestoreState struct {
	// Splits are the checkpoint's split states by "source/split".
	Splits map[string]checkpoint.SplitState
	// Groups holds each stage's state blobs by key group.
	Groups map[string]map[uint16][]byte
	// Watermarks holds, by stage and key group, the watermark of the
	// subtask that wrote the key group's blob.
	Watermarks map[string]map[uint16]int64
	// StageWatermarks is each stage's event time at the checkpoint: every
	// subtask resumes from it, whether or not its key groups hold state,
	// so a record late before the checkpoint is late after it too.
	StageWatermarks map[string]int64
	// taken marks splits whose restored position a reader has used.
	mu    sync.Mutex
	taken map[string]bool
}

// Restore loads the newest complete checkpoint (or the one with id, if id
// > 0) and arranges for the runtime to start from it. It returns
// checkpoint.ErrNoCheckpoint when there is none to restore.
func (c *Coordinator) Restore(ctx context.Context, id int64) (*checkpoint.Manifest, error) {
	start := time.Now()
	var m *checkpoint.Manifest
	err := withRetries(ctx, func() error {
		var err error
		if id > 0 {
			m, err = checkpoint.Load(ctx, c.cfg.Store, checkpoint.ManifestKey(c.cfg.Prefix, id))
		} else {
			m, err = checkpoint.Latest(ctx, c.cfg.Store, c.cfg.Prefix)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if keyGroups := c.rt.KeyGroups(); m.KeyGroups != keyGroups {
		return nil, fmt.Errorf("restore checkpoint %d: it has %d key groups, the pipeline %d; key groups cannot change", m.ID, m.KeyGroups, keyGroups)
	}
	for i, ss := range m.Sinks {
		if ss.Key == "" {
			continue
		}
		data, err := c.read(ctx, ss.Key)
		if err != nil {
			return nil, fmt.Errorf("restore checkpoint %d: %w", m.ID, err)
		}
		if int64(len(data)) != ss.Size {
			return nil, fmt.Errorf("restore checkpoint %d: sink state %s has %d bytes, the manifest says %d", m.ID, ss.Key, len(data), ss.Size)
		}
		m.Sinks[i].State = data
	}
	rs := &RestoreState{Splits: make(map[string]checkpoint.SplitState), Groups: make(map[string]map[uint16][]byte), Watermarks: make(map[string]map[uint16]int64), StageWatermarks: make(map[string]int64)}
	for _, s := range m.Splits {
		rs.Splits[s.Source+"/"+s.Split] = s
	}
	for _, st := range m.Stages {
		groups, wms := make(map[uint16][]byte), make(map[uint16]int64)
		stageWM := int64(keyed.MinWatermark)
		for _, b := range st.Blobs {
			stageWM = max(stageWM, b.Watermark)
			data, err := c.read(ctx, b.Key)
			if err != nil {
				return nil, fmt.Errorf("restore checkpoint %d: %w", m.ID, err)
			}
			if int64(len(data)) != b.Size {
				return nil, fmt.Errorf("restore checkpoint %d: state %s has %d bytes, the manifest says %d", m.ID, b.Key, len(data), b.Size)
			}
			for _, g := range b.Groups {
				groups[g.KeyGroup] = data[g.Offset : g.Offset+g.Length]
				wms[g.KeyGroup] = b.Watermark
			}
		}
		rs.Groups[st.Stage], rs.Watermarks[st.Stage], rs.StageWatermarks[st.Stage] = groups, wms, stageWM
	}
	if err := c.rt.Restore(rs); err != nil {
		return nil, fmt.Errorf("restore checkpoint %d: %w", m.ID, err)
	}
	c.restored = m
	if _, err := c.read(ctx, committedKey(c.cfg.Prefix, m.ID)); err == nil {
		c.restoredCommitted = true
	}
	c.mu.Lock()
	c.nextID = m.ID + 1
	c.mu.Unlock()
	c.last.Store(m.ID)
	c.m.lastID.Set(float64(m.ID))
	c.m.restore.Set(time.Since(start).Seconds())
	c.m.restoredID.Set(float64(m.ID))
	c.log.Info("restoring checkpoint", zap.Int64("id", m.ID), zap.Int("splits", len(m.Splits)), zap.Duration("load", time.Since(start)))
	return m, nil
}

// read reads an object, retrying transient failures: a restore should
// ride out a flaky store rather than fail the start.
func (c *Coordinator) read(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := withRetries(ctx, func() error {
		var err error
		data, err = c.readOnce(ctx, key)
		return err
	})
	return data, err
}

// withRetries runs fn up to 6 times with growing pauses, stopping at ErrNotFound.
func withRetries(ctx context.Context, fn func() error) error {
	return retry.Do(ctx, 6, retry.Exponential(50*time.Millisecond, 2*time.Second, 0.2), func(err error) bool {
		return errors.Is(err, store.ErrNotFound) || errors.Is(err, checkpoint.ErrNoCheckpoint)
	}, fn)
}

func (c *Coordinator) readOnce(ctx context.Context, key string) ([]byte, error) {
	r, err := c.cfg.Store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return data, nil
}

// RecoverSinks hands each transactional sink the states of the restored
// checkpoint (nothing when starting fresh).
func (c *Coordinator) RecoverSinks(ctx context.Context) error {
	states := make(map[string]map[string][]byte)
	if m := c.restored; m != nil {
		for _, s := range m.Sinks {
			if states[s.Sink] == nil {
				states[s.Sink] = make(map[string][]byte)
			}
			states[s.Sink][s.Task] = s.State
		}
	}
	for _, sk := range c.rt.Sinks() {
		tx, ok := sk.Sink.(sink.Transactional)
		if !ok {
			continue
		}
		if cr, ok := sk.Sink.(sink.CommittedRecoverer); ok && c.restoredCommitted {
			if err := cr.RecoverCommitted(ctx, states[sk.Name]); err != nil {
				return fmt.Errorf("recover sink %q: %w", sk.Name, err)
			}
			continue
		}
		if cc, ok := sk.Sink.(sink.CheckpointCommitter); ok && c.restored != nil {
			if err := cc.RecoverCheckpoint(ctx, c.restored.ID, states[sk.Name], c.restored.Marks[sk.Name]); err != nil {
				return fmt.Errorf("recover sink %q: %w", sk.Name, err)
			}
			continue
		}
		if err := tx.Recover(ctx, states[sk.Name]); err != nil {
			return fmt.Errorf("recover sink %q: %w", sk.Name, err)
		}
	}
	return nil
}

// FinishedSplits lists a source's splits the checkpoint records as read
// to their end; none without a restore (rs nil).
func (rs *RestoreState) FinishedSplits(src string) []string {
	if rs == nil {
		return nil
	}
	var ids []string
	for _, s := range rs.Splits {
		if s.Source == src && s.Finished {
			ids = append(ids, s.Split)
		}
	}
	return ids
}

// IsFinished reports whether the checkpoint records the split as read to its end.
func (rs *RestoreState) IsFinished(src, split string) bool {
	if rs == nil {
		return false
	}
	s, ok := rs.Splits[src+"/"+split]
	return ok && s.Finished
}

// TakeStartPosition returns where a split resumes after a restore, once:
// the restored position is only valid for the split's first reader.
func (rs *RestoreState) TakeStartPosition(src string, split string) (*source.Position, int64, bool) {
	if rs == nil {
		return nil, keyed.MinWatermark, false
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	s, ok := rs.Splits[src+"/"+split]
	if !ok || rs.taken[src+"/"+split] {
		return nil, keyed.MinWatermark, false
	}
	if rs.taken == nil {
		rs.taken = make(map[string]bool)
	}
	rs.taken[src+"/"+split] = true
	pos := s.Next
	if pos.Offset < 0 && pos.Sequence == "" {
		// A reader that had not read anything of a relative start
		// (earliest, latest, a time) recorded no position.
		return nil, s.Watermark, true
	}
	return &pos, s.Watermark, true
}
