package rules

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/record"
)

var testSchema = record.MustSchema(
	record.Field{Name: "equipmentId", Type: record.TypeString},
	record.Field{Name: "tag", Type: record.TypeString},
	record.Field{Name: "value", Type: record.TypeFloat},
	record.Field{Name: "quality", Type: record.TypeString},
)

const validYAML = `
id: filler-overheat
version: 3
description: water too hot
select: tag in ["water_temperature", "pressure"] && quality == "Ok"
key: [equipmentId]
signals:
  temperature: {when: 'tag == "water_temperature"', value: value}
  pressure: {when: 'tag == "pressure"', value: value, agg: avg, window: 1m}
groups:
  - name: hot
    state: WARNING
    conditions: [temperature > 80, pressure > 3]
    for: 5m
    clear: temperature < 75
severity: warning
labels: {team: line-7}
annotations:
  summary: 'temperature {{ .temperature }} on {{ .key }}'
`

func TestParseValid(t *testing.T) {
	r, err := Parse([]byte(validYAML), FormatYAML)
	require.NoError(t, err)
	require.True(t, r.Enabled, "enabled defaults to true")
	require.Equal(t, int64(300000), r.Groups[0].For.Millis())
	require.NoError(t, r.Validate(testSchema))

	p, err := compileRule(r, testSchema)
	require.NoError(t, err)
	// The select is indexed by its most selective equality: quality.
	require.Equal(t, map[int][]string{1: {"water_temperature", "pressure"}, 3: {"Ok"}}, p.index)
	require.NotNil(t, p.selectC.boolNative, "select is evaluated natively")
	require.NotNil(t, p.groups[0].conds[0].boolNative)
}

