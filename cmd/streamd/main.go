// Command streamd runs stream-processing pipelines described by a YAML
// pipeline file. main only wires: flags → config → components → run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/streamd/streamd/internal/admin"
	"github.com/streamd/streamd/internal/version"
	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

const usage = `streamd — stream processing as one static binary

Usage:
  streamd run --config pipeline.yaml [--log-level info] [--listen addr] [--probe-listen addr] [--from ID | --fresh]
  streamd validate --config pipeline.yaml [--check-connectivity]
  streamd checkpoints list --config pipeline.yaml
  streamd checkpoints inspect --config pipeline.yaml [--id ID]
  streamd version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		_, _ = fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "checkpoints":
		return cmdCheckpoints(args[1:], stdout, stderr)
	case "version":
		_, _ = fmt.Fprintf(stdout, "streamd %s (revision %s, %s)\n", version.Version, version.Revision, runtime.Version())
		return 0
	case "-h", "--help", "help":
		_, _ = fmt.Fprint(stdout, usage)
		return 0
	}
	_, _ = fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return 2
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "pipeline file")
	connectivity := fs.Bool("check-connectivity", false, "also reach every broker, stream, bucket and directory the pipeline uses")
	maxBytes := fs.Int64("max-config-bytes", pipeline.DefaultMaxFileBytes, "refuse a pipeline file larger than this")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" {
		_, _ = fmt.Fprintln(stderr, "validate: --config is required")
		return 2
	}
	cfg, err := pipeline.LoadLimit(*cfgPath, nil, *maxBytes)
	if err == nil {
		if ps := pipeline.Check(cfg); len(ps) > 0 {
			err = ps
		}
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: invalid pipeline:\n%v\n", *cfgPath, err)
		return 1
	}
	for _, w := range pipeline.Warnings(cfg) {
		_, _ = fmt.Fprintf(stderr, "%s: warning: %v\n", *cfgPath, w)
	}
	if *connectivity {
		job, err := pipeline.Build(cfg, pipeline.Options{})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err = pipeline.CheckConnectivity(ctx, job)
			cancel()
		}
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "%s: connectivity check failed:\n%v\n", *cfgPath, err)
			return 1
		}
	}
	_, _ = fmt.Fprintf(stdout, "%s: pipeline %q is valid\n", *cfgPath, cfg.Name)
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "pipeline file")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	listen := fs.String("listen", "", "admin HTTP address; overrides http.listen in the pipeline file")
	probeListen := fs.String("probe-listen", "", "address of /healthz, /readyz and /metrics; overrides http.probeListen")
	maxBytes := fs.Int64("max-config-bytes", pipeline.DefaultMaxFileBytes, "refuse a pipeline file larger than this")
	from := fs.Int64("from", 0, "restore this checkpoint or savepoint ID instead of the newest")
	fresh := fs.Bool("fresh", false, "start from the configured positions, ignoring checkpoints")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" {
		_, _ = fmt.Fprintln(stderr, "run: --config is required")
		return 2
	}
	logger, err := newLogger(*level, stderr)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "run: %v\n", err)
		return 2
	}
	defer func() { _ = logger.Sync() }()

	cfg, err := pipeline.LoadLimit(*cfgPath, nil, *maxBytes)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: invalid pipeline:\n%v\n", *cfgPath, err)
		return 1
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamd_build_info", Help: "Build information; always 1."})
	prometheus.WrapRegistererWith(prometheus.Labels{"version": version.Version, "revision": version.Revision, "goversion": runtime.Version()}, reg).
		MustRegister(buildInfo)
	buildInfo.Set(1)
	job, err := pipeline.Build(cfg, pipeline.Options{Logger: logger, Registry: reg})
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: invalid pipeline:\n%v\n", *cfgPath, err)
		return 1
	}
	// Unreachable brokers, missing topics, streams or buckets and wrong
	// credentials are reported now, each naming its component, not at the
	// first flush.
	checkCtx, cancelCheck := context.WithTimeout(context.Background(), 30*time.Second)
	err = pipeline.CheckConnectivity(checkCtx, job)
	cancelCheck()
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: startup check failed:\n%v\n", *cfgPath, err)
		return 1
	}
	if job.Checkpoint != nil {
		job.Checkpoint.RestoreFrom = *from
		if *fresh {
			job.Checkpoint.RestoreFrom = -1
		}
	} else if *from != 0 || *fresh {
		_, _ = fmt.Fprintln(stderr, "run: --from and --fresh need a checkpoint block in the pipeline file")
		return 2
	}
	rt, err := operator.New(job, logger, reg)
	if err != nil {
		logger.Error("build pipeline", zap.Error(err))
		return 1
	}

	addr := cfg.HTTP.Listen
	if *listen != "" {
		addr = *listen
	}
	var srv *admin.Server
	if addr != "off" {
		acfg := adminConfig(cfg.HTTP)
		acfg.Listen = addr
		if *probeListen != "" {
			acfg.ProbeListen = *probeListen
		}
		acfg.Gatherer, acfg.Registerer = reg, reg
		acfg.Ready, acfg.Status = rt.Ready, func() any { return rt.Status() }
		if m := rt.Rules(); m != nil {
			acfg.Rules = m
		}
		if c := rt.Coordinator(); c != nil {
			acfg.Savepoint = func(ctx context.Context) (int64, error) { return c.Trigger(ctx, true, false) }
		}
		srv, err = admin.New(acfg, logger)
		if err != nil {
			logger.Error("start admin http", zap.Error(err))
			return 1
		}
		go func() {
			if err := srv.Serve(); err != nil {
				logger.Error("admin http stopped", zap.Error(err))
			}
		}()
		logger.Info("admin http listening", zap.String("addr", srv.Addr()), zap.String("probeAddr", srv.ProbeAddr()),
			zap.Bool("tls", acfg.TLS != nil), zap.Bool("writeToken", acfg.Auth.TokenFile != ""), zap.Bool("openReads", acfg.Auth.OpenReads))
	}

	// SIGTERM/SIGINT stop the sources; Run then drains what was read through
	// the windows and sinks, closes files and returns.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger.Info("starting pipeline", zap.String("pipeline", cfg.Name), zap.String("version", version.Version))
	runErr := rt.Run(ctx)

	// Shutdown order: the pipeline has drained; now stop serving metrics.
	if srv != nil {
		shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(shCtx)
		cancel()
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		logger.Error("pipeline stopped with an error", zap.Error(runErr))
		return 1
	}
	logger.Info("pipeline stopped")
	return 0
}

// adminConfig maps the pipeline file's http block to the admin server's
// settings; the caller adds the listen address and the runtime hooks.
func adminConfig(h pipeline.HTTPConfig) admin.Config {
	c := admin.Config{
		ProbeListen:  h.ProbeListen,
		MaxRuleBytes: int64(h.MaxRuleBytes),
		Auth: admin.Auth{
			TokenFile:     h.Auth.TokenFile,
			ReadTokenFile: h.Auth.ReadTokenFile,
			OpenReads:     h.Auth.OpenReads,
			WriteClients:  h.Auth.WriteClients,
		},
	}
	if t := h.TLS; t != nil {
		c.TLS = &admin.TLSConfig{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile}
	}
	return c
}

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("parse log level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), lvl)
	return zap.New(core), nil
}

func cmdCheckpoints(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "inspect") {
		_, _ = fmt.Fprint(stderr, "checkpoints: want list or inspect\n\n"+usage)
		return 2
	}
	fs := flag.NewFlagSet("checkpoints "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "pipeline file")
	id := fs.Int64("id", 0, "checkpoint ID (inspect; default the newest)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := pipeline.Load(*cfgPath, nil)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: invalid pipeline:\n%v\n", *cfgPath, err)
		return 1
	}
	job, err := pipeline.Build(cfg, pipeline.Options{})
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: invalid pipeline:\n%v\n", *cfgPath, err)
		return 1
	}
	if job.Checkpoint == nil {
		_, _ = fmt.Fprintf(stderr, "%s: the pipeline has no checkpoint block\n", *cfgPath)
		return 1
	}
	prefix := job.Checkpoint.Prefix
	if prefix == "" {
		prefix = "pipelines/" + job.Name
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := job.Checkpoint.Store
	if args[0] == "list" {
		infos, err := checkpoint.List(ctx, st, prefix)
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "checkpoints list: %v\n", err)
			return 1
		}
		_, _ = fmt.Fprintf(stdout, "%-8s %-10s %-25s %8s %s\n", "ID", "KIND", "CREATED", "SPLITS", "STATE BYTES")
		for _, in := range infos {
			m, err := checkpoint.Load(ctx, st, in.Manifest)
			if err != nil {
				_, _ = fmt.Fprintf(stdout, "%-8d unreadable: %v\n", in.ID, err)
				continue
			}
			kind := "checkpoint"
			if m.Savepoint {
				kind = "savepoint"
			}
			var size int64
			for _, s := range m.Stages {
				for _, b := range s.Blobs {
					size += b.Size
				}
			}
			_, _ = fmt.Fprintf(stdout, "%-8d %-10s %-25s %8d %d\n", m.ID, kind, m.Created.Format(time.RFC3339), len(m.Splits), size)
		}
		return 0
	}
	var m *checkpoint.Manifest
	if *id > 0 {
		m, err = checkpoint.Load(ctx, st, checkpoint.ManifestKey(prefix, *id))
	} else {
		m, err = checkpoint.Latest(ctx, st, prefix)
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "checkpoints inspect: %v\n", err)
		return 1
	}
	data, err := m.Encode()
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "checkpoints inspect: %v\n", err)
		return 1
	}
	_, _ = fmt.Fprintln(stdout, string(data))
	return 0
}
