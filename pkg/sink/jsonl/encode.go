package jsonl

import (
	"github.com/streamd/streamd/pkg/record"
)

// encoder turns rows of one schema into JSON lines.
type encoder struct {
	// keys holds `"name":` for each field, with the separating comma for
	// all but the first, escaped once.
	keys [][]byte
}

func newEncoder(s *record.Schema) *encoder {
	e := &encoder{keys: make([][]byte, s.Len())}
	for i := range s.Len() {
		var k []byte
		if i > 0 {
			k = append(k, ',')
		}
		k = appendString(k, s.Field(i).Name)
		e.keys[i] = append(k, ':')
	}
	return e
}

// appendRow appends one row as a JSON object and a newline.
func (e *encoder) appendRow(dst []byte, row record.Row) []byte {
	dst = append(dst, '{')
	for i, v := range row {
		dst = append(dst, e.keys[i]...)
		dst = appendValue(dst, v)
	}
	return append(dst, '}', '\n')
}

// appendValue appends a value as JSON (see record.AppendJSONValue).
func appendValue(dst []byte, v record.Value) []byte { return record.AppendJSONValue(dst, v) }

// appendString and appendFloat are record's encoders, named for this
// package's tests.
func appendString(dst []byte, s string) []byte { return record.AppendJSONString(dst, s) }

func appendFloat(dst []byte, f float64) []byte { return record.AppendJSONValue(dst, record.Float(f)) }
