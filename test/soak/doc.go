// Package soak holds the long-running test of a daemon under sustained
// backpressure: a slow sink must slow the sources, not grow memory.
package soak
