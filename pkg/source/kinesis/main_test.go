package kinesis

import (
	"os"
	"testing"

	"github.com/streamd/streamd/internal/testenv"
)

// kinesisLocal serves every test of the package.
var kinesisLocal testenv.SharedKinesis

func endpoint(t testing.TB) string { return kinesisLocal.Endpoint(t) }

func TestMain(m *testing.M) { os.Exit(kinesisLocal.Main(m)) }
