package rules

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/streamd/streamd/pkg/record"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML), false)
	f.Add([]byte(`{"id":"r","version":1,"signals":{"x":{"value":"value"}},"groups":[{"name":"a","state":"WARNING","conditions":["x > 1"],"for":"5m"}]}`), true)
	f.Add([]byte(`{"id":"r","version":1,"signals":{"x":{"value":"value","agg":"max","window":60000}},"groups":[{"name":"a","state":"WARNING","conditions":["x in [1,2] || !(x < 0)"]}]}`), true)
	f.Add([]byte("id: r\nversion: 1\nsignals: {x: {value: value}}\ngroups: [{name: a, state: WARNING, conditions: ['x > 1 and x < let y = 2; y']}]\n"), false)
	// Deep conditions mixing native operators with parts on the VM.
	deep := strings.Repeat("!(x * 2 > 1 || ", 60) + "x > 1" + strings.Repeat(")", 60)
	f.Add([]byte(`{"id":"r","version":1,"signals":{"x":{"value":"value"}},"groups":[{"name":"a","state":"WARNING","conditions":["`+deep+`","let y = 2; `+deep+` && x + y > 3"]}]}`), true)
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
	// A key waiting to be re-evaluated under a new version.
	next := *r
	next.Version++
	if err := e.Apply(Update{Rule: &next}); err != nil {
		f.Fatal(err)
	}
	buf.Reset()
	if err := e.Snapshot(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"format":1,"rules":[],"keys":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			fuzzRestore(t, data)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			panic("restored engine does not return")
		}
	})
}

func fuzzRestore(t *testing.T, data []byte) {
	{
		e, err := New(testSchema, DefaultOptions())
		if err != nil {
			t.Error(err)
			return
		}
		if e.Restore(bytes.NewReader(data)) != nil {
			return
		}
		// The runtime's rule manager reads the same rule set.
		list, deleted, err := SnapshotRules(bytes.NewReader(data))
		if err != nil {
			t.Errorf("restore accepted a snapshot whose rule set does not read: %v", err)
		}
		if len(list) != len(e.Rules()) {
			t.Errorf("snapshot rule set has %d rules, the restored engine %d", len(list), len(e.Rules()))
		}
		for id, v := range e.Tombstones() {
			if deleted[id] != v {
				t.Errorf("tombstone %s: snapshot %d, engine %d", id, deleted[id], v)
			}
		}
		// A restored engine must keep running, reach the end of input and
		// snapshot again.
		e.Process(record.Row{record.String("m1"), record.String("pressure"), record.Float(1), record.String("Ok")}, 500_000, func(Alert) {})
		e.Advance(1<<62, func(Alert) {})
		e.Advance(math.MaxInt64, func(Alert) {})
		var out bytes.Buffer
		if err := e.Snapshot(&out); err != nil {
			t.Error(err)
		}
	}
}
