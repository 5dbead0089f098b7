package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/streamd/streamd/internal/fielderr"
)

// Problem is one thing wrong with a pipeline file, located by its YAML path
// and the line it was written on, so an operator can go straight to it.
type Problem struct {
	// Path is the YAML path, e.g. "stages[0].window.size"; empty when the
	// problem concerns the file as a whole.
	Path string
	// Line and Column are 1-based; 0 when the position is unknown (for
	// example for a Config built in Go rather than loaded from a file).
	Line, Column int
	// Msg says what is wrong and, where possible, what is expected.
	Msg string
}

// Error formats the problem as "line 12: stages[0].window.size: must be > 0".
func (p Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a pipeline file. Loading and
// validation collect all of them instead of stopping at the first, so one
// edit-validate round fixes a file.
type Problems []Problem

// Error lists the problems one per line, in file order.
func (ps Problems) Error() string {
	sorted := slices.Clone(ps)
	sorted.Sort()
	lines := make([]string, len(sorted))
	for i, p := range sorted {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns ps as an error, or nil when there are no problems; it avoids
// the typed-nil trap of returning an empty Problems as an error.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Sort orders the problems by line, then column; problems without a
// position come first. The sort is stable so problems on one line keep
// the order they were found in.
func (ps Problems) Sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
}

// position is where a YAML path was written.
type position struct {
	Line, Column int
}

// Problemf returns a Problem at path, positioned at the line the path was
// written on. When the path itself is absent from the file (a required
// field that was left out) the nearest ancestor that is present gives the
// line, so the builder can report semantic problems with lines too.
func (c *Config) Problemf(path string, format string, args ...any) Problem {
	p := Problem{Path: path, Msg: fmt.Sprintf(format, args...)}
	if c == nil {
		return p
	}
	for q := path; q != ""; q = parentPath(q) {
		if pos, ok := c.positions[q]; ok {
			p.Line, p.Column = pos.Line, pos.Column
			break
		}
	}
	return p
}

// parentPath strips the last element of a YAML path:
// "a.b[2].c" → "a.b[2]" → "a.b" → "a" → "".
func parentPath(p string) string {
	i := max(strings.LastIndexByte(p, '.'), strings.LastIndexByte(p, '['))
	if i < 0 {
		return ""
	}
	return p[:i]
}

// DefaultMaxFileBytes bounds a pipeline file. Real pipeline files are a
// few kilobytes; without a bound a 200 MB file took 1.3 GB of memory to
// parse before a single problem was reported.
const DefaultMaxFileBytes = 4 << 20

// Load reads and decodes the pipeline file at path, refusing files over
// DefaultMaxFileBytes; see LoadLimit and Parse.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	return LoadLimit(path, lookupEnv, DefaultMaxFileBytes)
}

// LoadLimit is Load with a size limit of maxBytes (<= 0 means the default).
// The limit is checked before parsing, also for files whose size is not
// known in advance (pipes).
func LoadLimit(path string, lookupEnv func(string) (string, bool), maxBytes int64) (*Config, error) {
	return loadLimit(nil, path, lookupEnv, maxBytes)
}

func loadLimit(r *Registry, path string, lookupEnv func(string) (string, bool), maxBytes int64) (*Config, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxFileBytes
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read pipeline file: %w", err)
	}
	defer func() { _ = f.Close() }()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > maxBytes {
		return nil, Problems{{Msg: fmt.Sprintf("pipeline file is %d bytes, over the limit of %d bytes (--max-config-bytes)", st.Size(), maxBytes)}}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read pipeline file: %w", err)
	}
	if int64(len(data)) > maxBytes {
		return nil, Problems{{Msg: fmt.Sprintf("pipeline file is over the limit of %d bytes (--max-config-bytes)", maxBytes)}}
	}
	return parse(r, data, lookupEnv)
}

// Parse decodes a pipeline file. Environment references in scalar values
// are expanded first: ${VAR} (a problem when VAR is unset), ${VAR:-default}
// (default when VAR is unset or empty) and $$ for a literal $. Unknown
// fields, values of the wrong type and unset variables are all reported,
// as Problems, each with its YAML path and line. lookupEnv nil means
// os.LookupEnv.
//
// Parse neither applies defaults nor validates: call ApplyDefaults and
// Validate on the result. Parse knows the built-in source and sink kinds;
// Registry.Parse knows a registry's.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	return parse(nil, data, lookupEnv)
}

