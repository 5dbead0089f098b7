// Command nexmark writes the events of streamd's Nexmark source
// (pkg/source/nexmark) as JSON-lines files, so the queries of
// examples/nexmark, other engines and SQL tools (DuckDB's read_json) read
// exactly the events a `type: nexmark` source with the same settings
// produces. main only wires: flags → generator → files.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/streamd/streamd/pkg/source/nexmark"
)

const usage = `nexmark — write Nexmark events as JSON lines

Usage:
  nexmark -events N [-seed S] [-splits K] [-rate R] [-base-time T] -out DIR
    writes DIR/events-0.jsonl … DIR/events-<K-1>.jsonl (split s holds events s, s+K, …)
  nexmark -events N [-seed S] [-rate R] [-base-time T] -out -
    writes the events to standard output

The settings mean what the nexmark block of a pipeline file means
(docs/pipeline.md): the same settings give the same events.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nexmark", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { _, _ = fmt.Fprint(stderr, usage) }
	var cfg nexmark.Config
	var baseTime, out string
	fs.Int64Var(&cfg.Events, "events", 0, "events over all splits (required)")
	fs.Int64Var(&cfg.Seed, "seed", 0, "seed")
	fs.IntVar(&cfg.Splits, "splits", 1, "files (splits)")
	fs.Float64Var(&cfg.Rate, "rate", nexmark.DefaultRate, "events per second of event time")
	fs.StringVar(&baseTime, "base-time", nexmark.DefaultBaseTime.Format(time.RFC3339), "event time of event 0 (RFC 3339)")
	fs.StringVar(&out, "out", "", "output directory, or - for standard output")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.Events <= 0 || out == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	t, err := time.Parse(time.RFC3339Nano, baseTime)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "nexmark: -base-time: %v\n", err)
		return 2
	}
	cfg.BaseTime = t
	if out == "-" && cfg.Splits != 1 {
		_, _ = fmt.Fprintln(stderr, "nexmark: -out - writes one split; use a directory for -splits > 1")
		return 2
	}
	g, err := nexmark.New(cfg)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "nexmark: %v\n", err)
		return 1
	}
	if out == "-" {
		if _, err := g.WriteJSONLines(stdout, 0); err != nil {
			_, _ = fmt.Fprintf(stderr, "nexmark: %v\n", err)
			return 1
		}
		return 0
	}
	paths, err := g.WriteFiles(out)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "nexmark: %v\n", err)
		return 1
	}
	for _, p := range paths {
		_, _ = fmt.Fprintln(stderr, p)
	}
	return 0
}
