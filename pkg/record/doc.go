// Package record owns streamd's in-memory data model: typed values, schemas
// and batches of rows.
//
// Records travel through the dataflow in batches. A Batch stores the values
// of all its rows in one flat slice and the bytes of all its strings in one
// arena, so decoding, keying and windowing a batch costs a handful of
// allocations per batch rather than several per record. Consumers that keep
// a string beyond the life of the batch (a new key in keyed state, a value
// held by a first/last aggregate) must copy it with strings.Clone.
//
// This is a leaf package: it imports nothing else from streamd.
package record
