// Package parquet is the Parquet sink: typed columns from the stream's
// schema, Hive-style partition directories rendered from event time and
// record fields, and files that appear under their final name only when
// complete.
//
// Each producing task has its own Writer, which keeps one open file per
// partition. A file is written as a hidden ".part-….parquet.inprogress" file
// in its partition directory, then fsynced and renamed to
// "part-<task>-<seq>.parquet" when it rolls (by size, rows or age) or when
// the writer closes, so query engines never read a partial file. Names come
// from a per-task sequence, never from random ids, so a task's output is
// reproducible.
//
// With an object store as destination (Config.Store, or an s3:// Dir with
// an s3 block) the layout and names are the same below the key prefix.
// Each file is a multipart upload: the bytes the Parquet writer produces
// are sent in parts of Config.PartSize (at least 5 MiB, the S3 minimum),
// and the upload is completed, with If-None-Match so nothing is replaced,
// when the file rolls or the writer closes. Until then nothing is visible
// under the key; a file that cannot be committed has its upload aborted.
//
// Rows are written with parquet-go's low-level row API: every value is placed
// by column index and definition level, without reflection, and the
// partition path of consecutive rows of the same partition is not rendered
// again.
package parquet
