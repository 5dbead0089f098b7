// Package discard is a sink that drops every row it is given, counting
// them: Flink's blackhole connector. Benchmarks use it to measure a
// pipeline without the cost of an output format, and pipelines use it to
// consume a stream they only want metrics of.
package discard
