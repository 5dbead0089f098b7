package record

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Type is the type of a field.
type Type uint8

// Field types. TypeNull is the type of an absent value.
const (
	TypeNull Type = iota
	TypeString
	TypeInt
	TypeFloat
	TypeBool
	// TypeTimestamp values are microseconds since the Unix epoch, UTC.
	TypeTimestamp
	// TypeStruct, TypeList and TypeMap are nested types; the field says
	// their members (Field.Fields, Field.Elem). A nested value travels as
	// its canonical JSON text in S: stages treat it as opaque and the
	// Parquet sink shreds it into columns (see package doc).
	TypeStruct
	TypeList
	TypeMap
)

var typeNames = [...]string{"null", "string", "int", "float", "bool", "timestamp", "struct", "list", "map"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// GoZero is the zero value of the Go type that stands for t in expression
// environments (string, int, float64, bool, time.Time), so expressions can
// be type-checked at compile time; nil for TypeNull. Expressions see a
// nested value as its JSON text, a string.
func (t Type) GoZero() any {
	switch t {
	case TypeString, TypeStruct, TypeList, TypeMap:
		return ""
	case TypeInt:
		return 0
	case TypeFloat:
		return 0.0
	case TypeBool:
		return false
	case TypeTimestamp:
		return time.Time{}
	}
	return nil
}

// ParseType maps a type name as written in a pipeline file to a Type.
func ParseType(s string) (Type, error) {
	switch s {
	case "string":
		return TypeString, nil
	case "int", "long", "int64":
		return TypeInt, nil
	case "float", "double", "float64":
		return TypeFloat, nil
	case "bool", "boolean":
		return TypeBool, nil
	case "timestamp":
		return TypeTimestamp, nil
	}
	return TypeNull, fmt.Errorf("unknown type %q (want string, int, float, bool or timestamp)", s)
}

// Value is one typed field value. The zero Value is null.
//
// Numbers, booleans and timestamps live in N (a float64 as its IEEE bits);
// strings live in S. A Value is 32 bytes and is copied by value.
type Value struct {
	S string
	N uint64
	T Type
}

// Null is the absent value.
var Null = Value{}

// String returns a string value.
func String(s string) Value { return Value{S: s, T: TypeString} }

// Int returns an int value.
func Int(i int64) Value { return Value{N: uint64(i), T: TypeInt} }

// Float returns a float value.
func Float(f float64) Value { return Value{N: math.Float64bits(f), T: TypeFloat} }

// Bool returns a bool value.
func Bool(b bool) Value {
	if b {
		return Value{N: 1, T: TypeBool}
	}
	return Value{T: TypeBool}
}

// Timestamp returns a timestamp value from microseconds since the epoch.
func Timestamp(micros int64) Value { return Value{N: uint64(micros), T: TypeTimestamp} }

// TimestampMillis returns a timestamp value from milliseconds since the epoch.
func TimestampMillis(ms int64) Value { return Timestamp(ms * 1000) }

// IsNull reports whether v is absent.
func (v Value) IsNull() bool { return v.T == TypeNull }

// Int returns the value as an int64 (ints and timestamps; floats truncate).
func (v Value) Int() int64 {
	if v.T == TypeFloat {
		return int64(math.Float64frombits(v.N))
	}
	return int64(v.N)
}

// Float returns the value as a float64; ints convert, other types give 0.
func (v Value) Float() float64 {
	switch v.T {
	case TypeFloat:
		return math.Float64frombits(v.N)
	case TypeInt, TypeTimestamp:
		return float64(int64(v.N))
	case TypeBool:
		return float64(v.N)
	}
	return 0
}

// Numeric reports whether the value is a number (int or float).
func (v Value) Numeric() bool { return v.T == TypeInt || v.T == TypeFloat }

// Bool returns the value as a bool.
func (v Value) Bool() bool { return v.T == TypeBool && v.N != 0 }

// Str returns the string of a string value, or "".
func (v Value) Str() string { return v.S }

// Time returns a timestamp value as a time.Time in UTC.
func (v Value) Time() time.Time { return time.UnixMicro(int64(v.N)).UTC() }

// Compare orders two values of the same type: -1, 0 or +1. Nulls sort first;
// values of different types are ordered by type.
func Compare(a, b Value) int {
	if a.T != b.T {
		if a.Numeric() && b.Numeric() {
			return cmpFloat(a.Float(), b.Float())
		}
		if a.T < b.T {
			return -1
		}
		return 1
	}
	switch a.T {
	case TypeNull:
		return 0
	case TypeString, TypeStruct, TypeList, TypeMap:
		switch {
		case a.S < b.S:
			return -1
		case a.S > b.S:
			return 1
		}
		return 0
	case TypeFloat:
		return cmpFloat(a.Float(), b.Float())
	default:
		ai, bi := int64(a.N), int64(b.N)
		switch {
		case ai < bi:
			return -1
		case ai > bi:
			return 1
		}
		return 0
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Equal reports whether two values are the same type and value.
func Equal(a, b Value) bool { return a.T == b.T && a.N == b.N && a.S == b.S }

// Clone returns v with its string (or nested JSON text) copied out of any
// batch arena.
func (v Value) Clone() Value {
	if v.S != "" {
		v.S = cloneString(v.S)
	}
	return v
}

// AppendText appends a human-readable form of v (used for keys, paths and
// logs); a nested value is its JSON text.
func (v Value) AppendText(dst []byte) []byte {
	switch v.T {
	case TypeString, TypeStruct, TypeList, TypeMap:
		return append(dst, v.S...)
	case TypeInt:
		return strconv.AppendInt(dst, int64(v.N), 10)
	case TypeFloat:
		return strconv.AppendFloat(dst, v.Float(), 'g', -1, 64)
	case TypeBool:
		return strconv.AppendBool(dst, v.N != 0)
	case TypeTimestamp:
		return v.Time().AppendFormat(dst, time.RFC3339Nano)
	}
	return dst
}

// GoString renders v for test failure messages.
func (v Value) GoString() string {
	if v.T == TypeString {
		return strconv.Quote(v.S)
	}
	if v.T == TypeNull {
		return "null"
	}
	return string(v.AppendText(nil))
}

// Any returns v as a plain Go value (string, int64, float64, bool, time.Time or nil);
// a nested value is its JSON text.
func (v Value) Any() any {
	switch v.T {
	case TypeString, TypeStruct, TypeList, TypeMap:
		return v.S
	case TypeInt:
		return int64(v.N)
	case TypeFloat:
		return v.Float()
	case TypeBool:
		return v.N != 0
	case TypeTimestamp:
		return v.Time()
	}
	return nil
}
