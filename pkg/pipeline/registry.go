package pipeline

import (
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/streamd/streamd/pkg/decode"
	"github.com/streamd/streamd/pkg/operator"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
)

// Registry holds the source and sink kinds a pipeline file may use: the
// value of a source's or sink's type, the YAML block of its settings, how
// the block is validated, and how the component is built. Loading,
// validation (streamd validate) and Build (streamd run) all ask the
// registry a Config was parsed with, so they cannot disagree about a
// connector.
//
// DefaultRegistry has every built-in kind; NewRegistry is empty, for tests
// and programs that register their own kinds. A Registry is not safe for
// concurrent registration; register kinds before parsing.
type Registry struct {
	sources []*SourceKind
	sinks   []*SinkKind
}

// SourceKind is one type of source.
type SourceKind struct {
	// Name is the value of the source's type field.
	Name string
	// Block is the key of the source's settings block, or "" when the kind
	// has none (stdin). A source of this type needs the block; a source of
	// another type must not have it.
	Block string
	// NewBlock returns a pointer to a new, zero settings block: the loader
	// checks the YAML block against its type (unknown fields, values of
	// the wrong type) and decodes it into SourceConfig.Blocks[Block].
	NewBlock func() any
	// Defaults, optional, fills the zero values of the block that have a
	// default (ApplyDefaults); block is nil when the source has none.
	Defaults func(block any) any
	// Validate, optional, checks the block's settings without the record
	// schema. It runs in Config.Validate, so in validate and in run.
	Validate func(c *BlockCheck, block any)
	// Prepare, optional, runs in validate and in run after Validate found
	// no problem, before the record schema is known: semantic checks,
	// warnings, and a decoder of the kind's own (SourceBuild.NewDecoder).
	// An error is reported at the block.
	Prepare func(sb *SourceBuild) error
	// Open constructs the source; only run (Build) calls it, after every
	// check passed. An error is reported at the source.
	Open func(sb *SourceBuild) (source.Source, error)

	// block returns a built-in kind's block from its SourceConfig field
	// (nil when absent); registered kinds keep theirs in Blocks.
	block func(s *SourceConfig) any
	// setBlock stores a built-in kind's defaulted block.
	setBlock func(s *SourceConfig, block any)
}

