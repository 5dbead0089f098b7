// Package connectortest is a connector added to streamd from outside the
// pipeline and runtime packages: a "sequence" source that emits numbered
// JSON records and a "memory" sink that keeps the rows written to it.
// Register adds both kinds to a pipeline.Registry; the package's test loads
// a pipeline file that uses them, validates it and runs it through the real
// runtime. Nothing in pkg/pipeline or pkg/operator names these kinds, which
// is what the test proves: a connector is its own package plus a
// registration.
//
// The kinds are for tests (the memory sink grows without bound unless
// maxRows caps it) and for reading as the smallest complete example of the
// registry API. The package is internal, rather than a public helper next
// to pkg/pipeline, so that it promises nothing to programs outside the
// module; it sits outside pkg/pipeline so that it can only use what any
// connector package can: the exported Registry, SourceKind and SinkKind.
package connectortest
