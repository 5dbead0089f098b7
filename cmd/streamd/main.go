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
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
)

const usage = `streamd — stream processing as one static binary

Usage:
  streamd run --config pipeline.yaml [--log-level info] [--listen addr]
  streamd validate --config pipeline.yaml
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
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" {
		_, _ = fmt.Fprintln(stderr, "validate: --config is required")
		return 2
	}
	cfg, err := pipeline.Load(*cfgPath, nil)
	if err == nil {
		if ps := pipeline.Check(cfg); len(ps) > 0 {
			err = ps
		}
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: invalid pipeline:\n%v\n", *cfgPath, err)
		return 1
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

	cfg, err := pipeline.Load(*cfgPath, nil)
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
		srv, err = admin.New(admin.Config{Listen: addr, Gatherer: reg, Ready: rt.Ready, Status: func() any { return rt.Status() }}, logger)
		if err != nil {
			logger.Error("start admin http", zap.Error(err))
			return 1
		}
		go func() {
			if err := srv.Serve(); err != nil {
				logger.Error("admin http stopped", zap.Error(err))
			}
		}()
		logger.Info("admin http listening", zap.String("addr", srv.Addr()))
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
