package kinesis

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/streamd/streamd/internal/testenv"
)

// One server serves every test of the package: it takes seconds to start.
var server struct {
	once sync.Once
	s    *testenv.KinesisServer
	err  error
}

func endpoint(t testing.TB) string {
	t.Helper()
	server.once.Do(func() { server.s, server.err = testenv.StartKinesisServer(context.Background()) })
	if server.err != nil {
		testenv.KinesisSkip(t, server.err)
	}
	return server.s.Endpoint
}

func TestMain(m *testing.M) {
	code := m.Run()
	if server.s != nil {
		server.s.Stop()
	}
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
