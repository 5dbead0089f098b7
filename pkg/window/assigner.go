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
// milliseconds; windows are half-open [start, end) aligned to the epoch.
type Assigner struct {
	Kind Kind
	// Size of tumbling and sliding windows.
	Size int64
	// Slide of sliding windows (Size for tumbling).
	Slide int64
	// Gap of session windows.
	Gap int64
}

// Validate reports an assigner that cannot work.
func (a Assigner) Validate() error {
	switch a.Kind {
	case Tumbling:
		if a.Size <= 0 {
			return errors.New("tumbling window: size must be > 0")
		}
	case Sliding:
		if a.Size <= 0 || a.Slide <= 0 {
			return errors.New("sliding window: size and slide must be > 0")
		}
		if a.Slide > a.Size {
			return errors.New("sliding window: slide must not exceed size")
		}
	case Session:
		if a.Gap <= 0 {
			return errors.New("session window: gap must be > 0")
		}
	default:
		return fmt.Errorf("window kind %v is not supported", a.Kind)
	}
	return nil
}

// pane is the unit of aggregation: sliding windows are pre-aggregated per
// slice of gcd(size, slide), so a record updates one slice instead of
// size/slide windows; a tumbling window is its own single slice.
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

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// floorDiv rounds toward negative infinity so that times before the epoch
// fall into the right window.
func floorTo(t, unit int64) int64 {
	r := t % unit
	if r < 0 {
		r += unit
	}
	return t - r
}
