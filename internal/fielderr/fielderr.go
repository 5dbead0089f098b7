package fielderr

import (
	"errors"
	"fmt"
	"strings"
)

// Error is a problem with one setting.
type Error struct {
	// Path is the setting's path relative to the block validated, in YAML
	// terms: "tls.caFile", "brokers[2]", "startOffset".
	Path string
	// Msg says what is wrong and what is expected.
	Msg string
}

// Error implements error as "path: msg".
func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errorf returns an *Error at path.
func Errorf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Prefix returns err with every *Error in it moved under prefix
// ("mechanism" → "sasl.mechanism"); other errors are kept as they are.
func Prefix(prefix string, err error) error {
	if err == nil || prefix == "" {
		return err
	}
	leaves := Flatten(err)
	out := make([]error, len(leaves))
	for i, e := range leaves {
		var fe *Error
		if errors.As(e, &fe) {
			p := prefix
			if fe.Path != "" {
				p = prefix + "." + fe.Path
			}
			out[i] = &Error{Path: p, Msg: fe.Msg}
			continue
		}
		out[i] = e
	}
	return errors.Join(out...)
}

// Flatten returns the leaves of a tree of errors joined with errors.Join
// (or anything with Unwrap() []error), in order; nil for nil.
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok { //nolint:errorlint // walking the join tree itself
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// Unknown words the problem of a value that is not one of known, with a
// suggestion when the value looks like a misspelling of one of them:
// `unknown mechanism "plian" (did you mean "plain"?; want plain, ...)`.
func Unknown(what, value string, known []string) string {
	list := strings.Join(known, ", ")
	if s := Suggest(value, known); s != "" {
		return fmt.Sprintf("unknown %s %q (did you mean %q? want %s)", what, value, s, list)
	}
	return fmt.Sprintf("unknown %s %q (want %s)", what, value, list)
}

// Suggest returns the entry of known that value most likely misspells, or
// "" when none is close: one edit per three characters is allowed
// ("earlest" → "earliest", "TRIM_HORIZONN" → "TRIM_HORIZON"), so short
// unrelated words are not suggested. Case is ignored.
func Suggest(value string, known []string) string {
	best, bestDist := "", -1
	for _, k := range known {
		d := Distance(strings.ToLower(value), strings.ToLower(k))
		if bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" && bestDist <= max(1, min(3, len(value)/3)) {
		return best
	}
	return ""
}

// Distance is the optimal-string-alignment distance between a and b in
// bytes: insertions, deletions, substitutions and adjacent transpositions
// (the commonest typo) each cost one. Strings over 64 bytes are too long
// to be a typo of a name and get their length.
func Distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	rows := make([][]int, len(a)+1)
	for i := range rows {
		rows[i] = make([]int, len(b)+1)
		rows[i][0] = i
	}
	for j := range rows[0] {
		rows[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(rows[i-1][j]+1, rows[i][j-1]+1, rows[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, rows[i-2][j-2]+1)
			}
			rows[i][j] = d
		}
	}
	return rows[len(a)][len(b)]
}
