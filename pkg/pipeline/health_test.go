package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The probes' limits are pipeline settings: they reach the job, and a
// negative one is refused naming the field.
func TestHealthSettings(t *testing.T) {
	t.Chdir(t.TempDir())
	doc := `name: h
http: {listen: "off"}
health: {readyGrace: 2m, stallTimeout: 45m}
sources:
  - {name: gen, type: generator, decode: {fields: [{name: v, path: value, type: float}]}}
sinks:
  - {name: out, input: gen, type: stdout}
`
	cfg, err := Parse([]byte(doc), nil)
	require.NoError(t, err)
	job, err := Build(cfg, Options{})
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, job.FailingGrace)
	require.Equal(t, 45*time.Minute, job.StallTimeout)

	bad, err := Parse([]byte(strings.Replace(doc, "readyGrace: 2m", "readyGrace: -1s", 1)), nil)
	if err == nil {
		err = Check(bad)
	}
	require.ErrorContains(t, err, "health.readyGrace")
}
