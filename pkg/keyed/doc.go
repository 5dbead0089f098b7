// Package keyed is the contract between the runtime (package operator) and
// the keyed operators a stage's subtasks run: the window operator
// (package window) and the rule engine's adapter (in package operator).
//
// A keyed operator owns the state of the key groups its subtask owns. It
// processes batches, advances event time, and snapshots its state per key
// group — the unit of restore and of rescaling — so a checkpoint taken at
// one parallelism restores at another by handing each new subtask the key
// groups it now owns. The checkpoint coordinator and the restore path deal
// with operators only through Operator; they know no concrete kind.
//
// The package sits beside pkg/window and pkg/rules rather than under
// pkg/operator: the window operator implements the contract and so imports
// it, and package window is a library below the runtime — a package inside
// pkg/operator imported by pkg/window would invert that layering. For the
// same reason the operator's output (Output) and the watermark bounds live
// here; package window keeps its names for them as aliases.
package keyed
