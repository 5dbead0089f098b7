// Package expression compiles and evaluates the expr-lang expressions of a
// pipeline over the fields of a record schema: filter, map and flatMap
// steps, window alert conditions and Parquet sink filters all use it.
// Expressions in the native subset run on the record values directly,
// without boxing them (native.go); the others, and rows the native path
// does not answer, run on expr's VM, whose results the native path always
// equals (FuzzNativeMatchesVM). Rule conditions have their own compiled
// closures in pkg/rules, with three-valued logic over rule signals.
package expression
