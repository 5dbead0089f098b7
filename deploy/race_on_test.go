//go:build race

package deploy_test

// raceEnabled reports whether the tests run with the race detector; the
// end-to-end test then builds the daemon with it too, which reuses the
// race-instrumented packages the test run has already compiled and checks
// the daemon for data races while it runs.
const raceEnabled = true
