package operator

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/window"
)

// Golden scenarios drive the runtime's event-time machinery — per-split
// watermark generators, the subtask valve and chained window operators —
// deterministically from scripts in testdata/golden. Each script declares
// its splits, watermark strategy and stages, then interleaves input records
// and wall-clock steps with the outputs they must produce ("> " lines).
//
//	watermark bounded=5s idle=10s [sender=1m]   split watermark strategy
//	idleAdvance 30s                             event time follows the wall clock
//	splits a b                                  input splits
//	stage s1 tumbling size=1m lateness=0s key=key [input=s0]
//	stage s2 sliding size=1m slide=20s key=key
//	stage s3 session gap=30s key=key
//	agg s1 count | sum value | max_by key max_value
//	in a 10s m1 3.5 [sender]                    split, event time, key, value
//	wall +15s                                   advance the wall clock
//	end                                         end of input
//	> s1 m1 0s..1m0s rev=0 count=2 sum_value=5  a window result
//	> late s1 a m1 5s                           a late record
//
// Set GOLDEN_UPDATE=1 to rewrite the expected lines from the actual output.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.test")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".test"), func(t *testing.T) {
			runGolden(t, f)
		})
	}
}

var goldenInput = record.MustSchema(
	record.Field{Name: "key", Type: record.TypeString},
	record.Field{Name: "value", Type: record.TypeFloat},
	record.Field{Name: "sender", Type: record.TypeString},
)

type goldenStage struct {
	name    string
	input   string
	op      *window.Operator
	keys    keyer
	aggs    []window.Spec
	asg     window.Assigner
	late    int64
	keyBy   []string
	inputWM int64
}

type golden struct {
	t       *testing.T
	now     time.Time
	wmCfg   WatermarkConfig
	idleAdv time.Duration
	splits  map[string]int
	gens    []*watermarker
	valve   *valve
	stages  []*goldenStage
	out     []string
}

func runGolden(t *testing.T, path string) {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	g := &golden{t: t, now: time.Unix(1_700_000_000, 0), splits: map[string]int{}, valve: newValve(), wmCfg: WatermarkConfig{SenderField: -1}}
	var got, want []string
	var lines []string
	sc := bufio.NewScanner(f)
	built := false
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, ">") {
			want = append(want, strings.TrimSpace(strings.TrimPrefix(trim, ">")))
			continue
		}
		lines = append(lines, line)
		if trim == "" || strings.HasPrefix(trim, "#") {
			continue
		}
		fs := strings.Fields(trim)
		if (fs[0] == "in" || fs[0] == "wall" || fs[0] == "end") && !built {
			g.build()
			built = true
		}
		g.out = nil
		if err := g.exec(fs); err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		for _, o := range g.out {
			lines = append(lines, "> "+o)
		}
		got = append(got, g.out...)
	}
	require.NoError(t, sc.Err())
	if os.Getenv("GOLDEN_UPDATE") != "" {
		require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
		return
	}
	require.Equal(t, strings.Join(want, "\n"), strings.Join(got, "\n"), "outputs of %s (set GOLDEN_UPDATE=1 to regenerate)", path)
}