// SinkKind is one type of sink.
type SinkKind struct {
	// Name is the value of the sink's type field.
	Name string
	// Block is the key of the sink's settings block, or "" when the kind
	// has none (stdout, discard).
	Block string
	// NewBlock returns a pointer to a new, zero settings block, decoded
	// into SinkConfig.Blocks[Block].
	NewBlock func() any
	// Defaults, optional, fills the zero values of the block.
	Defaults func(block any) any
	// Validate, optional, checks the block's settings without the schema.
	Validate func(c *BlockCheck, block any)
	// Build checks the sink against the schema of its input and, when
	// kb.Open (run, not validate), constructs it; validate and run call
	// the same function. Problems with settings go through kb.Problemf
	// (then return nil, nil); a returned error is reported at the sink.
	Build func(kb *SinkBuild) (sink.Sink, error)
	// Transactional sinks are exactly-once by themselves when checkpoints
	// are enabled (they publish output on checkpoint completion), so
	// delivery exactlyOnce does not hold their rows.
	Transactional bool

	block    func(s *SinkConfig) any
	setBlock func(s *SinkConfig, block any)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// DefaultRegistry returns a new registry with every built-in source and
// sink kind, in the order the type lists of messages name them.
func DefaultRegistry() *Registry {
	r := NewRegistry()
	registerBuiltins(r)
	return r
}

// defaultRegistry is what a Config not parsed by a Registry uses.
var defaultRegistry = sync.OnceValue(DefaultRegistry)

// RegisterSource adds a source kind; names and blocks must be unique and
// must not clash with a field of SourceConfig.
func (r *Registry) RegisterSource(k SourceKind) error {
	if k.Name == "" {
		return fmt.Errorf("register source kind: empty name")
	}
	if r.Source(k.Name) != nil {
		return fmt.Errorf("register source kind %q: already registered", k.Name)
	}
	if k.Block != "" && k.block == nil {
		if k.NewBlock == nil {
			return fmt.Errorf("register source kind %q: block %q needs NewBlock", k.Name, k.Block)
		}
		if err := checkBlockKey(reflect.TypeFor[SourceConfig](), k.Block); err != nil {
			return fmt.Errorf("register source kind %q: %w", k.Name, err)
		}
	}
	for _, o := range r.sources {
		if k.Block != "" && o.Block == k.Block {
			return fmt.Errorf("register source kind %q: block %q already used by kind %q", k.Name, k.Block, o.Name)
		}
	}
	r.sources = append(r.sources, &k)
	return nil
}

// RegisterSink adds a sink kind; names and blocks must be unique and must
// not clash with a field of SinkConfig.
func (r *Registry) RegisterSink(k SinkKind) error {
	if k.Name == "" {
		return fmt.Errorf("register sink kind: empty name")
	}
	if r.Sink(k.Name) != nil {
		return fmt.Errorf("register sink kind %q: already registered", k.Name)
	}
	if k.Build == nil {
		return fmt.Errorf("register sink kind %q: Build is required", k.Name)
	}
	if k.Block != "" && k.block == nil {
		if k.NewBlock == nil {
			return fmt.Errorf("register sink kind %q: block %q needs NewBlock", k.Name, k.Block)
		}
		if err := checkBlockKey(reflect.TypeFor[SinkConfig](), k.Block); err != nil {
			return fmt.Errorf("register sink kind %q: %w", k.Name, err)
		}
	}
	for _, o := range r.sinks {
		if k.Block != "" && o.Block == k.Block {
			return fmt.Errorf("register sink kind %q: block %q already used by kind %q", k.Name, k.Block, o.Name)
		}
	}
	r.sinks = append(r.sinks, &k)
	return nil
}

// checkBlockKey refuses a block key that is already a field of t.
func checkBlockKey(t reflect.Type, key string) error {
	if _, ok := (&loader{fields: make(map[reflect.Type]*structFields)}).structFields(t).types[key]; ok {
		return fmt.Errorf("block %q is a field of %s", key, t.Name())
	}
	return nil
}

// Source returns the source kind named name, or nil.
func (r *Registry) Source(name string) *SourceKind {
	for _, k := range r.sources {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// Sink returns the sink kind named name, or nil.
func (r *Registry) Sink(name string) *SinkKind {
	for _, k := range r.sinks {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// SourceTypes returns the source type names, in registration order.
func (r *Registry) SourceTypes() []string {
	out := make([]string, len(r.sources))
	for i, k := range r.sources {
		out[i] = k.Name
	}
	return out
}

// SinkTypes returns the sink type names, in registration order.
func (r *Registry) SinkTypes() []string {
	out := make([]string, len(r.sinks))
	for i, k := range r.sinks {
		out[i] = k.Name
	}
	return out
}

// Parse is the package's Parse with the registry's kinds: the blocks of
// registered kinds are checked and decoded, and validation and Build of
// the result use this registry.
func (r *Registry) Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	return parse(r, data, lookupEnv)
}

// Load is the package's Load with the registry's kinds.
func (r *Registry) Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	return r.LoadLimit(path, lookupEnv, DefaultMaxFileBytes)
}

// LoadLimit is the package's LoadLimit with the registry's kinds.
func (r *Registry) LoadLimit(path string, lookupEnv func(string) (string, bool), maxBytes int64) (*Config, error) {
	return loadLimit(r, path, lookupEnv, maxBytes)
}

// blockOf returns the block of kind k in s, nil when absent.
func (k *SourceKind) blockOf(s *SourceConfig) any { return blockIn(k.Block, k.block, s, s.Blocks) }

func (k *SourceKind) storeBlock(s *SourceConfig, b any) {
	storeKindBlock(k.Block, k.setBlock, s, &s.Blocks, b)
}

func (k *SinkKind) blockOf(s *SinkConfig) any { return blockIn(k.Block, k.block, s, s.Blocks) }

func (k *SinkKind) storeBlock(s *SinkConfig, b any) {
	storeKindBlock(k.Block, k.setBlock, s, &s.Blocks, b)
}

// blockIn returns the block named name of config c: from its typed field
// (get) for a built-in kind, else from its Blocks; nil when the kind has none.
func blockIn[C any](name string, get func(*C) any, c *C, blocks map[string]any) any {
	if name == "" {
		return nil
	}
	if get != nil {
		return get(c)
	}
	return blocks[name]
}

// storeKindBlock stores block b named name in config c, the counterpart of
// blockIn.
func storeKindBlock[C any](name string, set func(*C, any), c *C, blocks *map[string]any, b any) {
	if set != nil {
		set(c, b)
		return
	}
	if *blocks == nil {
		*blocks = make(map[string]any)
	}
	(*blocks)[name] = b
}

// BlockCheck collects the problems of one settings block for Validate.
type BlockCheck struct {
	v    *validator
	path string
}

// Path is the block's YAML path, e.g. "sources[0].kafka".
func (c *BlockCheck) Path() string { return c.path }

// Problemf reports a problem with setting (a path relative to the block,
// "" for the block itself), at the line the setting was written on.
func (c *BlockCheck) Problemf(setting, format string, args ...any) {
	c.v.add(subPath(c.path, setting), format, args...)
}

// Err reports the error of a connector's own Validate: each
// *fielderr.Error at its setting, other errors at the setting their
// "setting: message" text names, or else at the block.
func (c *BlockCheck) Err(err error) {
	c.v.ps = append(c.v.ps, connectorProblems(c.v.c, c.path, err)...)
}

// SourceBuild is what a source kind's Prepare and Open get.
type SourceBuild struct {
	// Path is the source's YAML path ("sources[0]").
	Path string
	// Source is the source's settings; Block is the kind's block in them.
	Source *SourceConfig
	Block  any
	// Config is the whole pipeline file.
	Config *Config
	// Checkpoints reports whether the pipeline takes checkpoints.
	Checkpoints bool
	Logger      *zap.Logger
	Registry    prometheus.Registerer
	Now         func() time.Time
	// Decode is the decoder configuration the source's decode block says.
	Decode decode.Config
	// NewDecoder, when Prepare sets it, replaces the JSON decoder.
	NewDecoder func() (operator.Decoder, error)

	b *builder
}

// Problemf reports a problem with setting, a path relative to the source.
func (sb *SourceBuild) Problemf(setting, format string, args ...any) {
	sb.b.problem(subPath(sb.Path, setting), format, args...)
}

// Warnf notes what setting (relative to the source) allows but should not
// go unnoticed; Build logs it and Warnings returns it.
func (sb *SourceBuild) Warnf(setting, format string, args ...any) {
	sb.b.warn(subPath(sb.Path, setting), format, args...)
}

// SinkBuild is what a sink kind's Build gets.
type SinkBuild struct {
	// Path is the sink's YAML path ("sinks[0]").
	Path string
	// Sink is the sink's settings; Block is the kind's block in them.
	Sink  *SinkConfig
	Block any
	// Schema is the schema of the sink's input; nil for late-record streams,
	// whose rows have their stage's schema.
	Schema *record.Schema
	// Config is the whole pipeline file.
	Config *Config
	// Open is true in run (Build) and false in validate (Check): only with
	// Open may Build construct the sink.
	Open        bool
	Checkpoints bool
	Logger      *zap.Logger
	Registry    prometheus.Registerer
	Now         func() time.Time

	b *builder
}

// Problemf reports a problem with setting, a path relative to the sink.
func (kb *SinkBuild) Problemf(setting, format string, args ...any) {
	kb.b.problem(subPath(kb.Path, setting), format, args...)
}

// Warnf notes what setting (relative to the sink) allows but should not go
// unnoticed.
func (kb *SinkBuild) Warnf(setting, format string, args ...any) {
	kb.b.warn(subPath(kb.Path, setting), format, args...)
}

// Err reports a connector's Validate error under setting (relative to the
// sink), the way BlockCheck.Err does.
func (kb *SinkBuild) Err(setting string, err error) {
	kb.b.connector(subPath(kb.Path, setting), err)
}

// subPath is the YAML path of setting under path; "" is path itself.
func subPath(path, setting string) string {
	if setting == "" {
		return path
	}
	return path + "." + setting
}

// kinds returns the registry c was parsed with, or the built-in one.
func (c *Config) kinds() *Registry {
	if c.registry != nil {
		return c.registry
	}
	return defaultRegistry()
}
