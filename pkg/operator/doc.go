// Package operator is streamd's dataflow runtime. It runs one goroutine per
// source split (read, decode, stateless steps, watermark generation, keyBy)
// and one goroutine per keyed subtask (window operator, threshold alerts),
// connected by channels that carry batches with watermarks in-band. A
// subtask owns its state outright: no locks on the record path.
//
// Keys map to a fixed number of key groups (hash mod K) and key groups to
// subtasks (Flink's contiguous ranges), so state is snapshotted, restored
// and rescaled per key group.
//
// A subtask runs a keyed operator (package keyed): the window operator,
// the rule engine's adapter (ruleOperator), or what the stage's
// NewOperator makes. The checkpoint coordinator
// and the restore path use only that contract: a subtask's snapshot is a
// blob per key group, and a restored subtask is handed the blobs of the
// key groups it owns at the new parallelism, then told the restore is
// complete. A rule engine files each key under the key group the exchange
// routes its records by and writes the rule set into every owned key
// group's blob, so its state rescales as window state does.
//
// The runtime injects and aligns markers (marker.go); what they are, and
// the handler interface, are in package marker. The checkpoint coordinator
// is package coordinator: it sees the runtime through coordinator.Runtime,
// which checkpointView implements (checkpointing.go), and the runtime
// hands it every marker that passes a task. The runtime reads the barrier
// a task sees (coordinator.Request: its ID, whether it stops the split)
// and starts from what a restore hands it (coordinator.RestoreState); the
// tasks' side of a checkpoint — preparing writers, the final states of
// tasks that ended (lifecycle.go) — stays here. CheckpointConfig,
// Coordinator, Marker, MarkerHandler, SplitCut and SubtaskContext are
// aliases of those packages' types.
//
// The stateless steps a split task applies (filter, map, flatMap) are
// package steps, over the expressions of package expression; the runtime
// sees them as Step.
package operator
