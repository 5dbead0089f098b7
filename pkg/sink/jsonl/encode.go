package jsonl

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/streamd/streamd/pkg/record"
)

// timestampLayout is RFC 3339 with exactly six fractional digits.
const timestampLayout = "2006-01-02T15:04:05.000000Z07:00"

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

// appendValue appends a value as JSON.
func appendValue(dst []byte, v record.Value) []byte {
	switch v.T {
	case record.TypeString:
		return appendString(dst, v.S)
	case record.TypeInt:
		return strconv.AppendInt(dst, int64(v.N), 10)
	case record.TypeFloat:
		return appendFloat(dst, v.Float())
	case record.TypeBool:
		return strconv.AppendBool(dst, v.N != 0)
	case record.TypeTimestamp:
		dst = append(dst, '"')
		dst = time.UnixMicro(int64(v.N)).UTC().AppendFormat(dst, timestampLayout)
		return append(dst, '"')
	}
	return append(dst, "null"...)
}

// appendFloat appends f in its shortest round-tripping form, as
// encoding/json does; NaN and infinities have no JSON form and become null.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Shorten e-07 to e-7, as encoding/json does.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Quotes, backslashes and control
// characters are escaped, invalid UTF-8 becomes U+FFFD, and U+2028/U+2029
// are escaped because JavaScript treats them as line ends.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
