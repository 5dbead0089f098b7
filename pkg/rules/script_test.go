package rules

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

// The golden scripts in testdata/*.test drive an engine command by command.
// Commands:
//
//	schema name:type ...           fields records carry (type "any" = untyped)
//	option quarantineAfter=N       engine options, before the first rule
//	                               (also maxSignalPoints=N, stateTTL=DURATION)
//	rule yaml|json ... end         apply a rule document (indented lines)
//	delete ID                      delete a rule
//	record TIME field=value ...    process a record at event time TIME
//	watermark TIME                 advance the watermark ("end": end of input)
//	stats ID name=value ...        check counters (evaluations, errors, alerts,
//	                               dryRunAlerts, quarantined, keys.STATE)
//
// Lines starting with "=> " after a command are its expected output, all of
// it and in order: a command followed by none must produce nothing. TIME is
// a Go duration from the epoch ("5m30s") or milliseconds.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.test")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".test"), func(t *testing.T) {
			runScript(t, f)
		})
	}
}

type scriptCmd struct {
	line   int
	words  []string
	body   string
	expect []string
}

func parseScript(t *testing.T, path string) []scriptCmd {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var cmds []scriptCmd
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case strings.HasPrefix(trimmed, "=>"):
			require.NotEmpty(t, cmds, "line %d: expectation before any command", n)
			cmds[len(cmds)-1].expect = append(cmds[len(cmds)-1].expect, strings.TrimSpace(strings.TrimPrefix(trimmed, "=>")))
			continue
		}
		c := scriptCmd{line: n, words: strings.Fields(trimmed)}
		if c.words[0] == "rule" {
			var body []string
			indent := -1
			for sc.Scan() {
				n++
				l := sc.Text()
				if strings.TrimSpace(l) == "end" {
					break
				}
				if indent < 0 && strings.TrimSpace(l) != "" {
					indent = len(l) - len(strings.TrimLeft(l, " "))
				}
				if len(l) >= indent && indent > 0 {
					l = l[indent:]
				}
				body = append(body, l)
			}
			c.body = strings.Join(body, "\n")
		}
		cmds = append(cmds, c)
	}
	require.NoError(t, sc.Err())
	return cmds
}

func parseTime(t *testing.T, s string) int64 {
	if s == "end" {
		return math.MaxInt64 // the end-of-input watermark
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms
	}
	d, err := time.ParseDuration(s)
	require.NoError(t, err, "time %q", s)
	return d.Milliseconds()
}

func fmtTime(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }

func formatAlert(a Alert) string {
	s := fmt.Sprintf("alert %s v%d %s %s->%s group=%s at=%s", a.RuleID, a.RuleVersion, a.Key, a.OldState, a.NewState, a.Group, fmtTime(a.EventTime))
	if a.DryRun {
		s += " dryrun"
	}
	return s
}

func parseFieldValue(t *testing.T, typ record.Type, s string) record.Value {
	if s == "null" {
		return record.Null
	}
	switch typ {
	case record.TypeString:
		return record.String(strings.Trim(s, `"`))
	case record.TypeInt:
		n, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err)
		return record.Int(n)
	case record.TypeFloat:
		f, err := strconv.ParseFloat(s, 64)
		require.NoError(t, err)
		return record.Float(f)
	case record.TypeBool:
		return record.Bool(s == "true")
	}
	if strings.HasPrefix(s, `"`) {
		return record.String(strings.Trim(s, `"`))
	}
	if s == "true" || s == "false" {
		return record.Bool(s == "true")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return record.Float(f)
	}
	return record.String(s)
}

