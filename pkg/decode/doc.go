// Package decode turns raw messages into typed records.
//
// A JSON decoder is built from the declared fields of a pipeline: each field
// has a name, a path into the JSON document ("meta.sourceId" is the path
// ["meta", "sourceId"]), a type and, for timestamps, a format. Decode parses
// one message and appends exactly one row to a record.Batch, or returns an
// *Error whose Reason is a stable label (invalid_json, missing_field,
// type_mismatch, bad_timestamp, future_timestamp, no_event_time,
// invalid_utf8, record_too_large, key_too_large, empty_record) suitable for
// a metric label and a dead-letter reason.
//
// Hostile input is bounded and accounted for:
//   - every string field, key fields included, must be valid UTF-8: a
//     single bad string would otherwise make a whole Parquet file
//     unreadable. The per-source policy dead-letters such a record
//     (invalid_utf8, the default) or replaces each invalid sequence with
//     U+FFFD and counts the record as repaired;
//   - a message longer than MaxRecordBytes and a key field longer than
//     MaxKeyBytes are dead letters;
//   - an empty message or blank line is counted, then skipped (the
//     default) or dead-lettered (empty_record).
//
// Type rules are strict on purpose, because a silently coerced value is
// harder to debug than a dead letter:
//   - string accepts only JSON strings;
//   - int accepts JSON integers and floats with an integral value;
//   - float accepts any finite JSON number;
//   - bool accepts only true and false;
//   - timestamp accepts epoch numbers (seconds, milliseconds, microseconds,
//     nanoseconds, fractional allowed) and RFC 3339 strings, per TimeFormat,
//     and is stored as microseconds since the epoch. Timestamps before 1970
//     are rejected as bad_timestamp.
//
// Absent optional fields and JSON null decode to record.Null; absent or null
// required fields are missing_field. Error details are valid UTF-8 too.
//
// Nothing needs to be lost: a Raw field keeps the value at its path, of any
// JSON type, as its JSON text in a string column (nested objects and arrays
// whole), and Config.ExtrasField collects the top-level keys no field reads
// into a JSON object column.
//
// The decoder is built for the hot path: a well-formed message is decoded
// in one pass over its bytes, without a tree (fast.go): the declared keys
// are matched as they are spelled where the previous message had them,
// strings are scanned eight bytes at a time for their end and validated as
// UTF-8 only when they hold a byte >= 0x80, numbers are parsed while their
// grammar is checked, undeclared values are skipped, and each string is
// copied once, into the batch arena. Anything unusual is decoded again by
// the full decoder (a reused fastjson parser), whose rows and errors the
// fast path reproduces exactly (FuzzFastMatchesFull). Field values are
// staged so a failing record leaves the batch untouched, and decoding
// costs no allocation per record once buffers have grown.
//
// Why not a faster JSON library: on the 200-byte line-monitoring data point
// (BenchmarkDecodeLineMonitoring, about 1.7 M records per CPU-second with
// the fast path on the 2-core development machine), minio/simdjson-go takes
// 2.4–2.6 µs to build its tape for one message, bytedance/sonic's
// ast.Searcher 2.2–2.5 µs to find the seven paths, and fastjson 0.6–0.9 µs
// to parse it into a tree, before any value is extracted: all slower than
// the fast path's 0.6 µs for the whole record.
package decode
