package decode

import (
	"strconv"

	"github.com/valyala/fastjson/fastfloat"
)

// parseFloat reads the text of a JSON number as the nearest float64, as
// strconv.ParseFloat does. fastfloat.Parse is used only where it is exact:
// a plain decimal of at most 15 significant digits, whose mantissa and
// power of ten are both exact doubles, so its one division rounds
// correctly. Elsewhere fastfloat rounds some numbers a unit in the last
// place off (valyala/fastjson#91, #110: 8.54E-4, 2.0250405e+07, 17-digit
// shortest forms), so a float a producer wrote exactly would not read back
// as itself; TestFloatsParseExactly pins it.
func parseFloat(raw []byte) (float64, error) {
	digits := 0
	for _, c := range raw {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '-' || c == '.':
		default: // an exponent, or anything unusual
			return strconv.ParseFloat(b2s(raw), 64)
		}
	}
	if digits > 15 {
		return strconv.ParseFloat(b2s(raw), 64)
	}
	return fastfloat.Parse(b2s(raw))
}
