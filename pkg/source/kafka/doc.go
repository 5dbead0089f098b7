// Package kafka is a source.Source of Kafka topics. A split is one partition,
// "topic/partition"; positions are Kafka offsets.
//
// With a consumer group (Config.Group) the source is source.Dynamic: every
// group generation delivers the partitions newly assigned to this member and
// revokes the ones that moved to another, so several streamd instances share
// the partitions of a topic. Without a group every partition of the topics is
// read by this instance (Splits lists them) and the set never changes.
//
// Start positions: an explicit start position (from a checkpoint) wins; else
// the group's committed offset; else Config.StartOffset (earliest, latest, a
// timestamp, or per-partition offsets).
//
// Offsets are committed to the group so standard lag tooling
// (kafka-consumer-groups, Burrow, exporters) sees the consumer. The runtime
// commits checkpointed positions through Source.Commit. Until it does,
// the source also commits by itself every CommitInterval the offsets of the
// messages it has handed out; a crash can then skip messages handed out but
// not yet processed, so turn DisableAutoCommit on once checkpoints commit.
// A partition revoked by a rebalance may be read by both members for a
// moment: delivery across rebalances is at least once.
//
// All Kafka compression codecs (gzip, snappy, lz4, zstd) are decoded.
package kafka
