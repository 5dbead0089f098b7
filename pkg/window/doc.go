// Package window owns event-time windowing: window assigners (tumbling,
// sliding, session), aggregate functions with their accumulators and
// sketches, and the keyed window operator that one subtask runs over its key
// groups. It is a leaf package: single-threaded, no goroutines besides a
// snapshot's background encoding, no I/O; the runtime in package operator
// drives it with batches and watermarks through the keyed-operator
// contract (package keyed), which Operator implements.
package window
