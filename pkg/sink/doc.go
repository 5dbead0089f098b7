// Package sink defines where streamd writes results: a Sink makes one Writer
// per producing task, so writers need no locks and files are written in
// parallel. Implementations live in subpackages (parquet, jsonl, …).
package sink
