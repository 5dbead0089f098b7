package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/operator"
	kafkasrc "github.com/streamd/streamd/pkg/source/kafka"
)

// A pipeline file without a checkpoint block checkpoints to the default
// local directory, and its Kafka source commits offsets only through
// checkpoints: before, offsets were committed every 5s whether or not the
// output holding those records was published, and a kill lost records.
func TestNoCheckpointBlockGetsCheckpoints(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	doc := `name: logs
http: {listen: "off"}
sources:
  - name: logs
    type: kafka
    kafka: {brokers: ["127.0.0.1:1"], topics: [logs], group: g}
    decode: {fields: [{name: msg, type: string}]}
sinks:
  - {name: raw, input: logs, type: parquet, parquet: {path: out}}
`
	cfg, err := Parse([]byte(doc), nil)
	require.NoError(t, err)
	job, err := Build(cfg, Options{})
	require.NoError(t, err)
	require.True(t, cfg.DefaultCheckpoints())
	require.NotNil(t, job.Checkpoint, "checkpoints are on without a checkpoint block")
	require.Equal(t, DefaultCheckpointInterval.D(), job.Checkpoint.Interval)
	require.True(t, job.Checkpoint.SavepointOnStop)
	require.DirExists(t, filepath.Join(dir, DefaultCheckpointDir), "the default directory is relative to the working directory")
	require.True(t, kafkaAutoCommitOff(t, job), "offsets are committed by checkpoints only")
	require.Equal(t, []SinkDelivery{{Sink: "raw", Type: "parquet", Delivery: DeliveryExactlyOnce,
		Reason: "files are published only when the checkpoint covering them completes, under deterministic names"}}, Deliveries(cfg))

	off, err := Parse([]byte(strings.Replace(doc, "http:", "checkpoint: {enabled: false}\nhttp:", 1)), nil)
	require.NoError(t, err)
	job, err = Build(off, Options{})
	require.NoError(t, err)
	require.Nil(t, job.Checkpoint, "enabled: false turns checkpoints off")
	require.False(t, kafkaAutoCommitOff(t, job))
	require.Equal(t, DeliveryNone, Deliveries(off)[0].Delivery)
}

func kafkaAutoCommitOff(t *testing.T, job operator.Job) bool {
	t.Helper()
	src, ok := job.Sources[0].Source.(*kafkasrc.Source)
	require.True(t, ok)
	return src.AutoCommitDisabled()
}

// Every source/sink combination has one stated guarantee (the table in
// docs/delivery.md), and a sink that asks for exactlyOnce where it cannot
// have it is a problem.
func TestDeliveries(t *testing.T) {
	sources := map[string]string{
		"kafka":     `{name: src, type: kafka, kafka: {brokers: ["127.0.0.1:1"], topics: [t]}, decode: {fields: [{name: v, type: float}]}}`,
		"kinesis":   `{name: src, type: kinesis, kinesis: {stream: s, region: us-east-1}, decode: {fields: [{name: v, type: float}]}}`,
		"file":      `{name: src, type: file, file: {paths: [in.jsonl]}, decode: {fields: [{name: v, type: float}]}}`,
		"generator": `{name: src, type: generator, decode: {fields: [{name: v, path: value, type: float}]}}`,
		"stdin":     `{name: src, type: stdin, decode: {fields: [{name: v, type: float}]}}`,
	}
	sinks := map[string]string{
		"parquet": `type: parquet, parquet: {path: out}`,
		"file":    `type: file, file: {path: out.jsonl}`,
		"stdout":  `type: stdout`,
		"kafka":   `type: kafka, kafka: {brokers: ["127.0.0.1:1"], topic: t}`,
		"kinesis": `type: kinesis, kinesis: {stream: s, region: us-east-1}`,
		"webhook": `type: webhook, webhook: {url: "http://127.0.0.1:1/x"}`,
	}
	checkpoints := map[string]string{
		"default":  "",
		"explicit": "checkpoint: {dir: chk, interval: 1s}\n",
		"disabled": "checkpoint: {enabled: false}\n",
	}
	for srcType, src := range sources {
		for sinkType, sk := range sinks {
			for _, delivery := range []string{"", "atLeastOnce", "exactlyOnce"} {
				for cpName, cp := range checkpoints {
					name := fmt.Sprintf("%s→%s/%s/%s", srcType, sinkType, delivery, cpName)
					t.Run(name, func(t *testing.T) {
						d := ""
						if delivery != "" {
							d = ", delivery: " + delivery
						}
						doc := "name: d\n" + cp + "sources:\n  - " + src + "\nsinks:\n  - {name: out, input: src, " + sk + d + "}\n"
						cfg, err := Parse([]byte(doc), nil)
						require.NoError(t, err)
						got := Deliveries(cfg)[0]
						enabled := cpName == "explicit" || (cpName == "default" && srcType != "stdin")
						var want Delivery
						switch {
						case !enabled:
							want = DeliveryNone
						case srcType == "stdin":
							want = DeliveryAtMostOnce
						case sinkType == "parquet" || delivery == "exactlyOnce" && (sinkType == "file" || sinkType == "kafka"):
							want = DeliveryExactlyOnce
						case delivery == "exactlyOnce":
							// Held, but the output can be neither read back nor taken back.
							want = DeliveryHeld
						default:
							want = DeliveryAtLeastOnce
						}
						require.Equal(t, want, got.Delivery, got.Reason)
						ps := Check(cfg)
						if delivery == "exactlyOnce" && want < DeliveryHeld {
							require.NotEmpty(t, ps, "exactlyOnce that cannot be had is refused")
							require.Contains(t, ps.Error(), "sinks[0].delivery")
						} else {
							require.Empty(t, ps)
						}
					})
				}
			}
		}
	}
}

// The guarantee of a built-in stream or a stage is that of the sources
// feeding it.
func TestDeliveriesFollowStreams(t *testing.T) {
	doc := `name: d
sources:
  - {name: gen, type: generator, decode: {fields: [{name: v, path: value, type: float}]}}
  - {name: in, type: stdin, decode: {fields: [{name: v, type: float}]}}
checkpoint: {dir: chk}
stages:
  - {name: a, input: gen, window: {type: tumbling, size: 1m}, aggregates: [{fn: count}], alerts: [{name: x, when: "count > 1"}]}
  - {name: b, input: a, window: {type: tumbling, size: 1m}, aggregates: [{fn: count}]}
  - {name: c, input: in, window: {type: tumbling, size: 1m}, aggregates: [{fn: count}]}
sinks:
  - {name: s-b, input: b, type: parquet, parquet: {path: out}}
  - {name: s-c, input: c, type: parquet, parquet: {path: out}}
  - {name: s-alerts, input: alerts, type: stdout}
  - {name: s-dead, input: deadletters, type: parquet, parquet: {path: out}}
  - {name: s-late-a, input: a.late, type: parquet, parquet: {path: out}}
  - {name: s-late, input: late, type: parquet, parquet: {path: out}}
`
	cfg, err := Parse([]byte(doc), nil)
	require.NoError(t, err)
	got := map[string]Delivery{}
	for _, d := range Deliveries(cfg) {
		got[d.Sink] = d.Delivery
	}
	require.Equal(t, map[string]Delivery{
		"s-b": DeliveryExactlyOnce, "s-c": DeliveryAtMostOnce, "s-alerts": DeliveryAtLeastOnce,
		"s-dead": DeliveryAtMostOnce, "s-late-a": DeliveryExactlyOnce, "s-late": DeliveryAtMostOnce,
	}, got)
	require.Len(t, Weakest(Deliveries(cfg)), 3)
}
