package operator

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the runtime's Prometheus metrics; names are documented in docs/metrics.md.
type metrics struct {
	sourceRecords  *prometheus.CounterVec
	sourceBytes    *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	lateRecords    *prometheus.CounterVec
	splitWM        *prometheus.GaugeVec
	splitWMDelay   *prometheus.GaugeVec
	splitIdle      *prometheus.GaugeVec
	splitFailing   *prometheus.GaugeVec
	readFailures   *prometheus.CounterVec
	stageWMDelay   *prometheus.GaugeVec
	stageIn        *prometheus.CounterVec
	streamRecords  *prometheus.CounterVec
	windowFirings  *prometheus.CounterVec
	windowUpdates  *prometheus.CounterVec
	windowRetract  *prometheus.CounterVec
	stateKeys      *prometheus.GaugeVec
	alerts         *prometheus.CounterVec
	alertErrors    *prometheus.CounterVec
	sinkErrors     *prometheus.CounterVec
	ruleDryRuns    *prometheus.CounterVec
	splitsAssigned *prometheus.GaugeVec
	backpressured  *prometheus.CounterVec
	// Per-sender watermarks (senders.go).
	senders          *prometheus.GaugeVec
	sendersForgotten *prometheus.CounterVec
	// Keyed state (state.go).
	stateBytes   *prometheus.GaugeVec
	stateBudget  *prometheus.GaugeVec
	stateLimited *prometheus.GaugeVec
	stateExpired *prometheus.CounterVec
	stateRefused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		sourceRecords: f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_source_records_total", Help: "Records read per source split."}, []string{"source", "split"}),
		sourceBytes:   f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_source_bytes_total", Help: "Bytes read per source split."}, []string{"source", "split"}),
		deadLetters:   f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_deadletter_records_total", Help: "Records sent to the dead-letter stream, by reason."}, []string{"source", "reason"}),
		lateRecords:   f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_late_records_total", Help: "Records behind the watermark by more than the allowed lateness, sent to the late stream."}, []string{"stage"}),
		splitWM:       f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_split_watermark_seconds", Help: "Event-time watermark of a split (Unix seconds)."}, []string{"source", "split"}),
		splitWMDelay:  f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_split_watermark_delay_seconds", Help: "Wall clock minus the split's watermark."}, []string{"source", "split"}),
		splitIdle:     f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_split_idle", Help: "1 when a split is idle and does not hold the watermark back."}, []string{"source", "split"}),
		splitFailing:  f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_split_failing", Help: "1 while a split's reads fail and are retried: it holds the watermark back and is never idle."}, []string{"source", "split"}),
		readFailures:  f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_source_read_failures_total", Help: "Reads of a split that failed (broker, shard or endpoint unavailable) and were retried."}, []string{"source", "split"}),
		stageWMDelay:  f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_stage_watermark_delay_seconds", Help: "Wall clock minus a subtask's watermark."}, []string{"stage", "subtask"}),
		stageIn:       f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_stage_records_in_total", Help: "Records received by a keyed stage."}, []string{"stage"}),
		streamRecords: f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_stream_records_total", Help: "Records emitted per stream."}, []string{"stream"}),
		windowFirings: f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_window_firings_total", Help: "Window results emitted when the watermark passed the window end."}, []string{"stage"}),
		windowUpdates: f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_window_updates_total", Help: "Updated window results caused by late records within the allowed lateness."}, []string{"stage"}),
		windowRetract: f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_window_retractions_total", Help: "Rows withdrawing an earlier window result: the old values of an update, or a session replaced by a merge."}, []string{"stage"}),
		stateKeys:     f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_state_keys", Help: "Keys holding window state per subtask."}, []string{"stage", "subtask"}),
		alerts:        f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_alerts_total", Help: "Alerts raised."}, []string{"stage", "alert", "severity"}),
		alertErrors:   f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_alert_errors_total", Help: "Alert conditions that failed to evaluate."}, []string{"stage", "alert"}),
		sinkErrors:    f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_sink_errors_total", Help: "Failed sink writes."}, []string{"sink"}),
		ruleDryRuns:   f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_rule_dry_run_alerts_total", Help: "State changes of dry-run rules: logged, not published."}, []string{"stage"}),
		backpressured: f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_task_backpressured_seconds_total",
			Help: "Time a task (split or subtask) waited for the sink writers or the downstream subtasks it feeds: backpressure."}, []string{"task"}),
		splitsAssigned: f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_source_splits", Help: "Splits being read per source."}, []string{"source"}),

		senders:          f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_watermark_senders", Help: "Senders a split's per-sender watermark tracks."}, []string{"source", "split"}),
		stateBytes:       f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_state_bytes", Help: "Estimated bytes of a subtask's keyed state."}, []string{"stage", "subtask"}),
		stateBudget:      f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_state_budget_bytes", Help: "A subtask's share of its stage's stateBudget."}, []string{"stage", "subtask"}),
		stateLimited:     f.NewGaugeVec(prometheus.GaugeOpts{Name: "streamd_state_limited", Help: "1 while a subtask's state holds its budget and records of new keys are refused."}, []string{"stage", "subtask"}),
		stateExpired:     f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_state_expired_keys_total", Help: "Keys dropped by a stage's state TTL."}, []string{"stage"}),
		stateRefused:     f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_state_refused_records_total", Help: "Records refused because their stage's state held its budget; they go to the dead letters (state_limit)."}, []string{"stage"}),
		sendersForgotten: f.NewCounterVec(prometheus.CounterOpts{Name: "streamd_watermark_senders_forgotten_total", Help: "Senders a split's per-sender watermark forgot, by reason: ttl (too far behind the newest sender), limit (past maxSenders, furthest behind first), idle (silent for ten idle timeouts)."}, []string{"source", "split", "reason"}),
	}
}
