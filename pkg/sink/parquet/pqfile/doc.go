// Package pqfile writes one Parquet file whose progress can be checkpointed
// and resumed, so exactly-once output does not force a new file per
// checkpoint.
//
// parquet-go only exposes a file's metadata once the file is closed, so this
// package owns the file layout itself: "PAR1", row groups, footer. Each row
// group is encoded by parquet-go as a complete in-memory Parquet file; its
// column chunks are copied to the output and their offsets rebased, and the
// row group metadata is kept in a list. Close writes the footer from that
// list.
//
// A checkpoint (Writer.Snapshot) therefore only has to make the written bytes
// durable and record three small things: how many bytes of the output are
// durable, the row group list, and the rows buffered for the next row group
// (the tail). Resume continues the same file from such a State after a
// restart, discarding whatever was written after the checkpoint. File size is
// thus independent of the checkpoint interval; the tail is bounded by
// Options.MaxTailBytes, which keeps the State small.
//
// The output is an Output: LocalOutput appends to a local file; a multipart
// upload fits the same interface because Output.Sync may leave a trailing
// part that is too small to upload yet, which then travels in the State.
//
// Publishing the finished file (rename, completing a multipart upload) is
// not done here: it belongs to the sink, after the checkpoint manifest is
// written.
package pqfile
