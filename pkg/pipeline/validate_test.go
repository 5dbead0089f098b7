package pipeline

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// baseDoc is a valid pipeline of 9 lines; cases append to it from line 10.
const baseDoc = `name: t
sources:
  - name: gen
    type: generator
    generator: {count: 10}
sinks:
  - name: out
    input: gen
    type: stdout
`

// indent prefixes each line with n spaces and ends it with a newline.
func indent(n int, lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.Repeat(" ", n))
		b.WriteString(l)
		b.WriteString("\n")
	}
	return b.String()
}

// sourceDoc is a pipeline whose single source "gen" continues with lines,
// the first of which is line 4.
func sourceDoc(lines ...string) string {
	return "name: t\nsources:\n  - name: gen\n" + indent(4, lines) +
		"sinks:\n  - {name: out, input: gen, type: stdout}\n"
}

// stageDoc is baseDoc plus a stage "s" (line 11) whose fields start at line 12.
func stageDoc(lines ...string) string {
	return baseDoc + "stages:\n  - name: s\n" + indent(4, lines)
}

// sinkDoc is a pipeline whose sink "out" (line 5) continues from line 6.
func sinkDoc(lines ...string) string {
	return "name: t\nsources:\n  - {name: gen, type: stdin}\nsinks:\n  - name: out\n" + indent(4, lines)
}

// stepDoc is baseDoc plus steps, the first at line 11.
func stepDoc(lines ...string) string {
	return baseDoc + "steps:\n" + indent(2, lines)
}

func TestValidateValid(t *testing.T) {
	docs := map[string]string{
		"base":  baseDoc,
		"stage": stageDoc("window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]"),
		// The slide need not divide the size: slices are gcd(size, slide).
		"sliding not dividing":        stageDoc("window: {type: sliding, size: 10m, slide: 4m}", "aggregates: [{fn: count}]"),
		"session":                     stageDoc("window: {type: session, gap: 30s}", "aggregates: [{fn: max_by, field: v, by: t}, {fn: quantile, field: v, q: 0.5}]"),
		"sink named after its stream": strings.Replace(baseDoc, "  - name: out", "  - name: gen", 1),
		"builtin streams":             baseDoc + "  - {name: a, input: alerts, type: stdout}\n  - {name: d, input: deadletters, type: stdout}\n  - {name: l, input: late, type: stdout}\n",
		"stage late stream":           strings.Replace(stageDoc("window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]"), "input: gen", "input: s.late", 1),
		"negative maxFuture":          sourceDoc("type: stdin", "eventTime: {maxFuture: -1s}"),
		"empty generator":             sourceDoc("type: generator", "generator:"),
		"file source":                 sourceDoc("type: file", "file: {paths: [a.jsonl, 'logs/*.jsonl'], follow: true}"),
		"listen off":                  baseDoc + "http: {listen: \"off\"}\n",
		"nested fields": sourceDoc("type: stdin", "decode:", "  fields:",
			"    - {name: geo, type: struct, fields: [{name: lat, type: float, required: true}, {name: at, type: timestamp, format: epoch_ms}]}",
			"    - {name: tags, type: list, items: {type: string}}",
			"    - {name: attrs, type: map, values: {type: list, items: {type: struct, fields: [{name: x, type: int}]}}}"),
		"stage reads earlier stage": stageDoc("window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]") +
			"  - {name: s2, input: s, window: {type: tumbling, size: 1h}, aggregates: [{fn: sum, field: count}]}\n",
		"steps": stepDoc(
			"- filter: a > 1 && b in ['x', 'y']",
			"- map: {fields: [{name: c, expr: a * 2, type: float}], keep: true}",
			"- flatMap: {expr: items, as: item, type: string}",
		),
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(doc), env())
			require.NoError(t, err)
			cfg.ApplyDefaults()
			require.Empty(t, cfg.Validate())
		})
	}
}

