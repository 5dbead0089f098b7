package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

// TestExactlyOnceKeepsNestedFields sends struct and list fields through a
// sink whose rows are held until their checkpoint completes: the held rows
// (values and schema) go through the checkpoint's encoding, and the file
// gets every row with its nested values as they were read.
func TestExactlyOnceKeepsNestedFields(t *testing.T) {
	out := t.TempDir()
	const n, t0 = 50, 1767243600000
	var in []byte
	var want []string
	for i := range n {
		ts := int64(t0 + i*1000)
		in = fmt.Appendf(in, `{"ts":%d,"geo":{"lat":%d.5,"extra":1},"tags":["t%d",null]}`+"\n", ts, i, i)
		want = append(want, fmt.Sprintf(`{"ts":"%s","geo":{"lat":%d.5},"tags":["t%d",null]}`,
			time.UnixMilli(ts).UTC().Format("2006-01-02T15:04:05.000000Z"), i, i))
	}
	require.NoError(t, os.WriteFile(filepath.Join(out, "in.jsonl"), in, 0o600))
	doc := `
name: nested-held
http: {listen: "off"}
checkpoint: {dir: "${OUT}/checkpoints"}
sources:
  - name: lines
    type: file
    file: {paths: ["${OUT}/in.jsonl"]}
    decode:
      fields:
        - {name: ts, type: timestamp, format: epoch_ms, required: true}
        - {name: geo, type: struct, fields: [{name: lat, type: float}]}
        - {name: tags, type: list, items: {type: string}}
    eventTime: {field: ts}
sinks:
  - {name: raw, input: lines, type: file, file: {path: "${OUT}/raw.jsonl"}, delivery: exactlyOnce}
`
	cfg, err := pipeline.Parse([]byte(doc), func(k string) (string, bool) { return out, k == "OUT" })
	require.NoError(t, err)
	require.Empty(t, pipeline.Check(cfg))
	job, err := pipeline.Build(cfg, pipeline.Options{})
	require.NoError(t, err)
	rt, err := operator.New(job, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, rt.Run(ctx))
	got, err := os.ReadFile(filepath.Join(out, "raw.jsonl"))
	require.NoError(t, err)
	require.Equal(t, want, strings.Split(strings.TrimSuffix(string(got), "\n"), "\n"))
}
