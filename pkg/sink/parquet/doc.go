// Package parquet is the Parquet sink: typed columns from the stream's
// schema, Hive-style partition directories rendered from event time and
// record fields, and files that appear under their final name only when
// complete.
//
// Each producing task has its own Writer, which keeps one open file per
// partition. A file is written as a hidden ".part-….parquet.inprogress" file
// in its partition directory, then fsynced and renamed to
// "part-<task>-<seq>.parquet" when it is published, so query engines never
// read a partial file. Without checkpoints a file is published when it
// rolls (by size, rows or age) and when the writer closes. Names come
// from a per-task sequence, never from random ids, so a task's output is
// reproducible.
//
// With an object store as destination (Config.Store, or an s3:// Dir with
// an s3 block) the layout and names are the same below the key prefix.
// Each file is a multipart upload: the bytes the Parquet writer produces
// are sent in parts of Config.PartSize (at least 5 MiB, the S3 minimum),
// and the upload is completed, with If-None-Match so nothing is replaced,
// when the file is published. Until then nothing is visible
// under the key; a file that cannot be committed has its upload aborted.
// Recovery uses exact-key calls only; uploads no checkpoint knows are found
// through staging intents (see storeDest).
//
// Files are written by pqfile, which can checkpoint a file and resume it
// after a restart, so exactly-once output does not cut a file per
// checkpoint.
//
// # Exactly-once
//
// With checkpoints (Config.Transactional, set by the runtime; the first
// Writer.Prepare switches it on too) the sink is a sink.Transactional and its
// writers are sink.Preparers:
//
//   - Prepare, at a barrier, snapshots every open file (the bytes become
//     durable, the unflushed tail and the multipart upload's pending bytes
//     go into the state) and lists the rolled files not yet published. A
//     rolled file stays listed until a Commit reports it published, so a
//     checkpoint that fails loses nothing. The state is a versioned binary
//     encoding with a CRC-32C (see encodeState).
//   - Rolling closes a file (footer written) but does not publish it.
//   - Commit, after the manifest is durable, publishes the completed files a
//     state lists: rename to "part-<task>-<seq>.parquet" and fsync of the
//     directory, or CompleteUpload. It is idempotent and may run
//     concurrently with the task's writer, also after it closed.
//   - Writer.Close publishes nothing: files a prepared state refers to stay
//     staged (Commit publishes the completed ones, a restart resumes the
//     open ones); files no state refers to are deleted. To publish all
//     output at the end of a pipeline that will not be resumed, the last
//     checkpoint uses Writer.PrepareFinal, which rolls every open file first.
//   - Recover, at start, publishes the completed files of the restored
//     states, cuts the open files back to their checkpointed length (local)
//     or re-attaches to their uploads (object store), and deletes the
//     staged files and aborts the uploads of those tasks that the states do
//     not refer to. NewWriter for the same task continues the open files; those of
//     tasks that get no writer are finished and published by
//     Sink.FinishRecovered (called by the first Prepare and by Sink.Close
//     too).
//
// Rows are written with parquet-go's low-level row API: every value is placed
// by column index and definition level, without reflection, and the
// partition path of consecutive rows of the same partition is not rendered
// again.
package parquet
