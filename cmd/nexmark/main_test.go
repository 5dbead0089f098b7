package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/source/nexmark"
)

// TestWritesTheSourceEvents: the files hold, split by split and line by
// line, the JSON the source delivers for the same settings.
func TestWritesTheSourceEvents(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"-events", "301", "-seed", "5", "-splits", "2", "-rate", "50", "-base-time", "2020-01-01T00:00:00Z", "-out", dir}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	g, err := nexmark.New(nexmark.Config{Events: 301, Seed: 5, Splits: 2, Rate: 50, BaseTime: mustTime(t, "2020-01-01T00:00:00Z")})
	require.NoError(t, err)
	for s, want := range []int{151, 150} {
		data, err := os.ReadFile(filepath.Join(dir, "events-"+strconv.Itoa(s)+".jsonl"))
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		require.Len(t, lines, want)
		var e nexmark.Event
		for k, line := range lines {
			g.Event(g.EventNumber(s, int64(k)), &e)
			require.Equal(t, string(nexmark.AppendJSON(nil, &e)), line)
		}
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temporary file is left behind")

	stdout.Reset()
	require.Equal(t, 0, run([]string{"-events", "3", "-out", "-"}, &stdout, &stderr))
	require.Equal(t, 3, strings.Count(stdout.String(), "\n"))
}

func TestRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-out", "x"},
		{"-events", "5"},
		{"-events", "5", "-out", "-", "-splits", "2"},
		{"-events", "5", "-out", "x", "-base-time", "soon"},
		{"-events", "5", "-out", "x", "-rate", "-1"},
	} {
		var stdout, stderr bytes.Buffer
		require.NotEqual(t, 0, run(args, &stdout, &stderr), "%v", args)
		require.NotEmpty(t, stderr.String())
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return tm
}