func parse(r *Registry, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	root, ps := parseDocument(data)
	if len(ps) > 0 {
		return nil, ps
	}
	l := &loader{
		lookupEnv: lookupEnv,
		positions: make(map[string]position),
		fields:    make(map[reflect.Type]*structFields),
		budget:    maxWalkNodes,

		unexpanded: make(map[*yaml.Node]bool),
		registry:   r,
	}
	cfg := &Config{registry: r}
	if root == nil || isNull(root) {
		// An empty file decodes to an empty Config; Validate says what is missing.
		cfg.positions = l.positions
		return cfg, nil
	}
	l.expand(root, "")
	l.walk(root, reflect.TypeFor[Config](), "")
	if len(l.problems) > 0 {
		l.problems.Sort()
		return nil, l.problems
	}
	// The walk has already checked every key and leaf, so this decode is
	// expected to succeed; anything it still rejects is reported as is.
	if err := safeDecode(root, cfg); err != nil {
		return nil, decodeProblems(err)
	}
	if ps := l.decodeBlocks(cfg); len(ps) > 0 {
		return nil, ps
	}
	cfg.positions = l.positions
	return cfg, nil
}

// kindBlock is the settings block of a registered (not built-in) kind,
// found by the walk and decoded after the rest of the file.
type kindBlock struct {
	path   string // "sources[0]" or "sinks[0]"
	source *SourceKind
	sink   *SinkKind
	node   *yaml.Node
}

// registeredBlock returns the registered kind whose block key is name in
// a struct of type t (a source or a sink), if any.
func (l *loader) registeredBlock(t reflect.Type, name string) (kindBlock, reflect.Type, bool) {
	r := l.registry
	if r == nil {
		r = defaultRegistry()
	}
	switch t {
	case reflect.TypeFor[SourceConfig]():
		for _, k := range r.sources {
			if k.block == nil && k.Block == name && k.NewBlock != nil {
				return kindBlock{source: k}, reflect.TypeOf(k.NewBlock()), true
			}
		}
	case reflect.TypeFor[SinkConfig]():
		for _, k := range r.sinks {
			if k.block == nil && k.Block == name && k.NewBlock != nil {
				return kindBlock{sink: k}, reflect.TypeOf(k.NewBlock()), true
			}
		}
	}
	return kindBlock{}, nil, false
}

// decodeBlocks decodes the blocks of registered kinds into the Blocks of
// their sources and sinks.
func (l *loader) decodeBlocks(cfg *Config) Problems {
	var ps Problems
	for _, kb := range l.blocks {
		var i int
		switch {
		case kb.source != nil:
			if _, err := fmt.Sscanf(kb.path, "sources[%d]", &i); err != nil || i >= len(cfg.Sources) {
				continue
			}
			if kb.source.blockOf(&cfg.Sources[i]) != nil {
				continue // an explicit block overrides a merged one
			}
			b := kb.source.NewBlock()
			if err := safeDecode(kb.node, b); err != nil {
				ps = append(ps, decodeProblems(err)...)
				continue
			}
			kb.source.storeBlock(&cfg.Sources[i], b)
		case kb.sink != nil:
			if _, err := fmt.Sscanf(kb.path, "sinks[%d]", &i); err != nil || i >= len(cfg.Sinks) {
				continue
			}
			if kb.sink.blockOf(&cfg.Sinks[i]) != nil {
				continue
			}
			b := kb.sink.NewBlock()
			if err := safeDecode(kb.node, b); err != nil {
				ps = append(ps, decodeProblems(err)...)
				continue
			}
			kb.sink.storeBlock(&cfg.Sinks[i], b)
		}
	}
	ps.Sort()
	return ps
}

// maxWalkNodes bounds the nodes visited while checking a document, so a
// few aliases cannot make a small file expand into billions of nodes.
const maxWalkNodes = 1 << 20

var syntaxErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseDocument parses data into a node tree and returns the document's
// root content (nil for an empty file).
func parseDocument(data []byte) (root *yaml.Node, ps Problems) {
	defer func() {
		if r := recover(); r != nil {
			root, ps = nil, Problems{{Msg: fmt.Sprintf("malformed YAML: %v", r)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, Problems{syntaxProblem(err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, Problems{{Line: extra.Line, Column: extra.Column, Msg: "a pipeline file holds one YAML document; found another"}}
	case !errors.Is(err, io.EOF):
		return nil, Problems{syntaxProblem(err)}
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

// syntaxProblem turns a YAML syntax error into a Problem with its line.
func syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := syntaxErrLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return Problem{Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

var typeErrLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// decodeProblems turns an error from yaml's decoder into Problems.
func decodeProblems(err error) Problems {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return Problems{{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	ps := make(Problems, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := typeErrLine.FindStringSubmatch(e); m != nil {
			line, _ := strconv.Atoi(m[1])
			ps = append(ps, Problem{Line: line, Msg: m[2]})
			continue
		}
		ps = append(ps, Problem{Msg: e})
	}
	ps.Sort()
	return ps
}

// safeDecode decodes n into v, turning a panic inside the YAML library into
// an error: a malformed file must never take the process down.
func safeDecode(n *yaml.Node, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode YAML: %v", r)
		}
	}()
	return n.Decode(v)
}

// loader carries the state of one Parse: the problems found so far and
// the position of every path.
type loader struct {
	lookupEnv func(string) (string, bool)
	positions map[string]position
	problems  Problems
	fields    map[reflect.Type]*structFields
	budget    int
	// unexpanded holds scalars whose references could not be expanded;
	// they are already reported, so their type is not checked.
	unexpanded map[*yaml.Node]bool
	// registry knows the blocks of registered kinds; nil means the
	// built-in kinds. blocks are the registered kinds' blocks found.
	registry *Registry
	blocks   []kindBlock
}

func (l *loader) problem(path string, at *yaml.Node, format string, args ...any) {
	p := Problem{Path: path, Msg: fmt.Sprintf(format, args...)}
	if at != nil {
		p.Line, p.Column = at.Line, at.Column
	}
	l.problems = append(l.problems, p)
}

func (l *loader) record(path string, at *yaml.Node) {
	if _, ok := l.positions[path]; !ok {
		l.positions[path] = position{Line: at.Line, Column: at.Column}
	}
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func joinIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// expand substitutes environment references in every scalar value (never
// in keys) in place, so each node keeps its own line. Aliases are not
// followed: the node they point to is expanded where it is defined, and
// expanding it twice would turn an escaped "$${X}" into a reference.
func (l *loader) expand(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			l.expand(n.Content[i+1], joinKey(path, n.Content[i].Value))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			l.expand(c, joinIndex(path, i))
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		out, substituted, errs := expandEnv(n.Value, l.lookupEnv)
		for _, err := range errs {
			l.problem(path, n, "%s", err)
		}
		if len(errs) > 0 {
			l.unexpanded[n] = true
			return
		}
		n.Value = out
		if substituted && n.Style&yaml.TaggedStyle == 0 {
			// Resolve the expanded text as if it had been written plain, so
			// size: "${WINDOW:-60s}" and keyGroups: ${KEY_GROUPS} decode
			// into their fields' types. An explicit tag (!!str) still wins.
			n.Tag, n.Style = "", 0
		}
	}
}

// expandEnv expands ${VAR}, ${VAR:-default} and $$ in s. A $ followed by
// anything else is kept, so expressions such as "$env" pass through.
// substituted reports whether any reference was expanded.
func expandEnv(s string, lookup func(string) (string, bool)) (out string, substituted bool, errs []error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				errs = append(errs, fmt.Errorf("unterminated %q in %q (write $$ for a literal $)", "${", s))
				return "", false, errs
			}
			ref := s[i+2 : i+2+end]
			i += 2 + end + 1
			name, def, hasDef := strings.Cut(ref, ":-")
			if !validEnvName(name) {
				errs = append(errs, fmt.Errorf("invalid environment variable name %q", name))
				continue
			}
			v, ok := lookup(name)
			switch {
			case hasDef && (!ok || v == ""):
				v = def
			case !ok:
				errs = append(errs, fmt.Errorf("environment variable %s is not set (use ${%s:-default} for a default)", name, name))
				continue
			}
			b.WriteString(v)
			substituted = true
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), substituted, errs
}

// validEnvName reports whether s is a POSIX-style variable name.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// walk checks n against the Go type t the way the decoder will see it:
// every mapping key must be a known field, every leaf must decode into its
// type. It records the position of every path it visits and reports every
// problem, so a file with several mistakes gets them all at once.
func (l *loader) walk(n *yaml.Node, t reflect.Type, path string) {
	if l.budget--; l.budget < 0 {
		if l.budget == -1 {
			l.problem(path, n, "document too large: more than %d nodes after expanding aliases", maxWalkNodes)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
	}
	if isNull(n) || l.unexpanded[n] {
		// null decodes to the zero value of any type; an unexpanded
		// reference has been reported already.
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		l.leaf(n, t, path)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		l.walk(n, t.Elem(), path)
	case reflect.Struct:
		l.mapping(n, t, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			l.problem(path, n, "must be a list, got %s", describe(n))
			return
		}
		for i, c := range n.Content {
			p := joinIndex(path, i)
			l.record(p, c)
			l.walk(c, t.Elem(), p)
		}
	case reflect.Map, reflect.Interface:
		// Free-form values: anything the decoder accepts is fine.
	default:
		l.leaf(n, t, path)
	}
}

// mapping checks a mapping node against struct type t.
func (l *loader) mapping(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		l.problem(path, n, "must be a mapping, got %s", describe(n))
		return
	}
	sf := l.structFields(t)
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			l.problem(path, k, "keys must be plain names, got %s", describe(k))
			continue
		}
		name := k.Value
		if first, dup := seen[name]; dup {
			l.problem(joinKey(path, name), k, "duplicate field (first at line %d)", first.Line)
			continue
		}
		seen[name] = k
		ft, ok := sf.types[name]
		if !ok {
			kb, bt, found := l.registeredBlock(t, name)
			if !found {
				l.problem(path, k, "%s", unknownField(name, sf.names))
				continue
			}
			kb.path, kb.node = path, v
			l.blocks = append(l.blocks, kb)
			ft = bt
		}
		p := joinKey(path, name)
		l.record(p, k)
		l.walk(v, ft, p)
	}
	// Merged mappings ("<<: *defaults") are checked after the explicit keys,
	// which override them and so own the recorded positions.
	for _, m := range merges {
		if m.Kind == yaml.AliasNode && m.Alias != nil {
			m = m.Alias
		}
		if m.Kind == yaml.SequenceNode {
			for _, c := range m.Content {
				l.walk(c, t, path)
			}
			continue
		}
		l.walk(m, t, path)
	}
}

// leaf checks that a scalar decodes into t by decoding it on its own.
func (l *loader) leaf(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		l.problem(path, n, "must be a single value, got %s", describe(n))
		return
	}
	if err := safeDecode(n, reflect.New(t).Interface()); err != nil {
		l.problem(path, n, "%s", leafMessage(err, t, n))
		return
	}
	// yaml.v3 truncates 1.5 to 1 for an integer field; a pipeline file
	// that says 1.5 for a count means something else, so reject it.
	if isIntKind(t.Kind()) && n.ShortTag() == "!!float" {
		if f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64); err != nil || f != math.Trunc(f) {
			l.problem(path, n, "must be an integer, got %q", n.Value)
		}
	}
}

func isIntKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// leafMessage says what a leaf should have been, in the file's terms
// rather than Go's ("must be an integer" instead of "cannot unmarshal
// !!str into int").
func leafMessage(err error, t reflect.Type, n *yaml.Node) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("must be an integer, got %q", n.Value)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("must be a non-negative integer, got %q", n.Value)
	case reflect.Float32, reflect.Float64:
		return fmt.Sprintf("must be a number, got %q", n.Value)
	case reflect.Bool:
		return fmt.Sprintf("must be true or false, got %q", n.Value)
	}
	if len(te.Errors) > 0 {
		if m := typeErrLine.FindStringSubmatch(te.Errors[0]); m != nil {
			return m[2]
		}
		return te.Errors[0]
	}
	return err.Error()
}

