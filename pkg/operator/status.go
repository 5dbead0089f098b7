package operator

import (
	"sort"
	"strings"
	"time"
)

// Status is a point-in-time view of the running pipeline for /v1/status.
type Status struct {
	Pipeline string `json:"pipeline"`
	Ready    bool   `json:"ready"`
	// NotReady says why Ready is false, one reason per line (see
	// Runtime.NotReady).
	NotReady []string        `json:"notReady,omitempty"`
	Splits   []SplitStatus   `json:"splits"`
	Subtasks []SubtaskStatus `json:"subtasks"`
	// HeldBackBy names the non-idle split with the lowest watermark: the
	// one holding event time back.
	HeldBackBy string `json:"heldBackBy,omitempty"`
}

// SplitStatus describes one split being read.
type SplitStatus struct {
	Source    string     `json:"source"`
	Split     string     `json:"split"`
	Position  int64      `json:"position"`
	Records   int64      `json:"records"`
	Watermark *time.Time `json:"watermark,omitempty"`
	Idle      bool       `json:"idle"`
	// Backpressure is the share of the last second the split spent
	// waiting for the writers and subtasks it feeds (0 to 1), and
	// WaitingOn what it waited on ("sink:<name>", "stage:<name>").
	Backpressure float64 `json:"backpressure"`
	WaitingOn    string  `json:"waitingOn,omitempty"`
	// Failing is set while the split's reads fail and are retried (its
	// broker, shard or endpoint is unreachable): it holds the watermark
	// back and is never idle. FailingSince and Error say since when and
	// the last failure.
	Failing      bool       `json:"failing"`
	FailingSince *time.Time `json:"failingSince,omitempty"`
	Error        string     `json:"error,omitempty"`
}

// SubtaskStatus describes one keyed subtask.
type SubtaskStatus struct {
	Stage     string     `json:"stage"`
	Index     int        `json:"index"`
	Watermark *time.Time `json:"watermark,omitempty"`
	Keys      int64      `json:"keys"`
	// StateBytes estimates the keyed state's size; StateLimited is true
	// while it holds the stage's state budget and records of new keys go
	// to the dead letters (state_limit).
	StateBytes   int64 `json:"stateBytes"`
	StateLimited bool  `json:"stateLimited,omitempty"`
	// Backpressure and WaitingOn: as for splits.
	Backpressure float64 `json:"backpressure"`
	WaitingOn    string  `json:"waitingOn,omitempty"`
}

func wmTime(wm int64) *time.Time {
	if wm == minWM || wm == maxWM {
		return nil
	}
	t := time.UnixMilli(wm).UTC()
	return &t
}

// Status returns the current status.
func (r *Runtime) Status() Status {
	st := Status{Pipeline: r.job.Name}
	if err := r.NotReady(); err != nil {
		st.NotReady = strings.Split(err.Error(), "\n")
	} else {
		st.Ready = true
	}
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	low := int64(maxWM)
	for _, s := range r.splits {
		wm := s.watermark.Load()
		ss := SplitStatus{Source: s.source, Split: s.split, Position: s.position.Load(), Records: s.records.Load(), Watermark: wmTime(wm), Idle: s.idle.Load()}
		ss.Backpressure, ss.WaitingOn = s.bp.snapshot()
		if f := s.failure.Load(); f != nil {
			since := f.since.UTC()
			ss.Failing, ss.FailingSince, ss.Error = true, &since, f.err
		}
		st.Splits = append(st.Splits, ss)
		if !ss.Idle && wm < low {
			low, st.HeldBackBy = wm, s.source+"/"+s.split
		}
	}
	sort.Slice(st.Splits, func(i, j int) bool {
		if st.Splits[i].Source != st.Splits[j].Source {
			return st.Splits[i].Source < st.Splits[j].Source
		}
		return st.Splits[i].Split < st.Splits[j].Split
	})
	for _, s := range r.subtasks {
		sub := SubtaskStatus{Stage: s.stage, Index: s.index, Watermark: wmTime(s.watermark.Load()), Keys: s.keys.Load(), StateBytes: s.stateBytes.Load(), StateLimited: s.stateLimited.Load()}
		sub.Backpressure, sub.WaitingOn = s.bp.snapshot()
		st.Subtasks = append(st.Subtasks, sub)
	}
	return st
}
