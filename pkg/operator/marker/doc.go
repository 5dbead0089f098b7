// Package marker holds the types of aligned markers that the runtime
// (package operator) hands to marker handlers such as the checkpoint
// coordinator (package coordinator): the marker itself, what a split
// reports as a marker passes it, and the view of a subtask a handler gets
// once a marker is aligned there.
//
// They live apart from the runtime so that a handler can be written, and
// tested, without importing it: the runtime imports its handlers. Package
// operator re-exports them under their old names (operator.Marker,
// operator.MarkerHandler, ...), so code written against the runtime is
// unchanged. The injection and alignment of markers stay in the runtime.
package marker
