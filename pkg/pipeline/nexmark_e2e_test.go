package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

// TestNexmarkSourceFormats runs the nexmark source in both formats through
// the same steps into JSON lines: the pre-decoded rows are exactly the rows
// decoded from the events' JSON, and every bid (46 in 50 events) arrives.
func TestNexmarkSourceFormats(t *testing.T) {
	run := func(format string) []string {
		out := filepath.Join(t.TempDir(), "out.jsonl")
		doc := fmt.Sprintf(`
name: nexmark
http: {listen: "off"}
checkpoint: {enabled: false}
sources:
  - name: events
    type: nexmark
    nexmark: {seed: 4, events: 5000, splits: 3, format: %s}
    eventTime: {field: dateTime}
    decode:
      fields:
        - {name: event_type, type: int, required: true}
        - {name: dateTime, type: timestamp, format: epoch_ms, required: true}
        - {name: auction, path: bid.auction, type: int}
        - {name: price, path: bid.price, type: int}
        - {name: url, path: bid.url, type: string}
steps:
  - filter: 'event_type == 2'
sinks:
  - {name: results, input: events, type: file, file: {path: %q}}
`, format, out)
		cfg, err := pipeline.Parse([]byte(doc), nil)
		require.NoError(t, err)
		require.Empty(t, pipeline.Check(cfg))
		job, err := pipeline.Build(cfg, pipeline.Options{})
		require.NoError(t, err)
		rt, err := operator.New(job, nil, nil)
		require.NoError(t, err)
		require.NoError(t, rt.Run(context.Background()))
		data, err := os.ReadFile(out)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		slices.Sort(lines) // three splits interleave in no fixed order
		return lines
	}
	js := run("json")
	require.Len(t, js, 5000*46/50)
	require.Contains(t, js[0], `"url":"https://www.nexmark.com/`)
	require.Equal(t, js, run("native"))
}
