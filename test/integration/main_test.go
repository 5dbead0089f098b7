package integration_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/streamd/streamd/internal/testenv"
)

// TestMain checks that the pipelines, clients and servers of the tests
// leave no goroutine behind. Idle keep-alive connections of the HTTP
// clients (AWS SDK, webhook) are pooled by design and ignored.
//
// It also fails the run when a test left checkpoint state in the package
// directory (testenv.RunWithoutLeftovers).
func TestMain(m *testing.M) {
	code := testenv.RunWithoutLeftovers(m)
	if code == 0 {
		if err := goleak.Find(
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