// describe names a node's kind for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// structFields are the YAML keys of a struct type.
type structFields struct {
	types map[string]reflect.Type
	names []string // in declaration order, for messages
}

// structFields returns the keys yaml.v3 decodes into t: the yaml tag name,
// or the lower-cased field name, with inline structs flattened.
func (l *loader) structFields(t reflect.Type) *structFields {
	if sf, ok := l.fields[t]; ok {
		return sf
	}
	sf := &structFields{types: make(map[string]reflect.Type)}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			if slices.Contains(strings.Split(opts, ","), "inline") && f.Type.Kind() == reflect.Struct {
				add(f.Type)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			sf.types[name] = f.Type
			sf.names = append(sf.names, name)
		}
	}
	add(t)
	l.fields[t] = sf
	return sf
}

// unknownField words the problem for an unknown key, suggesting the known
// key it most likely misspells.
func unknownField(name string, known []string) string {
	// fielderr.Suggest allows one edit per three characters: "sizee" →
	// "size", "feild" → "field", but not "base" → "name".
	if best := fielderr.Suggest(name, known); best != "" {
		return fmt.Sprintf("unknown field %q (did you mean %q?)", name, best)
	}
	return fmt.Sprintf("unknown field %q (known fields: %s)", name, strings.Join(known, ", "))
}