func TestValidateRules(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		path string
		line int
		msg  string // prefix
	}{
		// The pipeline as a whole.
		{"name required", strings.TrimPrefix(baseDoc, "name: t\n"), "name", 0, "required"},
		{"parallelism negative", baseDoc + "parallelism: -1\n", "parallelism", 10, "must be >= 0"},
		{"parallelism above keyGroups", baseDoc + "keyGroups: 4\nparallelism: 8\n", "parallelism", 11, "must be <= keyGroups (4), got 8"},
		{"keyGroups too many", baseDoc + "keyGroups: 40000\n", "keyGroups", 10, "must be in [1, 32768], got 40000"},
		{"keyGroups negative", baseDoc + "keyGroups: -1\n", "keyGroups", 10, "must be in [1, 32768], got -1"},
		{"batchSize negative", baseDoc + "batchSize: -5\n", "batchSize", 10, "must be > 0"},
		{"listen address", baseDoc + "http:\n  listen: nohost\n", "http.listen", 11, `invalid address "nohost"`},
		{"idleAdvance negative", baseDoc + "time:\n  idleAdvance: -1s\n", "time.idleAdvance", 11, "must be >= 0"},
		{"no sources", "name: t\nsinks: [{name: out, input: alerts, type: stdout}]\n", "sources", 0, "at least one source"},
		{"no sinks", "name: t\nsources: [{name: gen, type: stdin}]\n", "sinks", 0, "at least one sink"},
		{"sink names are unique", baseDoc + "  - {name: out, input: gen, type: stdout}\n", "sinks[1].name", 10, `name "out" already used by sinks[0]`},
		{"reserved name", strings.NewReplacer("name: gen", "name: deadletters", "input: gen", "input: deadletters").Replace(baseDoc), "sources[0].name", 3, `"deadletters" is reserved`},

		// Sources.
		{"source name required", "name: t\nsources:\n  - {name: gen, type: stdin}\n  - {type: stdin}\nsinks: [{name: out, input: gen, type: stdout}]\n", "sources[1].name", 4, "required"},
		{"source type required", sourceDoc("decode: {}"), "sources[0].type", 3, "required (one of generator, nexmark, file, stdin, kafka, kinesis)"},
		{"source type unknown", sourceDoc("type: kafkaa"), "sources[0].type", 4, `unknown source type "kafkaa"`},
		{"file block required", sourceDoc("type: file"), "sources[0].file", 3, "required for type file"},
		{"generator block on stdin", sourceDoc("type: stdin", "generator: {}"), "sources[0].generator", 5, "only applies to type generator"},
		{"file block on generator", sourceDoc("type: generator", "file: {paths: [x]}"), "sources[0].file", 5, "only applies to type file"},
		{"file paths required", sourceDoc("type: file", "file:", "  follow: true"), "sources[0].file.paths", 5, "at least one path"},
		{"file path empty", sourceDoc("type: file", "file:", "  paths: [a, '']"), "sources[0].file.paths[1]", 6, "must not be empty"},
		{"file pollInterval negative", sourceDoc("type: file", "file: {paths: [a], pollInterval: -1s}"), "sources[0].file.pollInterval", 5, "must be >= 0"},
		{"generator rate", sourceDoc("type: generator", "generator:", "  rate: -1"), "sources[0].generator.rate", 6, "must be a finite number >= 0"},
		{"generator rate infinite", sourceDoc("type: generator", "generator:", "  rate: .inf"), "sources[0].generator.rate", 6, "must be a finite number >= 0"},
		{"generator count", sourceDoc("type: generator", "generator: {count: -3}"), "sources[0].generator.count", 5, "must be >= 0"},
		{"generator machines", sourceDoc("type: generator", "generator:", "  machines: -2"), "sources[0].generator.machines", 6, "must be > 0, got -2"},
		{"generator tags", sourceDoc("type: generator", "generator:", "  tags: -2"), "sources[0].generator.tags", 6, "must be > 0, got -2"},
		{"generator startTime", sourceDoc("type: generator", "generator:", "  startTime: yesterday"), "sources[0].generator.startTime", 6, `invalid RFC 3339 time "yesterday"`},
		{"generator step", sourceDoc("type: generator", "generator:", "  step: -1ms"), "sources[0].generator.step", 6, "must be >= 0"},
		{"generator outOfOrderness", sourceDoc("type: generator", "generator:", "  outOfOrderness: -1s"), "sources[0].generator.outOfOrderness", 6, "must be >= 0"},
		{"generator lateBy", sourceDoc("type: generator", "generator:", "  lateBy: -1s"), "sources[0].generator.lateBy", 6, "must be >= 0"},
		{"generator lateFraction", sourceDoc("type: generator", "generator:", "  lateFraction: 1.5"), "sources[0].generator.lateFraction", 6, "must be in [0, 1], got 1.5"},
		{"generator malformedFraction", sourceDoc("type: generator", "generator:", "  malformedFraction: -0.1"), "sources[0].generator.malformedFraction", 6, "must be in [0, 1]"},
		{"nexmark block on file", sourceDoc("type: file", "file: {paths: [a]}", "nexmark: {events: 10}"), "sources[0].nexmark", 6, "only applies to type nexmark"},
		{"nexmark events", sourceDoc("type: nexmark", "nexmark:", "  events: -1"), "sources[0].nexmark.events", 6, "must be >= 0"},
		{"nexmark splits", sourceDoc("type: nexmark", "nexmark:", "  splits: -2"), "sources[0].nexmark.splits", 6, "must be > 0 (default 1), got -2"},
		{"nexmark splits above events", sourceDoc("type: nexmark", "nexmark:", "  events: 2", "  splits: 3"), "sources[0].nexmark.splits", 7, "3 splits for 2 events"},
		{"nexmark rate", sourceDoc("type: nexmark", "nexmark:", "  rate: .nan"), "sources[0].nexmark.rate", 6, "must be a finite number >= 0"},
		{"nexmark emitRate", sourceDoc("type: nexmark", "nexmark:", "  emitRate: -1"), "sources[0].nexmark.emitRate", 6, "must be a finite number >= 0"},
		{"nexmark baseTime", sourceDoc("type: nexmark", "nexmark:", "  baseTime: tuesday"), "sources[0].nexmark.baseTime", 6, `invalid RFC 3339 time "tuesday"`},
		{"nexmark baseTime range", sourceDoc("type: nexmark", "nexmark:", "  baseTime: 1960-01-01T00:00:00Z"), "sources[0].nexmark.baseTime", 6, "baseTime 1960-01-01T00:00:00Z must be between 1973"},
		{"nexmark format", sourceDoc("type: nexmark", "nexmark:", "  format: avro"), "sources[0].nexmark.format", 6, `unknown format "avro"`},
		{"struct without fields", sourceDoc("type: stdin", "decode:", "  fields:", "    - {name: geo, type: struct}"), "sources[0].decode.fields[0].fields", 7, `field "geo": a struct needs at least one field`},
		{"list without items", sourceDoc("type: stdin", "decode:", "  fields:", "    - name: spans", "      type: list", "      items: {type: struct, fields: [{name: ids, type: list}]}"),
			"sources[0].decode.fields[0].items.fields[0].items", 9, `field "spans[].ids": a list needs items`},
		{"member type unknown", sourceDoc("type: stdin", "decode:", "  fields:", "    - name: geo", "      type: struct", "      fields:", "        - {name: lat, type: decimal}"),
			"sources[0].decode.fields[0].fields[0].type", 10, `field "geo.lat": unknown type "decimal"`},
		{"items on a map", sourceDoc("type: stdin", "decode:", "  fields:", "    - name: attrs", "      type: map", "      values: {type: string}", "      items: {type: string}"),
			"sources[0].decode.fields[0].items", 10, `field "attrs": a map has values, not items`},
		{"fields on a scalar", sourceDoc("type: stdin", "decode:", "  fields:", "    - name: n", "      type: int", "      fields: [{name: a, type: int}]"),
			"sources[0].decode.fields[0].fields", 9, `field "n": only a struct field has fields`},
		{"required item", sourceDoc("type: stdin", "decode:", "  fields:", "    - name: tags", "      type: list", "      items: {type: string, required: true}"),
			"sources[0].decode.fields[0].items", 9, `field "tags[]": items and values take a type`},
		{"duplicate member", sourceDoc("type: stdin", "decode:", "  fields:", "    - name: geo", "      type: struct", "      fields:", "        - {name: a, type: int}", "        - {name: a, type: int}"),
			"sources[0].decode.fields[0].fields[1].name", 11, `field "geo.a" already declared`},
		{"decode format", sourceDoc("type: stdin", "decode:", "  format: xml"), "sources[0].decode.format", 6, `unknown format "xml"`},
		{"field name required", sourceDoc("type: stdin", "decode:", "  fields:", "    - {type: int}"), "sources[0].decode.fields[0].name", 7, "required"},
		{"field name unique", sourceDoc("type: stdin", "decode:", "  fields:", "    - {name: a, type: int}", "    - {name: a, type: int}"), "sources[0].decode.fields[1].name", 8, `field "a" already declared at sources[0].decode.fields[0]`},
		{"field type required", sourceDoc("type: stdin", "decode:", "  fields:", "    - {name: a}"), "sources[0].decode.fields[0].type", 7, "required"},
		{"field type unknown", sourceDoc("type: stdin", "decode:", "  fields:", "    - name: a", "      type: decimal"), "sources[0].decode.fields[0].type", 8, `unknown type "decimal"`},
		{"field format on non-timestamp", sourceDoc("type: stdin", "decode:", "  fields:", "    - {name: a, type: int, format: epoch_ms}"), "sources[0].decode.fields[0].format", 7, "only applies to timestamp fields"},
		{"timestamp format unknown", sourceDoc("type: stdin", "decode:", "  fields:", "    - name: a", "      type: timestamp", "      format: epoch_minutes"), "sources[0].decode.fields[0].format", 9, `unknown timestamp format "epoch_minutes"`},
		{"eventTime field undeclared", sourceDoc("type: stdin", "eventTime:", "  field: ts"), "sources[0].eventTime.field", 6, `field "ts" is not declared`},
		{"eventTime field not a timestamp", sourceDoc("type: stdin", "decode: {fields: [{name: ts, type: int}]}", "eventTime:", "  field: ts"), "sources[0].eventTime.field", 7, `field "ts" has type int`},
		{"watermark strategy", sourceDoc("type: stdin", "watermark:", "  strategy: newest"), "sources[0].watermark.strategy", 6, `unknown strategy "newest" (want bounded, perSender)`},
		{"perSender needs senderField", sourceDoc("type: stdin", "watermark:", "  strategy: perSender"), "sources[0].watermark.senderField", 5, "required for the perSender strategy"},
		{"senderField undeclared", sourceDoc("type: stdin", "watermark:", "  strategy: perSender", "  senderField: device"), "sources[0].watermark.senderField", 7, `field "device" is not declared`},
		{"senderField on bounded", sourceDoc("type: stdin", "decode: {fields: [{name: d, type: string}]}", "watermark:", "  senderField: d"), "sources[0].watermark.senderField", 7, "only applies to the perSender strategy"},
		{"maxOutOfOrderness negative", sourceDoc("type: stdin", "watermark: {maxOutOfOrderness: -5s}"), "sources[0].watermark.maxOutOfOrderness", 5, "must be >= 0"},
		{"idleTimeout negative", sourceDoc("type: stdin", "watermark: {idleTimeout: -5s}"), "sources[0].watermark.idleTimeout", 5, "must be >= 0"},
		{"senderIdleTimeout negative", sourceDoc("type: stdin", "watermark: {senderIdleTimeout: -5s}"), "sources[0].watermark.senderIdleTimeout", 5, "must be >= 0"},
		{"senderTTL on bounded", sourceDoc("type: stdin", "watermark: {senderTTL: 1h}"), "sources[0].watermark", 5, "senderTTL and maxSenders only apply to the perSender strategy"},
		{"senderTTL negative", sourceDoc("type: stdin", "decode: {fields: [{name: d, type: string}]}", "watermark: {strategy: perSender, senderField: d, senderTTL: -1m}"), "sources[0].watermark.senderTTL", 6, "must be > 0"},
		{"maxSenders negative", sourceDoc("type: stdin", "decode: {fields: [{name: d, type: string}]}", "watermark: {strategy: perSender, senderField: d, maxSenders: -1}"), "sources[0].watermark.maxSenders", 6, "must be >= 0"},
		{"stateTTL negative", stageDoc("stateTTL: -1m", "window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]"), "stages[0].stateTTL", 12, "must be > 0"},
		{"maxHeldBytes without exactlyOnce", sinkDoc("input: gen", "type: stdout", "maxHeldBytes: 1MiB"), "sinks[0].maxHeldBytes", 8, "only applies to delivery exactlyOnce"},

		// Steps.
		{"step kind required", stepDoc("- name: nothing"), "steps[0]", 11, "one of filter, map or flatMap is required"},
		{"step kinds exclusive", stepDoc("- filter: a > 1", "  flatMap: {expr: xs, as: x}"), "steps[0]", 11, "only one of filter, map and flatMap may be set, found filter and flatMap"},
		{"filter syntax", stepDoc("- name: f", "  filter: a > > 1"), "steps[0].filter", 12, "invalid expression: unexpected token Operator(\">\") (line 1, column 5 of the expression)"},
		{"map fields required", stepDoc("- map: {keep: true}"), "steps[0].map.fields", 11, "at least one field"},
		{"map field name required", stepDoc("- map:", "    fields:", "      - {expr: a}"), "steps[0].map.fields[0].name", 13, "required"},
		{"map field name unique", stepDoc("- map:", "    fields:", "      - {name: b, expr: a}", "      - {name: b, expr: a}"), "steps[0].map.fields[1].name", 14, `field "b" already computed by steps[0].map.fields[0]`},
		{"map field expr required", stepDoc("- map:", "    fields:", "      - {name: b}"), "steps[0].map.fields[0].expr", 13, "required"},
		{"map field expr syntax", stepDoc("- map:", "    fields:", "      - name: b", "        expr: a +"), "steps[0].map.fields[0].expr", 14, "invalid expression"},
		{"map field type", stepDoc("- map:", "    fields:", "      - {name: b, expr: a, type: money}"), "steps[0].map.fields[0].type", 13, `unknown type "money"`},
		{"flatMap expr required", stepDoc("- flatMap: {as: x}"), "steps[0].flatMap.expr", 11, "required"},
		{"flatMap as required", stepDoc("- flatMap:", "    expr: xs"), "steps[0].flatMap.as", 11, "required"},
		{"flatMap type", stepDoc("- flatMap: {expr: xs, as: x, type: list}"), "steps[0].flatMap.type", 11, `unknown type "list"`},

		// Stages.
		{"stage name required", baseDoc + "stages:\n  - window: {type: tumbling, size: 1m}\n    aggregates: [{fn: count}]\n", "stages[0].name", 11, "required"},
		{"stage input unknown", stageDoc("input: nowhere", "window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]"), "stages[0].input", 12, `unknown stream "nowhere" (want a source or an earlier stage)`},
		{"stage input itself", stageDoc("input: s", "window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]"), "stages[0].input", 12, `stage "s" is not an earlier stage`},
		{"stage input later", stageDoc("input: s2", "window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]") +
			"  - {name: s2, window: {type: tumbling, size: 1m}, aggregates: [{fn: count}]}\n", "stages[0].input", 12, `stage "s2" is not an earlier stage`},
		{"first stage input with several sources", strings.Replace(stageDoc("window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]"), "sinks:", "  - {name: gen2, type: stdin}\nsinks:", 1), "stages[0].input", 12, "required for the first stage when there are 2 sources"},
		{"stage input builtin", stageDoc("input: late", "window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]"), "stages[0].input", 12, `unknown stream "late"`},
		{"keyBy empty", stageDoc("keyBy: [a, '']", "window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]"), "stages[0].keyBy[1]", 12, "must not be empty"},
		{"keyBy twice", stageDoc("keyBy:", "  - a", "  - a", "window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]"), "stages[0].keyBy[1]", 14, `field "a" listed twice`},
		{"window type required", stageDoc("window: {size: 1m}", "aggregates: [{fn: count}]"), "stages[0].window.type", 12, "required (one of tumbling, sliding, session)"},
		{"window missing", stageDoc("aggregates: [{fn: count}]"), "stages[0].window.type", 11, "required"},
		{"window type unknown", stageDoc("window: {type: hopping, size: 1m}", "aggregates: [{fn: count}]"), "stages[0].window.type", 12, `unknown window type "hopping"`},
		{"tumbling size required", stageDoc("window:", "  type: tumbling", "aggregates: [{fn: count}]"), "stages[0].window.size", 12, "required, must be > 0"},
		{"tumbling size zero", stageDoc("window:", "  type: tumbling", "  size: 0s", "aggregates: [{fn: count}]"), "stages[0].window.size", 14, "required, must be > 0"},
		{"tumbling size negative", stageDoc("window: {type: tumbling, size: -1m}", "aggregates: [{fn: count}]"), "stages[0].window.size", 12, "must be > 0, got -1m0s"},
		{"size whole milliseconds", stageDoc("window: {type: tumbling, size: 1500us}", "aggregates: [{fn: count}]"), "stages[0].window.size", 12, "must be a whole number of milliseconds, got 1.5ms"},
		{"tumbling with slide", stageDoc("window: {type: tumbling, size: 1m, slide: 10s}", "aggregates: [{fn: count}]"), "stages[0].window.slide", 12, "only applies to sliding windows"},
		{"tumbling with gap", stageDoc("window: {type: tumbling, size: 1m, gap: 10s}", "aggregates: [{fn: count}]"), "stages[0].window.gap", 12, "only applies to session windows"},
		{"sliding slide required", stageDoc("window:", "  type: sliding", "  size: 1m", "aggregates: [{fn: count}]"), "stages[0].window.slide", 12, "required, must be > 0"},
		{"sliding slide above size", stageDoc("window:", "  type: sliding", "  size: 1m", "  slide: 61s", "aggregates: [{fn: count}]"), "stages[0].window.slide", 15, "must be <= size (1m0s), got 1m1s"},
		{"sliding slide whole milliseconds", stageDoc("window: {type: sliding, size: 1m, slide: 100.5ms}", "aggregates: [{fn: count}]"), "stages[0].window.slide", 12, "must be a whole number of milliseconds"},
		{"session gap required", stageDoc("window: {type: session}", "aggregates: [{fn: count}]"), "stages[0].window.gap", 12, "required, must be > 0"},
		{"session gap negative", stageDoc("window: {type: session, gap: -1s}", "aggregates: [{fn: count}]"), "stages[0].window.gap", 12, "must be > 0"},
		{"session with size", stageDoc("window: {type: session, gap: 1s, size: 1m}", "aggregates: [{fn: count}]"), "stages[0].window.size", 12, "does not apply to session windows"},
		{"session with slide", stageDoc("window: {type: session, gap: 1s, slide: 1m}", "aggregates: [{fn: count}]"), "stages[0].window.slide", 12, "only applies to sliding windows"},
		{"allowedLateness negative", stageDoc("window: {type: tumbling, size: 1m}", "allowedLateness: -1s", "aggregates: [{fn: count}]"), "stages[0].allowedLateness", 13, "must be >= 0"},
		{"aggregates required", stageDoc("window: {type: tumbling, size: 1m}"), "stages[0].aggregates", 11, "at least one aggregate"},
		{"aggregate fn required", stageDoc("window: {type: tumbling, size: 1m}", "aggregates: [{field: v}]"), "stages[0].aggregates[0].fn", 13, "required (one of count, sum,"},
		{"aggregate fn unknown", stageDoc("window: {type: tumbling, size: 1m}", "aggregates:", "  - fn: mean", "    field: v"), "stages[0].aggregates[0].fn", 14, `unknown aggregate "mean"`},
		{"aggregate field required", stageDoc("window: {type: tumbling, size: 1m}", "aggregates:", "  - fn: sum"), "stages[0].aggregates[0].field", 14, "required for sum"},
		{"max_by needs by", stageDoc("window: {type: tumbling, size: 1m}", "aggregates:", "  - {fn: max_by, field: v}"), "stages[0].aggregates[0].by", 14, "required for max_by"},
		{"min_by needs by", stageDoc("window: {type: tumbling, size: 1m}", "aggregates:", "  - {fn: min_by, field: v}"), "stages[0].aggregates[0].by", 14, "required for min_by"},
		{"by only for max_by", stageDoc("window: {type: tumbling, size: 1m}", "aggregates:", "  - {fn: sum, field: v, by: w}"), "stages[0].aggregates[0].by", 14, "only applies to max_by and min_by"},
		{"quantile q required", stageDoc("window: {type: tumbling, size: 1m}", "aggregates:", "  - {fn: quantile, field: v}"), "stages[0].aggregates[0].q", 14, "must be in (0, 1), got 0"},
		{"quantile q one", stageDoc("window: {type: tumbling, size: 1m}", "aggregates:", "  - {fn: quantile, field: v, q: 1}"), "stages[0].aggregates[0].q", 14, "must be in (0, 1), got 1"},
		{"quantile q nan", stageDoc("window: {type: tumbling, size: 1m}", "aggregates:", "  - {fn: quantile, field: v, q: .nan}"), "stages[0].aggregates[0].q", 14, "must be in (0, 1), got NaN"},
		{"q only for quantile", stageDoc("window: {type: tumbling, size: 1m}", "aggregates:", "  - {fn: avg, field: v, q: 0.5}"), "stages[0].aggregates[0].q", 14, "only applies to quantile"},
		{"aggregate output unique", stageDoc("window: {type: tumbling, size: 1m}", "aggregates:", "  - {fn: avg, field: v}", "  - {fn: max, field: w, as: avg_v}"), "stages[0].aggregates[1]", 15, `output field "avg_v" already produced by stages[0].aggregates[0]`},
		{"aggregate output clashes with key", stageDoc("keyBy: [count]", "window: {type: tumbling, size: 1m}", "aggregates:", "  - {fn: count}"), "stages[0].aggregates[0]", 15, `output field "count" already produced by keyBy`},
		{"alert name required", stageDoc("window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]", "alerts:", "  - when: count > 1"), "stages[0].alerts[0].name", 15, "required"},
		{"alert name unique", stageDoc("window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]", "alerts:", "  - {name: a, when: count > 1}", "  - {name: a, when: count > 2}"), "stages[0].alerts[1].name", 16, `alert "a" already defined at stages[0].alerts[0]`},
		{"alert when required", stageDoc("window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]", "alerts:", "  - name: a"), "stages[0].alerts[0].when", 15, "required"},
		{"alert when syntax", stageDoc("window: {type: tumbling, size: 1m}", "aggregates: [{fn: count}]", "alerts:", "  - name: a", "    when: count >"), "stages[0].alerts[0].when", 16, "invalid expression"},

		// Sinks.
		{"sink name required", strings.Replace(baseDoc, "  - name: out\n", "  - name: ''\n", 1), "sinks[0].name", 7, "required"},
		{"sink input required", sinkDoc("type: stdout"), "sinks[0].input", 5, "required (a source, a stage, or one of alerts, deadletters, late)"},
		{"sink input unknown", sinkDoc("type: stdout", "input: gne"), "sinks[0].input", 7, `unknown stream "gne" (want a source, a stage, <stage>.late, or one of alerts, deadletters, late)`},
		{"sink input late of unknown stage", sinkDoc("type: stdout", "input: gen.late"), "sinks[0].input", 7, `unknown stream "gen.late"`},
		{"sink type required", sinkDoc("input: gen"), "sinks[0].type", 5, "required (one of parquet, stdout, file, kafka, kinesis, webhook, discard)"},
		{"sink type unknown", sinkDoc("input: gen", "type: kafkaa"), "sinks[0].type", 7, `unknown sink type "kafkaa"`},
		{"kafka sink needs its block", sinkDoc("input: gen", "type: kafka"), "sinks[0].kafka", 5, "required for type kafka"},
		{"parquet block required", sinkDoc("input: gen", "type: parquet"), "sinks[0].parquet", 5, "required for type parquet"},
		{"parquet block on stdout", sinkDoc("input: gen", "type: stdout", "parquet: {path: x}"), "sinks[0].parquet", 8, "only applies to type parquet"},
		{"file block required", sinkDoc("input: gen", "type: file"), "sinks[0].file", 5, "required for type file"},
		{"file block on parquet", sinkDoc("input: gen", "type: parquet", "parquet: {path: x}", "file: {path: y}"), "sinks[0].file", 9, "only applies to type file"},
		{"file path required", sinkDoc("input: gen", "type: file", "file: {}"), "sinks[0].file.path", 8, "required"},
		{"parquet path required", sinkDoc("input: gen", "type: parquet", "parquet:", "  compression: zstd"), "sinks[0].parquet.path", 8, "required"},
		{"parquet compression", sinkDoc("input: gen", "type: parquet", "parquet:", "  path: x", "  compression: lz5"), "sinks[0].parquet.compression", 10, `unknown compression "lz5"`},
		{"parquet partition unclosed", sinkDoc("input: gen", "type: parquet", "parquet:", "  path: x", "  partition: dt={date/hour={hour}"), "sinks[0].parquet.partition", 10, `unclosed "{"`},
		{"parquet partition unmatched", sinkDoc("input: gen", "type: parquet", "parquet:", "  path: x", "  partition: dt=date}"), "sinks[0].parquet.partition", 10, `unmatched "}"`},
		{"parquet partition empty placeholder", sinkDoc("input: gen", "type: parquet", "parquet:", "  path: x", "  partition: dt={}"), "sinks[0].parquet.partition", 10, "empty placeholder"},
		{"parquet partition escapes", sinkDoc("input: gen", "type: parquet", "parquet:", "  path: x", "  partition: ../{tag}"), "sinks[0].parquet.partition", 10, "must be a relative path"},
		{"parquet rollRows negative", sinkDoc("input: gen", "type: parquet", "parquet:", "  path: x", "  rollRows: -1"), "sinks[0].parquet.rollRows", 10, "must be >= 0"},
		{"parquet rollAge negative", sinkDoc("input: gen", "type: parquet", "parquet:", "  path: x", "  rollAge: -1m"), "sinks[0].parquet.rollAge", 10, "must be >= 0"},
		{"parquet filter invalid", sinkDoc("input: gen", "type: parquet", "parquet:", "  path: x", "  filter: 'tag =='"), "sinks[0].parquet.filter", 10, "invalid expression"},
		{"parquet timestampUnit unknown", sinkDoc("input: gen", "type: parquet", "parquet:", "  path: x", "  timestampUnit: nanos"), "sinks[0].parquet.timestampUnit", 10, `unknown unit "nanos"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.doc), env())
			require.NoError(t, err, "document:\n%s", tt.doc)
			cfg.ApplyDefaults()
			ps := cfg.Validate()
			require.Len(t, ps, 1, "document:\n%s\nproblems:\n%v", tt.doc, ps)
			p := ps[0]
			require.Equal(t, tt.path, p.Path, "%v", p)
			require.Equal(t, tt.line, p.Line, "%v\ndocument:\n%s", p, tt.doc)
			require.True(t, strings.HasPrefix(p.Msg, tt.msg), "message:\n got %q\nwant %q...", p.Msg, tt.msg)
		})
	}
}

func TestValidateWithoutDefaults(t *testing.T) {
	// Zero values mean "default", so a Config validates the same before
	// ApplyDefaults as after it.
	cfg, err := Parse([]byte(sourceDoc("type: generator", "generator:")), env())
	require.NoError(t, err)
	ps := cfg.Validate()
	require.Len(t, ps, 1)
	require.Equal(t, "sources[0].generator", ps[0].Path)
	cfg.ApplyDefaults()
	require.Empty(t, cfg.Validate())
}

func TestValidateReportsEverything(t *testing.T) {
	doc := stageDoc(
		"window: {type: sliding, size: -1m, slide: 0s}",
		"aggregates: [{fn: sum}, {fn: quantile, field: v}]",
	) + "  - {window: {type: session}}\n"
	cfg, err := Parse([]byte(doc), env())
	require.NoError(t, err)
	var got []string
	for _, p := range cfg.Validate() {
		got = append(got, p.Error())
	}
	require.Equal(t, []string{
		"line 12: stages[0].window.size: must be > 0, got -1m0s",
		"line 12: stages[0].window.slide: required, must be > 0",
		"line 13: stages[0].aggregates[0].field: required for sum",
		"line 13: stages[0].aggregates[1].q: must be in (0, 1), got 0",
		// Same line: the name and aggregates fall back to the stage (column
		// 5), the gap to its window (column 6).
		"line 14: stages[1].name: required",
		"line 14: stages[1].aggregates: at least one aggregate is required",
		"line 14: stages[1].window.gap: required, must be > 0",
	}, got)
}
