// Package operatortest proves that a keyed operator kind is added in a
// package of its own: its test defines an operator (a per-key count per
// second) that the runtime runs through StageSpec.NewOperator, with no
// change to pkg/operator or pkg/pipeline.
package operatortest
