// Package steps holds the stateless steps a split task applies to decoded
// records before any keyed stage: filter, map and flatMap, each compiled
// once from expressions (pkg/expression) and applied to a whole batch
// with at most one allocation per batch. They implement operator.Step; the
// runtime knows only that interface.
package steps
