package decode

import "fmt"

// TimeFormat says how a timestamp field is written in the input.
type TimeFormat uint8

// Timestamp formats. TimeAuto is the zero value because most producers write
// either an epoch number in some unit or an RFC 3339 string, and the unit of
// a plausible epoch number can be told from its magnitude.
const (
	// TimeAuto reads numbers by magnitude (< 1e11 seconds, < 1e14
	// milliseconds, < 1e17 microseconds, else nanoseconds) and strings as
	// RFC 3339.
	TimeAuto TimeFormat = iota
	// TimeEpochS is seconds since the epoch, fractions allowed.
	TimeEpochS
	// TimeEpochMS is milliseconds since the epoch.
	TimeEpochMS
	// TimeEpochUS is microseconds since the epoch.
	TimeEpochUS
	// TimeEpochNS is nanoseconds since the epoch.
	TimeEpochNS
	// TimeRFC3339 is an RFC 3339 string, with optional fractional seconds
	// up to nanoseconds and a Z or numeric offset.
	TimeRFC3339
)

var timeFormatNames = [...]string{"auto", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "rfc3339"}

// String returns the name used in pipeline files.
func (f TimeFormat) String() string {
	if int(f) < len(timeFormatNames) {
		return timeFormatNames[f]
	}
	return fmt.Sprintf("timeformat(%d)", uint8(f))
}

// ParseTimeFormat maps a format name as written in a pipeline file to a
// TimeFormat; "" is auto.
func ParseTimeFormat(s string) (TimeFormat, error) {
	if s == "" {
		return TimeAuto, nil
	}
	for i, name := range timeFormatNames {
		if s == name {
			return TimeFormat(i), nil
		}
	}
	return TimeAuto, fmt.Errorf("parse time format: unknown format %q (want epoch_s, epoch_ms, epoch_us, epoch_ns, rfc3339 or auto)", s)
}
