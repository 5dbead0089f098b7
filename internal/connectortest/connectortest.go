package connectortest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/streamd/streamd/pkg/pipeline"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
)

// Kind names, which are also the keys of their settings blocks.
const (
	SequenceKind = "sequence"
	MemoryKind   = "memory"
)

// DefaultStep is the event-time distance between sequence records when the
// block does not say, in milliseconds.
const DefaultStep = 1000

// SequenceConfig is the settings block of a sequence source:
//
//	sequence: {count: 100, start: 1, step: 1000}
type SequenceConfig struct {
	// Count is how many records the source emits before it ends (>= 0).
	Count int64 `yaml:"count"`
	// Start is the number of the first record.
	Start int64 `yaml:"start"`
	// Step is the event-time distance between records in milliseconds
	// (> 0); default DefaultStep.
	Step int64 `yaml:"step"`
}

// SequenceRecord is record i (0 <= i < Count) of the source: n = Start+i,
// parity "even" or "odd" after n, and ts = n*Step milliseconds since the
// epoch.
func SequenceRecord(c SequenceConfig, i int64) []byte {
	n := c.Start + i
	parity := "even"
	if n%2 != 0 {
		parity = "odd"
	}
	return fmt.Appendf(nil, `{"n":%d,"parity":%q,"ts":%d}`, n, parity, n*c.Step)
}

// MemoryConfig is the settings block of a memory sink:
//
//	memory: {maxRows: 1000}
type MemoryConfig struct {
	// MaxRows, when > 0, fails a write that would keep more rows than
	// this; 0 keeps every row.
	MaxRows int `yaml:"maxRows"`
}

// Memory receives the rows of every memory sink of the registry it was
// registered with, by sink name.
type Memory struct {
	mu   sync.Mutex
	rows map[string][]Row
}

// Row is one row a memory sink received: field name to value as
// record.Value.Any gives it (string, int64, float64, bool, time.Time, or
// nil for null), copied out of the batch.
type Row map[string]any

// Rows returns the rows the sink named name received so far, in the order
// each writer wrote them (writers of parallel tasks interleave).
func (m *Memory) Rows(name string) []Row {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.rows[name])
}

// Register adds the sequence source and the memory sink to r and returns
// where the memory sinks put their rows.
func Register(r *pipeline.Registry) (*Memory, error) {
	mem := &Memory{rows: make(map[string][]Row)}
	if err := r.RegisterSource(sequenceKind()); err != nil {
		return nil, err
	}
	if err := r.RegisterSink(memoryKind(mem)); err != nil {
		return nil, err
	}
	return mem, nil
}

func sequenceKind() pipeline.SourceKind {
	return pipeline.SourceKind{
		Name:     SequenceKind,
		Block:    SequenceKind,
		NewBlock: func() any { return &SequenceConfig{} },
		Defaults: func(b any) any {
			// "sequence:" with nothing under it decodes to no block; it
			// means all defaults.
			c, _ := b.(*SequenceConfig)
			if c == nil {
				c = &SequenceConfig{}
			}
			if c.Step == 0 {
				c.Step = DefaultStep
			}
			return c
		},
		// Validate gives the same answer before and after Defaults, so a
		// zero step (not yet defaulted) is not a problem.
		Validate: func(c *pipeline.BlockCheck, b any) {
			cfg := b.(*SequenceConfig)
			if cfg.Count < 0 {
				c.Problemf("count", "must be >= 0, got %d", cfg.Count)
			}
			if cfg.Step < 0 {
				c.Problemf("step", "must be > 0, got %d", cfg.Step)
			}
		},
		Open: func(sb *pipeline.SourceBuild) (source.Source, error) {
			return &sequenceSource{cfg: *sb.Block.(*SequenceConfig)}, nil
		},
	}
}

// sequenceSource has one bounded split; a position is the index of the
// next record.
type sequenceSource struct{ cfg SequenceConfig }

const splitID = "sequence-0"

func (s *sequenceSource) Splits(context.Context) ([]source.Split, error) {
	return []source.Split{{ID: splitID}}, nil
}

func (s *sequenceSource) Open(_ context.Context, sp source.Split, start *source.Position) (source.Reader, error) {
	if sp.ID != splitID {
		return nil, fmt.Errorf("open split %q: the sequence source has only %q", sp.ID, splitID)
	}
	r := &sequenceReader{cfg: s.cfg}
	if start != nil {
		if start.Offset < 0 || start.Offset > s.cfg.Count {
			return nil, fmt.Errorf("open split %q at %d: want 0 to %d", sp.ID, start.Offset, s.cfg.Count)
		}
		r.next = start.Offset
	}
	return r, nil
}

func (s *sequenceSource) Close(context.Context) error { return nil }

type sequenceReader struct {
	cfg  SequenceConfig
	next int64
}

func (r *sequenceReader) Read(_ context.Context, b *source.Batch, max int) error {
	for ; max > 0 && r.next < r.cfg.Count; max-- {
		b.Messages = append(b.Messages, source.Message{
			Value:    SequenceRecord(r.cfg, r.next),
			Position: source.Position{Offset: r.next},
		})
		r.next++
	}
	if r.next >= r.cfg.Count {
		return source.ErrEndOfSplit
	}
	return nil
}

// Position is where a restored reader resumes.
func (r *sequenceReader) Position() source.Position { return source.Position{Offset: r.next} }

func (r *sequenceReader) Close() error { return nil }

func memoryKind(mem *Memory) pipeline.SinkKind {
	return pipeline.SinkKind{
		Name:     MemoryKind,
		Block:    MemoryKind,
		NewBlock: func() any { return &MemoryConfig{} },
		Validate: func(c *pipeline.BlockCheck, b any) {
			if n := b.(*MemoryConfig).MaxRows; n < 0 {
				c.Problemf("maxRows", "must be >= 0, got %d", n)
			}
		},
		Build: func(kb *pipeline.SinkBuild) (sink.Sink, error) {
			if !kb.Open {
				return nil, nil // validate: nothing to check against the schema
			}
			return &memorySink{mem: mem, name: kb.Sink.Name, max: kb.Block.(*MemoryConfig).MaxRows}, nil
		},
	}
}

type memorySink struct {
	mem  *Memory
	name string
	max  int
}

func (s *memorySink) NewWriter(_ string, schema *record.Schema) (sink.Writer, error) {
	return &memoryWriter{s: s, schema: schema}, nil
}

func (s *memorySink) Close(context.Context) error { return nil }

type memoryWriter struct {
	s      *memorySink
	schema *record.Schema
}

func (w *memoryWriter) Write(_ context.Context, b *record.Batch) error {
	rows := make([]Row, b.Len())
	for i := range rows {
		row := make(Row, w.schema.Len())
		for j, v := range b.Row(i) {
			row[w.schema.Field(j).Name] = v.Clone().Any()
		}
		rows[i] = row
	}
	m := w.s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	if have := len(m.rows[w.s.name]); w.s.max > 0 && have+len(rows) > w.s.max {
		return fmt.Errorf("memory sink %q: %d rows would pass maxRows %d", w.s.name, have+len(rows), w.s.max)
	}
	m.rows[w.s.name] = append(m.rows[w.s.name], rows...)
	return nil
}

func (w *memoryWriter) Close(context.Context) error { return nil }