func TestParseErrors(t *testing.T) {
	base := func(groups string) string {
		return `{"id":"r","version":1,"key":["equipmentId"],
		"signals":{"temperature":{"when":"tag == \"t\"","value":"value"}},
		"groups":` + groups + `}`
	}
	tests := []struct {
		name   string
		doc    string
		format Format
		schema *record.Schema
		want   string
	}{
		{"misspelt signal", base(`[{"name":"a","state":"WARNING","conditions":["temperature > 1"]},{"name":"b","state":"WARNING","conditions":["temprature > 80"]}]`), FormatJSON, nil,
			`groups[1].conditions[0]: unknown signal "temprature"`},
		{"unknown state", base(`[{"name":"a","state":"HOT","conditions":["temperature > 1"]}]`), FormatJSON, nil,
			`groups[0].state: unknown state "HOT"`},
		{"resting state", base(`[{"name":"a","state":"OK","conditions":["temperature > 1"]}]`), FormatJSON, nil,
			`groups[0].state: "OK" is the resting state`},
		{"not bool", base(`[{"name":"a","state":"WARNING","conditions":["temperature + 1"]}]`), FormatJSON, testSchema,
			`groups[0].conditions[0]: compile "temperature + 1"`},
		{"syntax", base(`[{"name":"a","state":"WARNING","conditions":["temperature >"]}]`), FormatJSON, nil,
			`groups[0].conditions[0]:`},
		{"no groups", base(`[]`), FormatJSON, nil, `groups: at least one group is required`},
		{"bad match", base(`[{"name":"a","state":"WARNING","match":"most","conditions":["temperature > 1"]}]`), FormatJSON, nil,
			`groups[0].match: must be all or any`},
		{"unknown key", `{"id":"r","version":1,"condtions":[]}`, FormatJSON, nil, `unknown field "condtions"`},
		{"bad version", `{"id":"r","version":0,"signals":{"x":{"value":"value"}},"groups":[{"name":"a","state":"WARNING","conditions":["x > 1"]}]}`, FormatJSON, nil,
			`version: must be a positive integer`},
		{"bad duration", "id: r\nversion: 1\nsignals: {x: {value: value}}\ngroups: [{name: a, state: WARNING, conditions: [x > 1], for: 5 minutes}]\n", FormatYAML, nil,
			`parse duration "5 minutes"`},
		{"window required", "id: r\nversion: 1\nsignals: {x: {value: value, agg: avg}}\ngroups: [{name: a, state: WARNING, conditions: [x > 1]}]\n", FormatYAML, nil,
			`signals.x.window: is required for agg avg`},
		{"unknown agg", "id: r\nversion: 1\nsignals: {x: {value: value, agg: median, window: 1m}}\ngroups: [{name: a, state: WARNING, conditions: [x > 1]}]\n", FormatYAML, nil,
			`signals.x.agg: unknown aggregation "median"`},
		{"unknown field", "id: r\nversion: 1\nselect: tga == 'x'\nsignals: {x: {value: value}}\ngroups: [{name: a, state: WARNING, conditions: [x > 1]}]\n", FormatYAML, testSchema,
			`select: unknown field "tga"`},
		{"unknown key field", "id: r\nversion: 1\nkey: [machine]\nsignals: {x: {value: value}}\ngroups: [{name: a, state: WARNING, conditions: [x > 1]}]\n", FormatYAML, testSchema,
			`key[0]: unknown field "machine"`},
		{"string avg", "id: r\nversion: 1\nsignals: {x: {value: tag, agg: avg, window: 1m}}\ngroups: [{name: a, state: WARNING, conditions: [x > 1]}]\n", FormatYAML, testSchema,
			`signals.x.value: agg avg needs a number`},
		{"string vs number", "id: r\nversion: 1\nsignals: {x: {value: tag}}\ngroups: [{name: a, state: WARNING, conditions: [x > 1]}]\n", FormatYAML, testSchema,
			`groups[0].conditions[0]: compile "x > 1"`},
		{"bad template", "id: r\nversion: 1\nsignals: {x: {value: value}}\ngroups: [{name: a, state: WARNING, conditions: [x > 1]}]\nannotations: {s: '{{ .x '}\n", FormatYAML, nil,
			`annotations.s: parse template`},
		{"bad format", `{}`, Format("toml"), nil, `unknown format "toml"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.doc), tc.format)
			if err == nil {
				err = r.Validate(tc.schema)
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	kg := func(row record.Row) int { return len(row[0].S) % 2 }
	opts := DefaultOptions()
	opts.KeyGroup = kg
	newEngine := func() *Engine {
		e, err := New(testSchema, opts)
		require.NoError(t, err)
		return e
	}
	r, err := Parse([]byte(validYAML), FormatYAML)
	require.NoError(t, err)
	feed := func(e *Engine, from, to int64, emit func(Alert)) {
		for ts := from; ts < to; ts += 10_000 {
			for _, m := range []string{"m1", "m22", "m3"} {
				e.Process(record.Row{record.String(m), record.String("water_temperature"), record.Float(85), record.String("Ok")}, ts, emit)
				e.Process(record.Row{record.String(m), record.String("pressure"), record.Float(3.5), record.String("Ok")}, ts, emit)
			}
		}
		e.Advance(to, emit)
	}

	// Reference: one engine runs straight through.
	var want []Alert
	ref := newEngine()
	require.NoError(t, ref.Apply(Update{Rule: r}))
	feed(ref, 0, 200_000, func(a Alert) { want = append(want, a) })
	feed(ref, 200_000, 600_000, func(a Alert) { want = append(want, a) })
	require.Len(t, want, 3)

	// The other snapshots per key group half-way and restores into a fresh engine.
	var got []Alert
	first := newEngine()
	require.NoError(t, first.Apply(Update{Rule: r}))
	feed(first, 0, 200_000, func(a Alert) { got = append(got, a) })
	var kg0, kg1, all bytes.Buffer
	require.NoError(t, first.SnapshotKeyGroup(0, &kg0))
	require.NoError(t, first.SnapshotKeyGroup(1, &kg1))
	require.NoError(t, first.Snapshot(&all))
	second := newEngine()
	require.NoError(t, second.Restore(bytes.NewReader(kg0.Bytes())))
	require.NoError(t, second.Restore(bytes.NewReader(kg1.Bytes())))
	var again bytes.Buffer
	require.NoError(t, second.Snapshot(&again))
	require.JSONEq(t, all.String(), again.String())
	feed(second, 200_000, 600_000, func(a Alert) { got = append(got, a) })
	require.Equal(t, want, got)

	// A snapshot that does not decode leaves the engine untouched.
	require.Error(t, second.Restore(bytes.NewReader([]byte(`{"format":1,"rules":[{"rule":{"id":"x"}}]}`))))
	require.Len(t, second.Rules(), 1)
}

func TestApplyErrors(t *testing.T) {
	e, err := New(testSchema, DefaultOptions())
	require.NoError(t, err)
	require.Error(t, e.Apply(Update{}))
	require.NoError(t, e.Apply(Update{Delete: "missing"}))
	r, err := Parse([]byte(validYAML), FormatYAML)
	require.NoError(t, err)
	bad := *r
	bad.Version = 4
	bad.Select = "nope == 1"
	require.ErrorContains(t, e.Apply(Update{Rule: &bad}), `select: unknown field "nope"`)
	_, err = e.Rule("filler-overheat")
	require.ErrorIs(t, err, ErrNoRule)
	_, err = New(testSchema, Options{})
	require.ErrorContains(t, err, "quarantineAfter: must be at least 1")
}

func TestAlertFields(t *testing.T) {
	e, err := New(testSchema, DefaultOptions())
	require.NoError(t, err)
	r, err := Parse([]byte(validYAML), FormatYAML)
	require.NoError(t, err)
	require.NoError(t, e.Apply(Update{Rule: r}))
	var got []Alert
	emit := func(a Alert) { got = append(got, a) }
	row := func(tag string, v float64) record.Row {
		return record.Row{record.String("m1"), record.String(tag), record.Float(v), record.String("Ok")}
	}
	for ts := int64(0); ts <= 300_000; ts += 30_000 {
		e.Process(row("water_temperature", 85), ts, emit)
		e.Process(row("pressure", 3.5), ts, emit)
	}
	e.Advance(400_000, emit)
	require.Len(t, got, 1)
	a := got[0]
	require.Equal(t, "filler-overheat", a.RuleID)
	require.Equal(t, int64(3), a.RuleVersion)
	require.Equal(t, "m1", a.Key)
	require.Equal(t, []string{"equipmentId"}, a.KeyFields)
	require.Equal(t, []record.Value{record.String("m1")}, a.KeyValues)
	require.Equal(t, "OK", a.OldState)
	require.Equal(t, "WARNING", a.NewState)
	require.Equal(t, "hot", a.Group)
	require.Equal(t, int64(300_000), a.EventTime)
	require.Equal(t, []SignalValue{{"pressure", record.Float(3.5)}, {"temperature", record.Float(85)}}, a.Signals)
	require.Equal(t, "warning", a.Severity)
	require.Equal(t, map[string]string{"team": "line-7"}, a.Labels)
	require.Equal(t, map[string]string{"summary": "temperature 85 on m1"}, a.Annotations)
	require.Equal(t, AlertID("filler-overheat", 3, "m1", 300_000, "WARNING"), a.ID)
	require.Len(t, a.ID, 32)
	require.NotEqual(t, AlertID("filler-overheat", 3, "m1", 300_001, "WARNING"), a.ID)
}

// hotRule is a threshold rule on water temperature without a duration.
func hotRule(t *testing.T, version int64, threshold string) *Rule {
	t.Helper()
	r, err := Parse([]byte(`{"id":"hot","version":`+strconv.FormatInt(version, 10)+`,"select":"tag == \"water_temperature\"","key":["equipmentId"],
"signals":{"temperature":{"value":"value"}},"groups":[{"name":"hot","state":"WARNING","conditions":["temperature > `+threshold+`"]}]}`), FormatJSON)
	require.NoError(t, err)
	return r
}

func tempRow(machine string, v float64) record.Row {
	return record.Row{record.String(machine), record.String("water_temperature"), record.Float(v), record.String("Ok")}
}

// TestAlertIDsAreUnique: a key whose state flips back and forth at one
// event time (records with equal times) gets a distinct ID for every
// transition, or consumers that dedupe by ID would drop real changes.
func TestAlertIDsAreUnique(t *testing.T) {
	e, err := New(testSchema, DefaultOptions())
	require.NoError(t, err)
	require.NoError(t, e.Apply(Update{Rule: hotRule(t, 1, "80")}))
	var got []Alert
	emit := func(a Alert) { got = append(got, a) }
	for _, v := range []float64{85, 70, 90, 60, 95} {
		e.Process(tempRow("m1", v), 1000, emit)
	}
	require.Len(t, got, 5)
	ids := map[string]bool{}
	for _, a := range got {
		require.False(t, ids[a.ID], "alert ID %s repeats: %+v", a.ID, got)
		ids[a.ID] = true
	}
	require.Equal(t, AlertID("hot", 1, "m1", 1000, "WARNING"), got[0].ID, "a first transition keeps its documented ID")
}

// TestSnapshotKeepsPendingUpdate: a checkpoint taken after a rule update
// but before its keys were re-evaluated must still re-evaluate them after a
// restore, at the time of the update, exactly as the uninterrupted engine.
func TestSnapshotKeepsPendingUpdate(t *testing.T) {
	run := func(snapshotAfterUpdate bool) []Alert {
		e, err := New(testSchema, DefaultOptions())
		require.NoError(t, err)
		require.NoError(t, e.Apply(Update{Rule: hotRule(t, 1, "80")}))
		var got []Alert
		emit := func(a Alert) { got = append(got, a) }
		e.Process(tempRow("m1", 85), 1000, emit)
		e.Advance(5000, emit)
		require.NoError(t, e.Apply(Update{Rule: hotRule(t, 2, "90")}))
		if snapshotAfterUpdate {
			var buf bytes.Buffer
			require.NoError(t, e.Snapshot(&buf))
			e, err = New(testSchema, DefaultOptions())
			require.NoError(t, err)
			require.NoError(t, e.Restore(&buf))
		}
		e.Advance(9000, emit)
		return got
	}
	want := run(false)
	require.Len(t, want, 2)
	require.Equal(t, "OK", want[1].NewState)
	require.Equal(t, int64(2), want[1].RuleVersion)
	require.Equal(t, want, run(true))
}