func runScript(t *testing.T, path string) {
	var (
		schema *record.Schema
		eng    *Engine
		opts   = DefaultOptions()
	)
	engine := func() *Engine {
		if eng == nil {
			require.NotNil(t, schema, "schema must come first")
			var err error
			eng, err = New(schema, opts)
			require.NoError(t, err)
		}
		return eng
	}
	// Transitions of one key at one event time are numbered in their IDs.
	type instant struct {
		rule    string
		version int64
		key     string
		at      int64
	}
	seen := map[instant]int{}
	for _, c := range parseScript(t, path) {
		var out []string
		emit := func(a Alert) {
			in := instant{a.RuleID, a.RuleVersion, a.Key, a.EventTime}
			require.Equal(t, AlertIDN(a.RuleID, a.RuleVersion, a.Key, a.EventTime, a.NewState, seen[in]), a.ID)
			seen[in]++
			out = append(out, formatAlert(a))
		}
		where := fmt.Sprintf("%s:%d %s", path, c.line, strings.Join(c.words, " "))
		switch c.words[0] {
		case "schema":
			var fields []record.Field
			for _, w := range c.words[1:] {
				name, typ, _ := strings.Cut(w, ":")
				ft := record.TypeNull
				if typ != "any" {
					var err error
					ft, err = record.ParseType(typ)
					require.NoError(t, err, where)
				}
				fields = append(fields, record.Field{Name: name, Type: ft})
			}
			schema = record.MustSchema(fields...)
		case "option":
			for _, w := range c.words[1:] {
				k, v, _ := strings.Cut(w, "=")
				if k == "stateTTL" {
					d, err := time.ParseDuration(v)
					require.NoError(t, err, where)
					opts.StateTTL = d
					continue
				}
				n, err := strconv.Atoi(v)
				require.NoError(t, err, where)
				switch k {
				case "quarantineAfter":
					opts.QuarantineAfter = n
				case "maxSignalPoints":
					opts.MaxSignalPoints = n
				default:
					t.Fatalf("%s: unknown option %q", where, k)
				}
			}
		case "rule":
			rule, err := Parse([]byte(c.body), Format(c.words[1]))
			if err == nil {
				err = engine().Apply(Update{Rule: rule})
			}
			if err != nil {
				out = append(out, "error "+err.Error())
			}
		case "delete":
			require.NoError(t, engine().Apply(Update{Delete: c.words[1]}), where)
		case "record":
			e := engine()
			row := make(record.Row, schema.Len())
			for _, w := range c.words[2:] {
				k, v, _ := strings.Cut(w, "=")
				i, ok := schema.Index(k)
				require.True(t, ok, "%s: unknown field %q", where, k)
				row[i] = parseFieldValue(t, schema.Field(i).Type, v)
			}
			e.Process(row, parseTime(t, c.words[1]), emit)
		case "watermark":
			// An engine that never returns from Advance (the end-of-input
			// watermark once spun forever) fails the script instead of
			// hanging the test binary.
			done := make(chan struct{})
			var alerts []Alert
			go func() {
				defer close(done)
				engine().Advance(parseTime(t, c.words[1]), func(a Alert) { alerts = append(alerts, a) })
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("%s: Advance did not return", where)
			}
			for _, a := range alerts {
				emit(a)
			}
		case "stats":
			checkStats(t, where, engine(), c.words[1], c.words[2:])
		default:
			t.Fatalf("%s: unknown command", where)
		}
		require.Equal(t, c.expect, out, where)
	}
}

func checkStats(t *testing.T, where string, e *Engine, id string, checks []string) {
	var st *RuleStats
	for _, s := range e.Stats() {
		if s.ID == id {
			st = &s
		}
	}
	require.NotNil(t, st, "%s: no stats for rule %q", where, id)
	for _, c := range checks {
		k, want, _ := strings.Cut(c, "=")
		var got string
		switch {
		case k == "evaluations":
			got = strconv.FormatUint(st.Evaluations, 10)
		case k == "errors":
			got = strconv.FormatUint(st.Errors, 10)
		case k == "alerts":
			got = strconv.FormatUint(st.Alerts, 10)
		case k == "dryRunAlerts":
			got = strconv.FormatUint(st.DryRunAlerts, 10)
		case k == "quarantined":
			got = strconv.FormatBool(st.Quarantined)
		case k == "version":
			got = strconv.FormatInt(st.Version, 10)
		case strings.HasPrefix(k, "keys."):
			got = strconv.Itoa(st.Keys[strings.TrimPrefix(k, "keys.")])
		default:
			t.Fatalf("%s: unknown stat %q", where, k)
		}
		require.Equal(t, want, got, "%s: stat %s", where, k)
	}
}
