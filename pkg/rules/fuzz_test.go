package rules

import (
	"bytes"
	"testing"

	"github.com/streamd/streamd/pkg/record"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML), false)
	f.Add([]byte(`{"id":"r","version":1,"signals":{"x":{"value":"value"}},"groups":[{"name":"a","state":"WARNING","conditions":["x > 1"],"for":"5m"}]}`), true)
	f.Add([]byte(`{"id":"r","version":1,"signals":{"x":{"value":"value","agg":"max","window":60000}},"groups":[{"name":"a","state":"WARNING","conditions":["x in [1,2] || !(x < 0)"]}]}`), true)
	f.Add([]byte("id: r\nversion: 1\nsignals: {x: {value: value}}\ngroups: [{name: a, state: WARNING, conditions: ['x > 1 and x < let y = 2; y']}]\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		format := FormatYAML
		if asJSON {
			format = FormatJSON
		}
		r, err := Parse(data, format)
		if err != nil {
			return
		}
		_ = r.Validate(testSchema)
	})
}

func FuzzRestore(f *testing.F) {
	e, err := New(testSchema, DefaultOptions())
	if err != nil {
		f.Fatal(err)
	}
	r, err := Parse([]byte(validYAML), FormatYAML)
	if err != nil {
		f.Fatal(err)
	}
	if err := e.Apply(Update{Rule: r}); err != nil {
		f.Fatal(err)
	}
	for ts := int64(0); ts < 400_000; ts += 30_000 {
		e.Process(record.Row{record.String("m1"), record.String("water_temperature"), record.Float(85), record.String("Ok")}, ts, nil)
		e.Process(record.Row{record.String("m1"), record.String("pressure"), record.Float(3.5), record.String("Ok")}, ts, nil)
	}
	var buf bytes.Buffer
	if err := e.Snapshot(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"format":1,"rules":[],"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := New(testSchema, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		if e.Restore(bytes.NewReader(data)) != nil {
			return
		}
		// A restored engine must keep running and snapshot again.
		e.Process(record.Row{record.String("m1"), record.String("pressure"), record.Float(1), record.String("Ok")}, 500_000, func(Alert) {})
		e.Advance(1<<62, func(Alert) {})
		var out bytes.Buffer
		if err := e.Snapshot(&out); err != nil {
			t.Fatal(err)
		}
	})
}
