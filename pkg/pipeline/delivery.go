package pipeline

import (
	"fmt"
	"slices"
	"strings"
)

// Values of SinkConfig.Delivery.
const (
	deliveryAtLeastOnce = "atLeastOnce"
	deliveryExactlyOnce = "exactlyOnce"
)

// Delivery is the end-to-end delivery guarantee of a sink: what a crash
// and restart at any moment can do to the rows it outputs.
type Delivery int

// The guarantees, weakest first (docs/delivery.md has the table).
const (
	// DeliveryNone: a restart can lose rows and repeat rows.
	DeliveryNone Delivery = iota
	// DeliveryAtMostOnce: a restart can lose rows, never repeat them.
	DeliveryAtMostOnce
	// DeliveryAtLeastOnce: a restart can repeat rows, never lose them.
	DeliveryAtLeastOnce
	// DeliveryHeld: rows are held until their checkpoint completes, so a
	// restart repeats rows only when a crash interrupted their hand-over
	// to an output that can be neither read back nor taken back.
	DeliveryHeld
	// DeliveryExactlyOnce: the output equals that of a run that never
	// stopped.
	DeliveryExactlyOnce
)

// String is the name used in logs, `streamd validate` and the docs.
func (d Delivery) String() string {
	switch d {
	case DeliveryAtMostOnce:
		return "at-most-once"
	case DeliveryAtLeastOnce:
		return "at-least-once"
	case DeliveryHeld:
		return "at-least-once (held)"
	case DeliveryExactlyOnce:
		return "exactly-once"
	}
	return "none"
}

// SinkDelivery is the guarantee of one sink and the reason for it.
type SinkDelivery struct {
	Sink     string
	Type     string
	Delivery Delivery
	Reason   string
}

// String renders one line of `streamd validate`.
func (d SinkDelivery) String() string {
	return fmt.Sprintf("sink %q (%s): %s: %s", d.Sink, d.Type, d.Delivery, d.Reason)
}

// Deliveries returns the delivery guarantee of every sink of c, in file
// order: the weakest over the sources that feed the sink, given the
// checkpoints and the sink's type and delivery setting. It applies the
// defaults first (a pipeline file without a checkpoint block gets one).
func Deliveries(c *Config) []SinkDelivery {
	c.ApplyDefaults()
	out := make([]SinkDelivery, 0, len(c.Sinks))
	for _, sk := range c.Sinks {
		d := SinkDelivery{Sink: sk.Name, Type: sk.Type}
		d.Delivery, d.Reason = c.sinkDelivery(sk)
		out = append(out, d)
	}
	return out
}

func (c *Config) sinkDelivery(sk SinkConfig) (Delivery, string) {
	if !c.Checkpoints() {
		return DeliveryNone, "checkpoints are disabled: a restart starts with empty state from the committed offsets or the start positions, so rows read before it can be lost and rows published before it repeated"
	}
	for _, src := range c.sourcesOf(sk.Input) {
		if src.Type == sourceTypeStdin {
			return DeliveryAtMostOnce, fmt.Sprintf("source %q reads stdin, which cannot be read again after a restart: what was read since the last checkpoint is lost", src.Name)
		}
	}
	switch {
	case sk.Type == sinkTypeParquet:
		return DeliveryExactlyOnce, "files are published only when the checkpoint covering them completes, under deterministic names"
	case sk.Delivery == deliveryExactlyOnce && sk.Type == sinkTypeFile:
		return DeliveryExactlyOnce, "rows are held until the checkpoint that produced them completes; a hand-over a crash interrupts is cut back from the file and done again"
	case sk.Delivery == deliveryExactlyOnce && sk.Type == sinkTypeKafka:
		return DeliveryExactlyOnce, "rows are held until the checkpoint that produced them completes; a hand-over a crash interrupts is done again without the messages the topic already has (read back by their streamd-row header)"
	case sk.Delivery == deliveryExactlyOnce:
		reason := fmt.Sprintf("rows are held until the checkpoint that produced them completes, so only a crash while they are being handed over repeats them: %s output can be neither read back nor taken back", sk.Type)
		if sk.Input == builtinStreamAlerts {
			reason += " (the repeats have the same alert ids)"
		}
		return DeliveryHeld, reason
	}
	reason := "rows produced after the last checkpoint are produced again after a restart (delivery: exactlyOnce holds them until their checkpoint completes)"
	if sk.Input == builtinStreamAlerts {
		reason += "; alert ids are deterministic, so consumers can drop repeats"
	}
	return DeliveryAtLeastOnce, reason
}

// sourcesOf returns the sources whose records reach stream, in file order.
func (c *Config) sourcesOf(stream string) []SourceConfig {
	names := make(map[string]bool)
	var walk func(string, int)
	walk = func(stream string, depth int) {
		if depth > len(c.Stages)+1 {
			return // a cycle; Validate reports it
		}
		for _, s := range c.Sources {
			if s.Name == stream {
				names[s.Name] = true
				return
			}
		}
		for i := range c.Stages {
			if c.Stages[i].Name == stream {
				walk(c.stageInput(i), depth+1)
				return
			}
		}
	}
	everyStage := func(pick func(*StageConfig) bool) {
		for i := range c.Stages {
			if pick(&c.Stages[i]) {
				walk(c.Stages[i].Name, 0)
			}
		}
	}
	switch {
	case stream == builtinStreamDeadLetters:
		for _, s := range c.Sources {
			names[s.Name] = true
		}
	case stream == builtinStreamAlerts:
		everyStage(func(s *StageConfig) bool { return len(s.Alerts) > 0 })
	case stream == builtinStreamLate:
		everyStage(func(*StageConfig) bool { return true })
	case strings.HasSuffix(stream, "."+builtinStreamLate):
		walk(strings.TrimSuffix(stream, "."+builtinStreamLate), 0)
	default:
		walk(stream, 0)
	}
	var out []SourceConfig
	for _, s := range c.Sources {
		if names[s.Name] {
			out = append(out, s)
		}
	}
	return out
}

// stageInput is the stream stage i reads: its input, the previous stage,
// or the only source.
func (c *Config) stageInput(i int) string {
	if in := c.Stages[i].Input; in != "" {
		return in
	}
	if i > 0 {
		return c.Stages[i-1].Name
	}
	if len(c.Sources) == 1 {
		return c.Sources[0].Name
	}
	return ""
}

// deliveryProblems enforces the guarantees a pipeline file asks for: a sink
// with delivery: exactlyOnce must get it.
func (b *builder) deliveryProblems() {
	for i, d := range Deliveries(b.c) {
		sk := b.c.Sinks[i]
		if sk.Delivery == deliveryExactlyOnce && d.Delivery < DeliveryHeld && b.c.Checkpoints() {
			b.problem(fmt.Sprintf("sinks[%d].delivery", i), "exactlyOnce is not possible here: %s", d.Reason)
		}
	}
}

// Weakest returns the sinks whose guarantee is weaker than at-least-once.
func Weakest(ds []SinkDelivery) []SinkDelivery {
	return slices.DeleteFunc(slices.Clone(ds), func(d SinkDelivery) bool { return d.Delivery >= DeliveryAtLeastOnce })
}
