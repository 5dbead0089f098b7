// Package kinesis reads an Amazon Kinesis data stream with the AWS SDK for
// Go v2, one split per shard.
//
// # Shards and resharding
//
// A split's ID is its shard ID and its Parents are the shard's parent and
// adjacent parent. Shards are listed with ListShards at start, every
// ShardSyncInterval and whenever a shard is read to its end. A shard is
// handed out (by Splits, then by Watch) only when each of its parents has
// been read to its end by this source, or is no longer in the stream
// (expired past retention), so records of one partition key are delivered
// in order across splits and merges: everything of a parent before
// anything of its child. A closed shard's reader returns
// source.ErrEndOfSplit once GetRecords returns no next iterator, on the
// Read call after the shard's last messages; the source then marks the
// shard finished and assigns the children whose parents are all finished.
// A shard descending from a shard this source read starts at its oldest
// record even under LATEST, so no record written after a reshard is missed.
// Shards are never revoked. Finished shards are remembered for the life of
// the source; after a restart, the runtime must tell finished shards apart
// by their checkpoints (see below).
//
// # Positions
//
// Position.Sequence is the message's own sequence number and Offset is 0.
// The position to resume from, the one passed to Open, is the position of
// the last message processed; the reader continues AFTER_SEQUENCE_NUMBER,
// so that message is not delivered again. (Kinesis has no way to name the
// next record's sequence number before it is read.) Records aggregated by
// the Kinesis Producer Library are split into their user records, whose
// Sequence is "<sequence>:<index>"; resuming from such a position starts
// AT_SEQUENCE_NUMBER and skips the sub-records up to that index. Without a
// position a shard starts at StartPosition: TRIM_HORIZON, LATEST or
// AT_TIMESTAMP.
//
// # Messages
//
// Value is the record data, Key the partition key, Timestamp the approximate
// arrival time in milliseconds. A record that starts with the KPL magic but
// fails to decode or to match its md5 trailer is delivered as one raw
// message, which the decoder then sends to dead letters. Message bytes stay
// valid until the next Read.
//
// # Limits
//
// Each reader leaves PollInterval between its GetRecords calls (Kinesis
// allows 5 per second per shard, shared by all consumers) and waits with
// jittered exponential backoff when Kinesis refuses a call for throughput
// (ProvisionedThroughputExceededException, LimitExceededException,
// throttling); an expired iterator is replaced by one after the last
// record read. Metrics: streamd_kinesis_behind_latest_seconds{stream,shard},
// streamd_kinesis_throttles_total{stream}, streamd_kinesis_records_total{stream}.
package kinesis
