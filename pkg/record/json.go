package record

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends row as a JSON object with the schema's field names.
// Timestamps are RFC 3339 with microseconds; NaN and infinities become null;
// invalid UTF-8 is replaced, so the output is always valid JSON.
func AppendJSON(dst []byte, s *Schema, row Row) []byte {
	dst = append(dst, '{')
	for i, v := range row {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, s.fields[i].Name)
		dst = append(dst, ':')
		dst = AppendJSONValue(dst, v)
	}
	return append(dst, '}')
}

// AppendJSONValue appends one value as JSON.
func AppendJSONValue(dst []byte, v Value) []byte {
	switch v.T {
	case TypeString:
		return AppendJSONString(dst, v.S)
	case TypeInt:
		return strconv.AppendInt(dst, int64(v.N), 10)
	case TypeFloat:
		return appendJSONFloat(dst, v.Float())
	case TypeBool:
		return strconv.AppendBool(dst, v.N != 0)
	case TypeTimestamp:
		dst = append(dst, '"')
		dst = v.Time().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
		return append(dst, '"')
	case TypeStruct, TypeList, TypeMap:
		// Already canonical JSON (see NestedValue): objects and arrays.
		if v.S != "" {
			return append(dst, v.S...)
		}
	}
	return append(dst, "null"...)
}

// appendJSONFloat appends f in its shortest round-tripping form, as
// encoding/json does; NaN and infinities have no JSON form and become null.
func appendJSONFloat(dst []byte, f float64) []byte {
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

// AppendJSONString appends s as a JSON string literal. Quotes, backslashes and control
// characters are escaped, invalid UTF-8 becomes U+FFFD, and U+2028/U+2029
// are escaped because JavaScript treats them as line ends.
func AppendJSONString(dst []byte, s string) []byte {
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

// MillisToTime converts event-time milliseconds to a UTC time.
func MillisToTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
