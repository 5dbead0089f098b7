package window

import (
	"errors"
	"fmt"
)

// Kind is the shape of a window.
type Kind uint8

// Window kinds.
const (
	Tumbling Kind = iota + 1
	Sliding
	Session
)

func (k Kind) String() string {
	switch k {
	case Tumbling:
		return "tumbling"
	case Sliding:
		return "sliding"
	case Session:
		return "session"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind maps a pipeline-file window type to a Kind.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "tumbling":
		return Tumbling, nil
	case "sliding", "hopping":
		return Sliding, nil
	case "session":
		return Session, nil
	}
	return 0, fmt.Errorf("unknown window type %q (want tumbling, sliding or session)", s)
}

// Assigner describes which windows a record belongs to. Times are event-time
// milliseconds; windows are half-open [start, end).
//
// The windows are Flink's: a tumbling window starts at a multiple of Size, a
// sliding window at a multiple of Slide (so a record at t is in every
// window [s, s+Size) with s ≤ t < s+Size), both shifted by Offset; a
// session is [first, last+Gap), and sessions that overlap or touch merge.
type Assigner struct {
	Kind Kind
	// Size of tumbling and sliding windows.
	Size int64
	// Slide of sliding windows (Size for tumbling).
	Slide int64
	// Gap of session windows.
	Gap int64
	// Offset shifts the alignment of tumbling and sliding windows: starts
	// are Offset plus a multiple of Size (tumbling) or Slide (sliding).
	// Hourly windows that start at a quarter past are Size 1h, Offset 15m.
	Offset int64
}

// Validate reports an assigner that cannot work.
func (a Assigner) Validate() error {
	switch a.Kind {
	case Tumbling:
		if a.Size <= 0 {
			return errors.New("tumbling window: size must be > 0")
		}
		if a.Offset <= -a.Size || a.Offset >= a.Size {
			return errors.New("tumbling window: offset must be smaller than size")
		}
	case Sliding:
		if a.Size <= 0 || a.Slide <= 0 {
			return errors.New("sliding window: size and slide must be > 0")
		}
		if a.Slide > a.Size {
			return errors.New("sliding window: slide must not exceed size")
		}
		if a.Offset <= -a.Slide || a.Offset >= a.Slide {
			return errors.New("sliding window: offset must be smaller than slide")
		}
	case Session:
		if a.Gap <= 0 {
			return errors.New("session window: gap must be > 0")
		}
		if a.Offset != 0 {
			return errors.New("session window: offset does not apply to sessions")
		}
	default:
		return fmt.Errorf("window kind %v is not supported", a.Kind)
	}
	return nil
}

// pane is the unit of aggregation: sliding windows are pre-aggregated per
// slice of gcd(size, slide), so a record updates one slice instead of
// size/slide windows; a tumbling window is its own single slice. Slice and
// window boundaries share the offset, so every window is a whole number of
// slices.
func (a Assigner) pane() int64 {
	if a.Kind == Tumbling {
		return a.Size
	}
	return gcd(a.Size, a.Slide)
}

func (a Assigner) slide() int64 {
	if a.Kind == Tumbling {
		return a.Size
	}
	return a.Slide
}

// WindowsOf appends to dst the [start, end) bounds of the tumbling or sliding
// windows that contain t, oldest first. Sessions depend on other records and
// are not listed.
func (a Assigner) WindowsOf(t int64, dst [][2]int64) [][2]int64 {
	slide := a.slide()
	last := alignDown(t, slide, a.Offset)
	first := alignDown(t-a.Size, slide, a.Offset) + slide
	for s := first; s <= last; s += slide {
		dst = append(dst, [2]int64{s, s + a.Size})
	}
	return dst
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// alignDown returns the largest time ≤ t that is off plus a multiple of
// unit, rounding toward negative infinity so that times before the epoch
// fall into the right window.
func alignDown(t, unit, off int64) int64 {
	r := (t - off) % unit
	if r < 0 {
		r += unit
	}
	return t - r
}
