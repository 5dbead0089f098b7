// Package jsonl is the JSON-lines sink: one JSON object per row, written to
// standard output or appended to a file. It serves alerts, dead letters and
// debugging, where a person or a log shipper reads the output line by line.
//
// Rows are encoded by hand from the schema, without reflection: field names
// are escaped once per writer, strings with a JSON-correct escaper,
// timestamps as RFC 3339 with microseconds, floats in their shortest form
// and NaN or infinities as null. Writers of all tasks share the output; each
// batch is encoded into the writer's own buffer and written with one locked
// write, so lines of different tasks never interleave.
package jsonl
