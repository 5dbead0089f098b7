package pipeline

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/streamd/streamd/internal/fielderr"
	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/expression"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/sink/discard"
	"github.com/streamd/streamd/pkg/sink/jsonl"
	kafkasink "github.com/streamd/streamd/pkg/sink/kafka"
	kinesissink "github.com/streamd/streamd/pkg/sink/kinesis"
	"github.com/streamd/streamd/pkg/sink/parquet"
	"github.com/streamd/streamd/pkg/sink/webhook"
	"github.com/streamd/streamd/pkg/source"
	"github.com/streamd/streamd/pkg/source/file"
	"github.com/streamd/streamd/pkg/source/generator"
	kafkasrc "github.com/streamd/streamd/pkg/source/kafka"
	kinesissrc "github.com/streamd/streamd/pkg/source/kinesis"
	"github.com/streamd/streamd/pkg/source/nexmark"
)

// The built-in kinds. Their blocks are typed fields of SourceConfig and
// SinkConfig (the reference documentation of the file format); each
// kind's validation and construction is written here, next to its
// registration, and nowhere else.

// registerBuiltins registers every built-in kind, in the order messages
// list them.
func registerBuiltins(r *Registry) {
	for _, k := range []SourceKind{
		generatorKind(), nexmarkKind(), fileKind(), stdinKind(), kafkaSourceKind(), kinesisSourceKind(),
	} {
		must(r.RegisterSource(k))
	}
	for _, k := range []SinkKind{
		parquetKind(), stdoutKind(), fileSinkKind(), kafkaSinkKind(), kinesisSinkKind(), webhookKind(), discardKind(),
	} {
		must(r.RegisterSink(k))
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// sourceField makes the accessors of a built-in source block.
func sourceField[T any](f func(*SourceConfig) **T) (func(*SourceConfig) any, func(*SourceConfig, any)) {
	return func(s *SourceConfig) any {
			if p := *f(s); p != nil {
				return p
			}
			return nil
		}, func(s *SourceConfig, b any) {
			*f(s) = b.(*T)
		}
}

// sinkField makes the accessors of a built-in sink block.
func sinkField[T any](f func(*SinkConfig) **T) (func(*SinkConfig) any, func(*SinkConfig, any)) {
	return func(s *SinkConfig) any {
			if p := *f(s); p != nil {
				return p
			}
			return nil
		}, func(s *SinkConfig, b any) {
			*f(s) = b.(*T)
		}
}

func generatorKind() SourceKind {
	get, set := sourceField(func(s *SourceConfig) **GeneratorConfig { return &s.Generator })
	return SourceKind{
		Name: sourceTypeGenerator, Block: sourceTypeGenerator, block: get, setBlock: set,
		Defaults: func(b any) any {
			// "generator:" with nothing under it decodes to nil; it means
			// "all defaults", not "missing".
			g, _ := b.(*GeneratorConfig)
			if g == nil {
				g = &GeneratorConfig{}
			}
			setDefault(&g.Splits, DefaultGeneratorSplits)
			setDefault(&g.Machines, DefaultGeneratorMachines)
			setDefault(&g.Tags, DefaultGeneratorTags)
			setDefault(&g.LateBy, DefaultGeneratorLateBy)
			return g
		},
		Validate: func(c *BlockCheck, b any) { c.v.generator(c.path, b.(*GeneratorConfig)) },
		Open: func(sb *SourceBuild) (source.Source, error) {
			g := sb.Block.(*GeneratorConfig)
			cfg := generator.Config{
				Seed: g.Seed, Rate: g.Rate, Count: g.Count, Splits: g.Splits, Machines: g.Machines, Tags: g.Tags,
				Step: g.Step.D(), OutOfOrderness: g.OutOfOrderness.D(), LateFraction: g.LateFraction, LateBy: g.LateBy.D(),
				MalformedFraction: g.MalformedFraction, Now: sb.Now,
			}
			if g.StartTime != "" {
				t, err := time.Parse(time.RFC3339Nano, g.StartTime)
				if err != nil {
					return nil, fmt.Errorf("generator.startTime: %w", err)
				}
				cfg.StartTime = t
			}
			return generator.New(cfg)
		},
	}
}

func nexmarkKind() SourceKind {
	get, set := sourceField(func(s *SourceConfig) **NexmarkConfig { return &s.Nexmark })
	return SourceKind{
		Name: sourceTypeNexmark, Block: sourceTypeNexmark, block: get, setBlock: set,
		Defaults: func(b any) any {
			if n, _ := b.(*NexmarkConfig); n != nil {
				return n
			}
			return &NexmarkConfig{}
		},
		Validate: func(c *BlockCheck, b any) { c.v.nexmark(c.path, b.(*NexmarkConfig)) },
		Prepare: func(sb *SourceBuild) error {
			g, err := newNexmark(sb.Block.(*NexmarkConfig), sb.Now)
			if err != nil {
				return err
			}
			if g.Config().Format == nexmark.FormatNative {
				dcfg := sb.Decode
				sb.NewDecoder = func() (operator.Decoder, error) { return g.NewDecoder(dcfg) }
			}
			return nil
		},
		Open: func(sb *SourceBuild) (source.Source, error) {
			return newNexmark(sb.Block.(*NexmarkConfig), sb.Now)
		},
	}
}

// newNexmark builds the Nexmark generator of a nexmark source.
func newNexmark(n *NexmarkConfig, now func() time.Time) (*nexmark.Generator, error) {
	format, err := nexmark.ParseFormat(n.Format)
	if err != nil {
		return nil, err
	}
	cfg := nexmark.Config{Seed: n.Seed, Events: n.Events, Splits: n.Splits, Rate: n.Rate, EmitRate: n.EmitRate, Format: format, Now: now}
	if n.BaseTime != "" {
		if cfg.BaseTime, err = time.Parse(time.RFC3339Nano, n.BaseTime); err != nil {
			return nil, fmt.Errorf("baseTime: %w", err)
		}
	}
	return nexmark.New(cfg)
}

func fileKind() SourceKind {
	get, set := sourceField(func(s *SourceConfig) **FileConfig { return &s.File })
	return SourceKind{
		Name: sourceTypeFile, Block: sourceTypeFile, block: get, setBlock: set,
		Defaults: func(b any) any {
			f, _ := b.(*FileConfig)
			if f != nil {
				setDefault(&f.PollInterval, DefaultFilePollInterval)
				return f
			}
			return nil
		},
		Validate: func(c *BlockCheck, b any) {
			f := b.(*FileConfig)
			if len(f.Paths) == 0 {
				c.Problemf("paths", "at least one path or glob pattern is required")
			}
			for j, p := range f.Paths {
				if p == "" {
					c.Problemf(fmt.Sprintf("paths[%d]", j), "must not be empty")
				}
			}
			c.v.nonNegative(c.path+".pollInterval", f.PollInterval)
			for j, p := range f.Paths {
				if _, err := filepath.Match(p, ""); err != nil {
					c.Problemf(fmt.Sprintf("paths[%d]", j), "invalid glob pattern %q: %v", p, err)
				}
			}
		},
		Open: func(sb *SourceBuild) (source.Source, error) {
			f := sb.Block.(*FileConfig)
			return file.New(file.Config{Paths: f.Paths, Follow: f.Follow, PollInterval: f.PollInterval.D(), EmptyLines: true}, sb.Logger, sb.Registry)
		},
	}
}

func stdinKind() SourceKind {
	return SourceKind{
		Name: sourceTypeStdin,
		Open: func(sb *SourceBuild) (source.Source, error) {
			return file.New(file.Config{Stdin: true, EmptyLines: true}, sb.Logger, sb.Registry)
		},
	}
}

func kafkaSourceKind() SourceKind {
	get, set := sourceField(func(s *SourceConfig) **kafkasrc.Config { return &s.Kafka })
	return SourceKind{
		Name: sourceTypeKafka, Block: sourceTypeKafka, block: get, setBlock: set,
		Validate: func(c *BlockCheck, b any) { c.Err(b.(*kafkasrc.Config).Validate()) },
		Prepare: func(sb *SourceBuild) error {
			if k := sb.Block.(*kafkasrc.Config); k.Plaintext() {
				sb.Warnf("kafka.sasl.allowPlaintext", "SASL %s credentials are sent to the brokers without TLS", k.SASL.Mechanism)
			}
			return nil
		},
		Open: func(sb *SourceBuild) (source.Source, error) {
			cfg := *sb.Block.(*kafkasrc.Config)
			if sb.Checkpoints {
				// Offsets are committed to the group when checkpoints complete:
				// committing what was merely handed out could skip records.
				cfg.DisableAutoCommit = true
			}
			return kafkasrc.New(cfg, sb.Logger, sb.Registry)
		},
	}
}

func kinesisSourceKind() SourceKind {
	get, set := sourceField(func(s *SourceConfig) **kinesissrc.Config { return &s.Kinesis })
	return SourceKind{
		Name: sourceTypeKinesis, Block: sourceTypeKinesis, block: get, setBlock: set,
		Validate: func(c *BlockCheck, b any) { c.Err(b.(*kinesissrc.Config).Validate()) },
		Open: func(sb *SourceBuild) (source.Source, error) {
			return kinesissrc.New(*sb.Block.(*kinesissrc.Config), sb.Logger, sb.Registry)
		},
	}
}

func parquetKind() SinkKind {
	get, set := sinkField(func(s *SinkConfig) **ParquetConfig { return &s.Parquet })
	return SinkKind{
		Name: sinkTypeParquet, Block: sinkTypeParquet, block: get, setBlock: set,
		// With checkpoints, files are published only by completed checkpoints.
		Transactional: true,
		Defaults: func(b any) any {
			p, _ := b.(*ParquetConfig)
			if p != nil {
				setDefault(&p.Compression, DefaultParquetCompression)
				setDefault(&p.RollSize, DefaultRollSize)
				setDefault(&p.RollAge, DefaultRollAge)
				return p
			}
			return nil
		},
		Validate: func(c *BlockCheck, b any) { c.v.parquet(c.path, b.(*ParquetConfig)) },
		Build:    buildParquet,
	}
}

// parquet checks a Parquet sink's block.
func (v *validator) parquet(pp string, p *ParquetConfig) {
	if p.Path == "" {
		v.add(pp+".path", "required (the output directory)")
	}
	if err := checkPartition(p.Partition); err != nil {
		v.add(pp+".partition", "%s", err.Error())
	}
	if !slices.Contains(compressions, p.Compression) {
		v.add(pp+".compression", "%s", fielderr.Unknown("compression", p.Compression, compressions[1:]))
	}
	if p.RollSize < 0 {
		v.add(pp+".rollSize", "must be >= 0")
	}
	if p.RollRows < 0 {
		v.add(pp+".rollRows", "must be >= 0 (0 means no row limit)")
	}
	v.nonNegative(pp+".rollAge", p.RollAge)
	for _, f := range []struct {
		name string
		size ByteSize
	}{{"rowGroupSize", p.RowGroupSize}, {"pageSize", p.PageSize}, {"dictionarySize", p.DictionarySize}} {
		if f.size < 0 {
			v.add(pp+"."+f.name, "must be >= 0 (0 means the default)")
		}
	}
	if p.Filter != "" {
		v.expr(pp+".filter", p.Filter)
	}
	if pc := p.PartitionCommit; pc != nil {
		v.nonNegative(pp+".partitionCommit.allowedLateness", pc.AllowedLateness)
	}
	if p.TimestampUnit != "" && p.TimestampUnit != "micros" && p.TimestampUnit != "millis" {
		v.add(pp+".timestampUnit", "unknown unit %q (want micros or millis)", p.TimestampUnit)
	}
}

func buildParquet(kb *SinkBuild) (sink.Sink, error) {
	p := kb.Block.(*ParquetConfig)
	sk, schema := kb.Sink, kb.Schema
	cfg := parquet.DefaultConfig()
	cfg.Name, cfg.Dir, cfg.Partition = sk.Name, p.Path, p.Partition
	if p.S3 != nil {
		cfg.S3 = *p.S3
	}
	// With checkpoints, files are published only by completed checkpoints.
	cfg.Transactional = kb.Checkpoints
	if p.Compression != "" {
		cfg.Compression = p.Compression
	}
	if p.RollSize > 0 {
		cfg.RollSize = int64(p.RollSize)
	}
	cfg.RollRows = p.RollRows
	if p.RollAge > 0 {
		cfg.RollAge = p.RollAge.D()
	}
	if p.RowGroupSize > 0 {
		cfg.RowGroupSize = int64(p.RowGroupSize)
	}
	if p.PageSize > 0 {
		cfg.PageSize = int64(p.PageSize)
	}
	if p.DictionarySize > 0 {
		cfg.DictionarySize = int64(p.DictionarySize)
	}
	if p.TimestampUnit != "" {
		cfg.TimestampUnit = p.TimestampUnit
	}
	cfg.SortBy = p.SortBy
	cfg.JSONColumns = slices.Clone(p.JSONColumns)
	if schema != nil {
		for _, src := range kb.Config.Sources {
			if src.Name != sk.Input {
				continue
			}
			for _, f := range src.Decode.Fields {
				if f.Type == fieldTypeJSON {
					cfg.JSONColumns = append(cfg.JSONColumns, f.Name)
				}
			}
			if src.Decode.Extras != "" {
				cfg.JSONColumns = append(cfg.JSONColumns, src.Decode.Extras)
			}
		}
	}
	if p.Filter != "" {
		src := p.Filter
		cfg.Filter = src
		cfg.NewFilter = func(s *record.Schema) (parquet.RowFilter, error) {
			e, err := expression.Compile(src, s, record.TypeBool)
			if err != nil {
				return nil, err
			}
			return conditionFilter{e}, nil
		}
	}
	if pc := p.PartitionCommit; pc != nil {
		cfg.PartitionCommit.Enabled = pc.Enabled == nil || *pc.Enabled
		cfg.PartitionCommit.AllowedLateness = pc.AllowedLateness.D()
	}
	if err := cfg.Validate(); err != nil {
		kb.Problemf("parquet", "%v", err)
		return nil, nil
	}
	if schema != nil {
		if err := parquet.CheckPartition(cfg.Partition, schema); err != nil {
			kb.Problemf("parquet.partition", "%v (fields: %s)", err, schema)
			return nil, nil
		}
		if err := parquet.CheckSortBy(cfg.SortBy, schema); err != nil {
			kb.Problemf("parquet.sortBy", "%v", err)
			return nil, nil
		}
		if cfg.NewFilter != nil {
			if _, err := cfg.NewFilter(schema); err != nil {
				kb.Problemf("parquet.filter", "%v", err)
				return nil, nil
			}
		}
	}
	if !kb.Open {
		return nil, nil
	}
	return parquet.New(cfg, kb.Logger, kb.Registry)
}

// conditionFilter is a Parquet sink's row filter: a compiled condition.
type conditionFilter struct{ cond *expression.Expression }

// Keep implements parquet.RowFilter.
func (f conditionFilter) Keep(row record.Row) (bool, error) { return f.cond.EvalBool(row) }

func stdoutKind() SinkKind {
	return SinkKind{
		Name: sinkTypeStdout,
		Build: func(kb *SinkBuild) (sink.Sink, error) {
			if !kb.Open {
				return nil, nil
			}
			return jsonl.New(jsonl.Config{Name: kb.Sink.Name}, kb.Logger, kb.Registry)
		},
	}
}

func fileSinkKind() SinkKind {
	get, set := sinkField(func(s *SinkConfig) **JSONFileConfig { return &s.File })
	return SinkKind{
		Name: sinkTypeFile, Block: sinkTypeFile, block: get, setBlock: set,
		Validate: func(c *BlockCheck, b any) {
			if b.(*JSONFileConfig).Path == "" {
				c.Problemf("path", "required")
			}
		},
		Build: func(kb *SinkBuild) (sink.Sink, error) {
			if !kb.Open {
				return nil, nil
			}
			return jsonl.New(jsonl.Config{Name: kb.Sink.Name, Path: kb.Block.(*JSONFileConfig).Path}, kb.Logger, kb.Registry)
		},
	}
}

func kafkaSinkKind() SinkKind {
	get, set := sinkField(func(s *SinkConfig) **kafkasink.Config { return &s.Kafka })
	return SinkKind{
		Name: sinkTypeKafka, Block: sinkTypeKafka, block: get, setBlock: set,
		Validate: func(c *BlockCheck, b any) {
			k := *b.(*kafkasink.Config)
			k.Name = cmp.Or(k.Name, sinkTypeKafka) // Build names it after the sink
			c.Err(k.Validate())
		},
		Build: func(kb *SinkBuild) (sink.Sink, error) {
			cfg := *kb.Block.(*kafkasink.Config)
			cfg.Name = kb.Sink.Name
			if err := cfg.Validate(); err != nil {
				kb.Err("kafka", err)
				return nil, nil
			}
			if cfg.Plaintext() {
				kb.Warnf("kafka.sasl.allowPlaintext", "SASL %s credentials are sent to the brokers without TLS", cfg.SASL.Mechanism)
			}
			if kb.Schema != nil && cfg.KeyField != "" {
				if _, ok := kb.Schema.Index(cfg.KeyField); !ok {
					kb.Problemf("kafka.keyField", "field %q is not in %q (fields: %s)", cfg.KeyField, kb.Sink.Input, kb.Schema)
					return nil, nil
				}
			}
			if !kb.Open {
				return nil, nil
			}
			return kafkasink.New(cfg, kb.Logger, kb.Registry)
		},
	}
}

func kinesisSinkKind() SinkKind {
	get, set := sinkField(func(s *SinkConfig) **kinesissink.Config { return &s.Kinesis })
	return SinkKind{
		Name: sinkTypeKinesis, Block: sinkTypeKinesis, block: get, setBlock: set,
		Build: func(kb *SinkBuild) (sink.Sink, error) {
			cfg := *kb.Block.(*kinesissink.Config)
			cfg.Name = kb.Sink.Name
			if err := cfg.Validate(); err != nil {
				kb.Err("kinesis", err)
				return nil, nil
			}
			if !kb.Open {
				return nil, nil
			}
			return kinesissink.New(cfg, kb.Logger, kb.Registry)
		},
	}
}

func webhookKind() SinkKind {
	get, set := sinkField(func(s *SinkConfig) **webhook.Config { return &s.Webhook })
	return SinkKind{
		Name: sinkTypeWebhook, Block: sinkTypeWebhook, block: get, setBlock: set,
		Build: func(kb *SinkBuild) (sink.Sink, error) {
			cfg := webhookDefaults(*kb.Block.(*webhook.Config))
			cfg.Name = kb.Sink.Name
			if err := cfg.Validate(); err != nil {
				kb.Problemf("webhook", "%v", err)
				return nil, nil
			}
			if !kb.Open {
				return nil, nil
			}
			return webhook.New(cfg, kb.Logger, kb.Registry)
		},
	}
}

// webhookDefaults fills the fields a pipeline file left out.
func webhookDefaults(c webhook.Config) webhook.Config {
	d := webhook.DefaultConfig()
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = d.InitialBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = d.MaxBackoff
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = d.MaxRetryAfter
	}
	if c.MaxRows == 0 {
		c.MaxRows = d.MaxRows
	}
	return c
}

func discardKind() SinkKind {
	return SinkKind{
		Name: sinkTypeDiscard,
		Build: func(kb *SinkBuild) (sink.Sink, error) {
			if !kb.Open {
				return nil, nil
			}
			return discard.New(), nil
		},
	}
}

// jsonDecoder is the decoder of a source whose kind has none of its own.
func jsonDecoder(cfg decode.Config) func() (operator.Decoder, error) {
	return func() (operator.Decoder, error) { return decode.NewJSON(cfg) }
}
