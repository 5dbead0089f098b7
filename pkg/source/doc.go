// Package source defines how streamd reads input: a Source discovers splits
// (a Kafka partition, a Kinesis shard, a file, a generator stream) and opens a
// Reader per split. Readers deliver raw messages with their positions; the
// runtime decodes them, tracks watermarks and records positions in
// checkpoints. Implementations live in subpackages (file, generator, …).
package source
