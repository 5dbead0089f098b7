// Package kinesis writes rows to an Amazon Kinesis data stream as JSON
// objects (record.AppendJSON), with PutRecords batches of at most 500
// records and 5 MiB.
//
// The partition key is the text of a configured field, so rows with equal
// keys land on the same shard; without a field, keys rotate through a
// per-writer counter, spreading rows over all shards. A PutRecords call that
// partly fails (FailedRecordCount > 0) is followed by calls carrying only
// the failed entries, after jittered exponential backoff, up to MaxRetries
// times; then Write returns an error naming the entries' error code. Write
// returns once every row of the batch is accepted by Kinesis, so delivery is
// at least once. Retried entries may land after later entries of the same
// key: order per key is kept only when no entry fails.
//
// Metrics: streamd_kinesis_put_records_total{sink,stream} counts records
// accepted, streamd_kinesis_put_failures_total{sink,stream} entries
// refused in a PutRecords response (each attempt counted).
package kinesis
