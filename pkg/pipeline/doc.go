// Package pipeline owns the pipeline file: its schema (Config), loading with
// environment-variable expansion, validation that names every problem by its
// YAML path and line, and building a runnable dataflow from it.
//
// Source and sink kinds come from a Registry: each kind registers its type
// name, its settings block, defaults, validation and construction.
// DefaultRegistry holds the built-in kinds (connectors.go); NewRegistry is
// empty, for tests and programs with kinds of their own. A Config remembers
// the registry that parsed it (Parse and Load use the default one), and
// Validate, Check (streamd validate) and Build (streamd run) reach every
// connector through that registry, so validate and run cannot disagree.
package pipeline
