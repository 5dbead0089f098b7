package operator

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/window"
)

// Golden scenarios drive the real runtime (split tasks, watermark
// generators, the keyBy exchange, subtasks with their valves and chained
// window stages) deterministically from scripts in testdata/golden, on the
// scripted runtime (scripted_test.go). Each script declares its splits,
// watermark strategy and stages, then interleaves input records and
// wall-clock steps with the outputs they must produce ("> " lines).
//
//	watermark bounded=5s idle=10s [sender=1m]   split watermark strategy
//	idleAdvance 30s                             event time follows the wall clock
//	splits a b                                  input splits
//	stage s1 tumbling size=1m lateness=0s key=key [input=s0] [emit=final] [offset=15s]
//	stage s2 sliding size=1m slide=20s key=key
//	stage s3 session gap=30s key=key
//	agg s1 count | sum value | max_by key max_value
//	in a 10s m1 3.5 [sender]                    split, event time, key, value
//	wall +15s                                   advance the wall clock
//	end                                         end of input
//	> s1 m1 0s..1m0s rev=0 count=2 sum_value=5  a window result
//	> s1 m1 0s..1m0s rev=0 retract count=2 …    a retraction of it
//	> late s1 m1 5s 3.5                         a late record
//
// Expected lines are written by hand from the semantics in docs/windows.md.
// GOLDEN_UPDATE=1 rewrites them from the actual output, to reformat a file
// after a deliberate change of the output format only.
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

type goldenStage struct {
	spec StageSpec
}

type golden struct {
	t       *testing.T
	wmCfg   WatermarkConfig
	idleAdv time.Duration
	splits  []string
	stages  []*goldenStage
	run     *scripted
	ended   bool
	seq     int64
}

func runGolden(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	synctest.Test(t, func(t *testing.T) {
		g := &golden{t: t, wmCfg: WatermarkConfig{SenderField: -1}}
		var got, want []string
		var lines []string
		for n, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
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
			if (fs[0] == "in" || fs[0] == "wall" || fs[0] == "end") && g.run == nil {
				g.start()
			}
			if err := g.exec(fs); err != nil {
				t.Fatalf("%s:%d: %v", path, n+1, err)
			}
			out := g.outputs()
			for _, o := range out {
				lines = append(lines, "> "+o)
			}
			got = append(got, out...)
		}
		if g.run == nil {
			g.start()
		}
		if !g.ended {
			// Scripts without "end" leave the runtime running; its
			// end-of-input results are not part of them.
			g.run.end()
		}
		if os.Getenv("GOLDEN_UPDATE") != "" {
			require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
			return
		}
		require.Equal(t, strings.Join(want, "\n"), strings.Join(got, "\n"), "outputs of %s", path)
	})
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
		g.splits = append(g.splits, fs[1:]...)
	case "stage":
		m := kv(fs[3:])
		kind, err := window.ParseKind(fs[2])
		if err != nil {
			return err
		}
		emit, err := window.ParseEmit(m["emit"])
		if err != nil {
			return err
		}
		size, _ := dur(m["size"])
		slide, _ := dur(m["slide"])
		gap, _ := dur(m["gap"])
		offset, _ := dur(m["offset"])
		late, _ := dur(m["lateness"])
		st := &goldenStage{spec: StageSpec{
			Name:            fs[1],
			Input:           m["input"],
			Assigner:        window.Assigner{Kind: kind, Size: size.Milliseconds(), Slide: slide.Milliseconds(), Gap: gap.Milliseconds(), Offset: offset.Milliseconds()},
			AllowedLateness: late,
			Emit:            emit,
			NewAggregate:    window.NewAggregate,
		}}
		if kind == window.Tumbling {
			st.spec.Assigner.Slide = st.spec.Assigner.Size
		}
		if k := m["key"]; k != "" {
			st.spec.KeyBy = strings.Split(k, ",")
		}
		if st.spec.Input == "" {
			st.spec.Input = "in"
			if n := len(g.stages); n > 0 {
				st.spec.Input = g.stages[n-1].spec.Name
			}
		}
		g.stages = append(g.stages, st)
	case "agg":
		for _, st := range g.stages {
			if st.spec.Name == fs[1] {
				spec := window.Spec{Fn: fs[2]}
				if len(fs) > 3 {
					spec.Field = fs[3]
				}
				if len(fs) > 4 {
					spec.By = fs[4]
				}
				st.spec.Aggregates = append(st.spec.Aggregates, spec)
				return nil
			}
		}
		return fmt.Errorf("no stage %q", fs[1])
	case "in", "wall", "end":
		if g.ended {
			return fmt.Errorf("%s after end", fs[0])
		}
	}
	switch fs[0] {
	case "in":
		ts, err := dur(fs[2])
		if err != nil {
			return err
		}
		val, err := strconv.ParseFloat(fs[4], 64)
		if err != nil {
			return err
		}
		g.seq++
		r := scriptRecord{T: ts.Milliseconds(), Key: fs[3], Value: val, Seq: g.seq}
		if len(fs) > 5 {
			r.Sender = fs[5]
		}
		if !slices.Contains(g.splits, fs[1]) {
			return fmt.Errorf("unknown split %q", fs[1])
		}
		g.run.feed(fs[1], []scriptRecord{r})
	case "wall":
		d, err := dur(strings.TrimPrefix(fs[1], "+"))
		if err != nil {
			return err
		}
		g.run.wall(d)
	case "end":
		g.run.end()
		g.ended = true
	case "watermark", "idleAdvance", "splits", "stage", "agg":
	default:
		return fmt.Errorf("unknown directive %q", fs[0])
	}
	return nil
}

func (g *golden) start() {
	job := Job{Name: "golden", Parallelism: 1, IdleAdvance: g.idleAdv}
	for _, st := range g.stages {
		job.Stages = append(job.Stages, st.spec)
	}
	g.run = startScripted(g.t, job, g.wmCfg, g.splits...)
}

// outputs renders what the runtime emitted since the last directive: stage
// by stage in declaration order, each in the order it was written.
func (g *golden) outputs() []string {
	if g.run == nil {
		return nil
	}
	rows := g.run.out.take()
	var out []string
	for _, st := range g.stages {
		name := st.spec.Name
		schema, _ := g.run.rt.Schema(name)
		nKey := len(st.spec.KeyBy)
		for _, c := range rows {
			switch c.stream {
			case name + ".late":
				out = append(out, fmt.Sprintf("late %s %s %s %v", name, c.row[0].S, time.Duration(c.time)*time.Millisecond, c.row[1].Float()))
			case name:
				var sb strings.Builder
				sb.WriteString(name)
				for k := 0; k < nKey; k++ {
					sb.WriteByte(' ')
					sb.Write(c.row[k].AppendText(nil))
				}
				start := time.Duration(c.row[nKey].Int()/1000) * time.Millisecond
				end := time.Duration(c.row[nKey+1].Int()/1000) * time.Millisecond
				fmt.Fprintf(&sb, " %s..%s rev=%d", start, end, c.row[nKey+2].Int())
				if c.row[nKey+3].Bool() {
					sb.WriteString(" retract")
				}
				for k := nKey + 4; k < len(c.row); k++ {
					fmt.Fprintf(&sb, " %s=%s", schema.Field(k).Name, c.row[k].GoString())
				}
				out = append(out, sb.String())
			}
		}
	}
	return out
}