func dur(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

func kv(fs []string) map[string]string {
	m := map[string]string{}
	for _, f := range fs {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

func (g *golden) exec(fs []string) error {
	switch fs[0] {
	case "watermark":
		m := kv(fs[1:])
		b, _ := dur(m["bounded"])
		idle, _ := dur(m["idle"])
		g.wmCfg.MaxOutOfOrderness = b.Milliseconds()
		g.wmCfg.IdleTimeout = idle
		if s, ok := m["sender"]; ok {
			d, err := dur(s)
			if err != nil {
				return err
			}
			g.wmCfg.SenderField, g.wmCfg.SenderIdleTimeout = 2, d
		}
	case "idleAdvance":
		d, err := dur(fs[1])
		g.idleAdv = d
		return err
	case "splits":
		for _, s := range fs[1:] {
			g.splits[s] = len(g.splits)
		}
	case "stage":
		m := kv(fs[3:])
		kind, err := window.ParseKind(fs[2])
		if err != nil {
			return err
		}
		st := &goldenStage{name: fs[1], input: m["input"]}
		size, _ := dur(m["size"])
		slide, _ := dur(m["slide"])
		gap, _ := dur(m["gap"])
		late, _ := dur(m["lateness"])
		st.asg = window.Assigner{Kind: kind, Size: size.Milliseconds(), Slide: slide.Milliseconds(), Gap: gap.Milliseconds()}
		if kind == window.Tumbling {
			st.asg.Slide = st.asg.Size
		}
		st.late = late.Milliseconds()
		if k := m["key"]; k != "" {
			st.keyBy = strings.Split(k, ",")
		}
		g.stages = append(g.stages, st)
	case "agg":
		for _, st := range g.stages {
			if st.name == fs[1] {
				spec := window.Spec{Fn: fs[2]}
				if len(fs) > 3 {
					spec.Field = fs[3]
				}
				if len(fs) > 4 {
					spec.By = fs[4]
				}
				st.aggs = append(st.aggs, spec)
				return nil
			}
		}
		return fmt.Errorf("no stage %q", fs[1])
	case "in":
		id, ok := g.splits[fs[1]]
		if !ok {
			return fmt.Errorf("unknown split %q", fs[1])
		}
		ts, err := dur(fs[2])
		if err != nil {
			return err
		}
		val, err := strconv.ParseFloat(fs[4], 64)
		if err != nil {
			return err
		}
		b := record.NewBatch(3, 1)
		row := b.AppendRow(ts.Milliseconds())
		row[0], row[1] = record.String(fs[3]), record.Float(val)
		if len(fs) > 5 {
			row[2] = record.String(fs[5])
		}
		g.gens[id].observe(b, g.now)
		wm, idle := g.gens[id].current(g.now)
		g.feed(0, b, fs[1], wm, idle, id)
	case "wall":
		d, err := dur(strings.TrimPrefix(fs[1], "+"))
		if err != nil {
			return err
		}
		g.now = g.now.Add(d)
		for id := range g.gens {
			wm, idle := g.gens[id].current(g.now)
			g.feed(0, nil, "", wm, idle, id)
		}
		if g.idleAdv > 0 {
			if wm, ok := g.valve.idleAdvance(g.now, g.idleAdv); ok {
				g.advance(0, wm)
			}
		}
	case "end":
		for _, id := range g.splits {
			g.valve.update(id, maxWM, false, true, g.now)
		}
		g.advance(0, maxWM)
	default:
		return fmt.Errorf("unknown directive %q", fs[0])
	}
	return nil
}

func (g *golden) build() {
	for range g.splits {
		g.gens = append(g.gens, newWatermarker(g.wmCfg, g.now))
	}
	for id := range g.splits {
		g.valve.input(g.splits[id])
	}
	in := goldenInput
	for _, st := range g.stages {
		var aggs []window.Aggregate
		for _, s := range st.aggs {
			a, err := window.NewAggregate(s, in)
			require.NoError(g.t, err)
			aggs = append(aggs, a)
		}
		op, err := window.NewOperator(window.Config{Assigner: st.asg, AllowedLateness: st.late, Input: in, KeyFields: st.keyBy, Aggregates: aggs})
		require.NoError(g.t, err)
		st.op = op
		for _, k := range st.keyBy {
			i, ok := in.Index(k)
			require.True(g.t, ok, "key %q", k)
			st.keys.idx = append(st.keys.idx, i)
		}
		in = op.ResultSchema()
	}
}

// feed processes a split's batch in stage 0 and moves event time on.
func (g *golden) feed(stage int, b *record.Batch, split string, wm int64, idle bool, id int) {
	st := g.stages[stage]
	out := window.Output{Results: record.NewBatch(st.op.ResultSchema().Len(), 8), Late: record.NewBatch(st.op.LateSchema().Len(), 8)}
	if b != nil {
		st.op.Process(g.keyed(st, b), &out)
	}
	combined, _ := g.valve.update(id, wm, idle, false, g.now)
	g.emit(stage, &out, split)
	g.advance(stage, combined)
}

func (g *golden) keyed(st *goldenStage, b *record.Batch) *record.Batch {
	b.Keys, b.KeyGroups = b.Keys[:0], b.KeyGroups[:0]
	for i := 0; i < b.Len(); i++ {
		k, built := st.keys.key(b.Row(i))
		if built {
			k = string(st.keys.buf)
		}
		b.Keys = append(b.Keys, k)
		b.KeyGroups = append(b.KeyGroups, 0)
	}
	return b
}

func (g *golden) advance(stage int, wm int64) {
	st := g.stages[stage]
	if wm <= st.op.Watermark() {
		return
	}
	out := window.Output{Results: record.NewBatch(st.op.ResultSchema().Len(), 8), Late: record.NewBatch(st.op.LateSchema().Len(), 8)}
	st.op.Advance(wm, &out)
	g.emit(stage, &out, "")
	if stage+1 < len(g.stages) {
		g.advance(stage+1, wm)
	}
}

func (g *golden) emit(stage int, out *window.Output, split string) {
	st := g.stages[stage]
	schema := st.op.ResultSchema()
	nKey := len(st.keyBy)
	for i := 0; i < out.Late.Len(); i++ {
		row := out.Late.Row(i)
		g.out = append(g.out, fmt.Sprintf("late %s %s %s %v", st.name, row[0].S, time.Duration(out.Late.Times[i])*time.Millisecond, row[1].Float()))
	}
	for i := 0; i < out.Results.Len(); i++ {
		row := out.Results.Row(i)
		var sb strings.Builder
		sb.WriteString(st.name)
		for k := 0; k < nKey; k++ {
			sb.WriteByte(' ')
			sb.Write(row[k].AppendText(nil))
		}
		start := time.Duration(row[nKey].Int()/1000) * time.Millisecond
		end := time.Duration(row[nKey+1].Int()/1000) * time.Millisecond
		fmt.Fprintf(&sb, " %s..%s rev=%d", start, end, row[nKey+2].Int())
		for k := nKey + 3; k < len(row); k++ {
			fmt.Fprintf(&sb, " %s=%s", schema.Field(k).Name, row[k].GoString())
		}
		g.out = append(g.out, sb.String())
	}
	if out.Results.Len() > 0 && stage+1 < len(g.stages) {
		next := g.stages[stage+1]
		nout := window.Output{Results: record.NewBatch(next.op.ResultSchema().Len(), 8), Late: record.NewBatch(next.op.LateSchema().Len(), 8)}
		next.op.Process(g.keyed(next, out.Results), &nout)
		g.emit(stage+1, &nout, split)
	}
}
