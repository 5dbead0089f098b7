// Package record owns streamd's in-memory data model: typed values, schemas
// and batches of rows, and the value codec, the binary form of one Value
// (AppendValue, ReadValue) that checkpoints store: window state and the
// rows an exactly-once sink holds.
//
// Records travel through the dataflow in batches. A Batch stores the values
// of all its rows in one flat slice and the bytes of all its strings in one
// arena, so decoding, keying and windowing a batch costs a handful of
// allocations per batch rather than several per record. Consumers that keep
// a string beyond the life of the batch (a new key in keyed state, a value
// held by a first/last aggregate) must copy it with strings.Clone.
//
// Nested fields (TypeStruct, TypeList, TypeMap) travel as one Value whose S
// is the value's canonical JSON text, interned in the batch arena like a
// string. Stages treat it as opaque (keys, comparisons and expressions see
// the text); JSON sinks copy it as it is; only the Parquet sink shreds it
// into the columns of a group. Canonical means, for a field's declared type:
//   - a struct is an object with its members in declared order, null and
//     absent members left out (as Spark's to_json does), {} when all are;
//   - a list is an array, null elements written as null;
//   - a map is an object of its entries in input order, values possibly
//     null, each key once;
//   - scalars are written as AppendJSONValue writes them: strings escaped
//     as AppendJSONString does, shortest round-trip floats, timestamps as
//     RFC 3339 strings with microseconds in UTC.
//
// The decoder checks every value against the declared type before it
// writes this text, so a reader of it can rely on the shape.
//
// The value codec writes a type byte and then the value's payload (see
// codec.go for the layout); AppendFieldType and ReadFieldType do the same
// for the type of a field, nested members included, for states that carry
// their schema. These bytes are part of the checkpoint format, so every
// package that stores values or field types in a checkpoint uses them
// rather than an encoding of its own, and an existing type's bytes never
// change.
//
// This is a leaf package: it imports nothing else from streamd.
package record
