// Command streamd runs stream-processing pipelines described by a YAML
// pipeline file. main only wires: flags → config → components → run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/streamd/streamd/internal/admin"
	"github.com/streamd/streamd/internal/memlimit"
	"github.com/streamd/streamd/internal/version"
	"github.com/streamd/streamd/pkg/checkpoint"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/pipeline"
	"github.com/streamd/streamd/pkg/rules"
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
	// Every command reads pipeline files with the same connector kinds, so
	// validate and run cannot disagree about a source or sink.
	connectors := pipeline.DefaultRegistry()
	if len(args) == 0 {
		_, _ = fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(connectors, args[1:], stderr)
	case "validate":
		return cmdValidate(connectors, args[1:], stdout, stderr)
	case "checkpoints":
		return cmdCheckpoints(connectors, args[1:], stdout, stderr)
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

func cmdValidate(connectors *pipeline.Registry, args []string, stdout, stderr io.Writer) int {
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
	cfg, err := connectors.LoadLimit(*cfgPath, nil, *maxBytes)
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
	printDeliveries(stdout, cfg)
	return 0
}

// printDeliveries lists, for `streamd validate`, where checkpoints go and
// every sink's delivery guarantee with the reason (docs/delivery.md).
func printDeliveries(w io.Writer, cfg *pipeline.Config) {
	switch {
	case !cfg.Checkpoints():
		_, _ = fmt.Fprintln(w, "checkpoints: disabled")
	case cfg.DefaultCheckpoints():
		_, _ = fmt.Fprintf(w, "checkpoints: every %s to %s (no checkpoint block: the default)\n", cfg.Checkpoint.Interval.D(), cfg.Checkpoint.Dir)
	default:
		_, _ = fmt.Fprintf(w, "checkpoints: to %s\n", cfg.Checkpoint.Dir)
	}
	ds := pipeline.Deliveries(cfg)
	_, _ = fmt.Fprintln(w, "delivery:")
	for _, d := range ds {
		_, _ = fmt.Fprintf(w, "  %s\n", d)
	}
	if weak := pipeline.Weakest(ds); len(weak) > 0 {
		_, _ = fmt.Fprintf(w, "warning: %d sink(s) with a guarantee weaker than at-least-once\n", len(weak))
	}
}

func cmdRun(connectors *pipeline.Registry, args []string, stderr io.Writer) int {
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

	cfg, err := connectors.LoadLimit(*cfgPath, nil, *maxBytes)
	if err == nil {
		if ps := pipeline.Check(cfg); len(ps) > 0 {
			err = ps
		}
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: invalid pipeline:\n%v\n", *cfgPath, err)
		return 1
	}
	if !cfg.Checkpoints() && (*from != 0 || *fresh) {
		_, _ = fmt.Fprintln(stderr, "run: --from and --fresh need checkpoints (the pipeline disables them)")
		return 2
	}
	logDeliveries(logger, cfg)
	if limit, from, err := memlimit.Set("/sys/fs/cgroup"); err != nil {
		logger.Warn("read the container's memory limit; the Go runtime has none", zap.Error(err))
	} else if limit != math.MaxInt64 {
		logger.Info("memory limit", zap.Int64("bytes", limit), zap.String("from", from))
	}
	// Process-wide metrics live in reg; each attempt's components register
	// in a registry of their own, served through attempts.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		// The heap the last collection found live (a leak shows here, not
		// in the resident size, which the allocator keeps around) and the
		// runtime's memory limit (GOMEMLIMIT).
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/(heap/live|gomemlimit):bytes$`)},
	)), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamd_build_info", Help: "Build information; always 1."})
	prometheus.WrapRegistererWith(prometheus.Labels{"version": version.Version, "revision": version.Revision, "goversion": runtime.Version()}, reg).
		MustRegister(buildInfo)
	buildInfo.Set(1)
	var cur current

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
		acfg.Gatherer, acfg.Registerer = prometheus.Gatherers{reg, &cur}, reg
		acfg.Ready, acfg.Stalled, acfg.Status = cur.ready, cur.stalled, cur.status(cfg.Name)
		if cfg.HasRuleStages() {
			acfg.Rules = &cur
		}
		if cfg.Checkpoints() {
			acfg.Savepoint = cur.savepoint
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

	// SIGTERM/SIGINT stop the sources; Run then takes a savepoint (or
	// drains), commits and returns.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger.Info("starting pipeline", zap.String("pipeline", cfg.Name), zap.String("version", version.Version))
	// A failure (a full disk, an unreachable store or broker) restarts the
	// pipeline in the process from its last completed checkpoint, with
	// backoff, until it recovers or is stopped.
	runErr := operator.Supervise(ctx, operator.DefaultRestartPolicy(), logger, reg, func(ctx context.Context, n int) error {
		areg := prometheus.NewRegistry()
		job, err := pipeline.Build(cfg, pipeline.Options{Logger: logger, Registry: areg})
		if err != nil {
			return operator.Permanent(fmt.Errorf("build pipeline: %w", err))
		}
		// Unreachable brokers, missing topics, streams or buckets and wrong
		// credentials are reported now, each naming its component, not at
		// the first flush. At the first start they are a configuration
		// problem; after a failure, an outage to wait out.
		checkCtx, cancelCheck := context.WithTimeout(ctx, 30*time.Second)
		err = pipeline.CheckConnectivity(checkCtx, job)
		cancelCheck()
		if err != nil {
			closeJob(job)
			err = fmt.Errorf("startup check: %w", err)
			if n == 0 {
				return operator.Permanent(err)
			}
			return err
		}
		if job.Checkpoint != nil && n == 0 {
			// --from and --fresh apply to the first start; a restart
			// after a failure restores the newest checkpoint.
			job.Checkpoint.RestoreFrom = *from
			if *fresh {
				job.Checkpoint.RestoreFrom = -1
			}
		}
		rt, err := operator.New(job, logger, areg)
		if err != nil {
			closeJob(job)
			return operator.Permanent(fmt.Errorf("build pipeline: %w", err))
		}
		cur.set(rt, areg)
		return rt.Run(ctx)
	})

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

// logDeliveries states at startup where checkpoints go and every sink's
// delivery guarantee; guarantees weaker than at-least-once are warnings.
func logDeliveries(logger *zap.Logger, cfg *pipeline.Config) {
	if cfg.DefaultCheckpoints() {
		dir := cfg.Checkpoint.Dir
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		logger.Info("no checkpoint block: checkpoints go to a local directory (set checkpoint.dir, or checkpoint.enabled: false)",
			zap.String("dir", dir), zap.Duration("interval", cfg.Checkpoint.Interval.D()))
	}
	for _, d := range pipeline.Deliveries(cfg) {
		fields := []zap.Field{zap.String("sink", d.Sink), zap.String("type", d.Type), zap.String("delivery", d.Delivery.String()), zap.String("reason", d.Reason)}
		if d.Delivery < pipeline.DeliveryAtLeastOnce {
			logger.Warn("delivery guarantee weaker than at-least-once", fields...)
			continue
		}
		logger.Info("delivery guarantee", fields...)
	}
}

// closeJob releases the sources and sinks of a job that will not run.
func closeJob(job operator.Job) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range job.Sinks {
		_ = s.Sink.Close(ctx)
	}
	for _, s := range job.Sources {
		_ = s.Source.Close(ctx)
	}
}

// current is the runtime of the attempt in progress, as the admin
// endpoints see it across restarts.
type current struct {
	mu  sync.Mutex
	rt  *operator.Runtime
	reg *prometheus.Registry
}

var (
	_ prometheus.Gatherer = (*current)(nil)
	_ admin.RuleAPI       = (*current)(nil)
)

func (c *current) set(rt *operator.Runtime, reg *prometheus.Registry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rt, c.reg = rt, reg
}

func (c *current) get() (*operator.Runtime, *prometheus.Registry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rt, c.reg
}

// Gather serves the current attempt's metrics.
func (c *current) Gather() ([]*dto.MetricFamily, error) {
	if _, reg := c.get(); reg != nil {
		return reg.Gather()
	}
	return nil, nil
}

func (c *current) ready() bool {
	rt, _ := c.get()
	return rt != nil && rt.Ready()
}

// stalled is liveness: a stuck pipeline (see operator.Runtime.Stalled).
// Between attempts nothing runs that could be stuck.
func (c *current) stalled() error {
	if rt, _ := c.get(); rt != nil {
		return rt.Stalled()
	}
	return nil
}

func (c *current) status(name string) func() any {
	return func() any {
		if rt, _ := c.get(); rt != nil {
			return rt.Status()
		}
		return operator.Status{Pipeline: name}
	}
}

func (c *current) savepoint(ctx context.Context) (int64, error) {
	rt, _ := c.get()
	if rt == nil || rt.Coordinator() == nil {
		return 0, errors.New("take savepoint: the pipeline is not running")
	}
	return rt.Coordinator().Trigger(ctx, true, false)
}

var errRestarting = errors.New("the pipeline is restarting")

func (c *current) rules() (*operator.RuleManager, error) {
	rt, _ := c.get()
	if rt == nil || rt.Rules() == nil {
		return nil, errRestarting
	}
	return rt.Rules(), nil
}

// Stages implements admin.RuleAPI.
func (c *current) Stages() []string {
	m, err := c.rules()
	if err != nil {
		return nil
	}
	return m.Stages()
}

// List implements admin.RuleAPI.
func (c *current) List(stage string) ([]*rules.Rule, error) {
	m, err := c.rules()
	if err != nil {
		return nil, err
	}
	return m.List(stage)
}

// Put implements admin.RuleAPI.
func (c *current) Put(ctx context.Context, stage string, r *rules.Rule) error {
	m, err := c.rules()
	if err != nil {
		return err
	}
	return m.Put(ctx, stage, r)
}

// Delete implements admin.RuleAPI.
func (c *current) Delete(ctx context.Context, stage, id string) error {
	m, err := c.rules()
	if err != nil {
		return err
	}
	return m.Delete(ctx, stage, id)
}

// Stats implements admin.RuleAPI.
func (c *current) Stats(stage string) []rules.RuleStats {
	m, err := c.rules()
	if err != nil {
		return nil
	}
	return m.Stats(stage)
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

func cmdCheckpoints(connectors *pipeline.Registry, args []string, stdout, stderr io.Writer) int {
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
	cfg, err := connectors.Load(*cfgPath, nil)
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
		_, _ = fmt.Fprintf(stderr, "%s: the pipeline disables checkpoints\n", *cfgPath)
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
			switch {
			case m.Savepoint:
				kind = "savepoint"
			case m.Final:
				kind = "final"
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
