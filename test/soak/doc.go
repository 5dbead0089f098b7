// Package soak holds the long-running test of a daemon under sustained
// backpressure: a slow sink must slow the sources, not grow memory.
//
// The short form (2 minutes) runs with the test suite; the long form is
// STREAMD_SOAK=10m (any Go duration), which scripts/test.sh runs on its
// own, after the suite, when CI is set:
//
//	STREAMD_SOAK=10m go test -count=1 -v -timeout 20m ./test/soak
package soak
