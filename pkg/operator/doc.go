// Package operator is streamd's dataflow runtime. It runs one goroutine per
// source split (read, decode, stateless steps, watermark generation, keyBy)
// and one goroutine per keyed subtask (window operator, threshold alerts),
// connected by channels that carry batches with watermarks in-band. A
// subtask owns its state outright: no locks on the record path.
//
// Keys map to a fixed number of key groups (hash mod K) and key groups to
// subtasks (Flink's contiguous ranges), so state can later be snapshotted,
// restored and rescaled per key group.
package operator
