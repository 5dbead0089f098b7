// Package pipeline owns the pipeline file: its schema (Config), loading with
// environment-variable expansion, validation that names every problem by its
// YAML path and line, and building a runnable dataflow from it.
package pipeline
