// Package rules owns the live rule engine: rule documents (JSON or YAML,
// identified by ID and version), their validation and compilation, and
// the evaluation of rules over keyed, event-timed records.
//
// A rule selects records, keys them, derives named signals per key (the
// latest value of a tag, or an aggregate over a sliding event-time window),
// and evaluates condition groups over the signals. Each group proposes a
// ranked state while it fires; the highest-ranked firing group decides the
// rule's state for the key, and an Alert is emitted only when that state
// changes. Durations ("above 80 for 5 minutes") are measured in event time
// and complete on watermark advance, so the result does not depend on how
// records and watermarks are spaced.
//
// The Engine is single-threaded and deterministic: one subtask owns one
// engine and calls Apply between records, which is how a rule update
// broadcast in-band takes effect at the same logical point on every
// subtask. Lateness is handled before records reach the engine (the
// pipeline's allowed-lateness settings route late records to a side
// output); the engine evaluates at the event times it is given.
//
// Expressions use expr-lang/expr, compiled once per rule version against a
// typed environment. The common shapes (comparisons of fields or signals
// with literals, in-lists, and/or/not) are evaluated by closures built
// from the syntax tree without the VM or any allocation; the rest runs on
// the expr VM. Selects of the form `field == "c"` or `field in [...]` index
// rules by value, so a record is only tested against the rules that can
// match it.
//
// This is a leaf package: it imports only pkg/record from streamd.
package rules
