package cost

import (
	"math"
	"strconv"
	"strings"
)

// Money formats an amount of a currency compactly, the way loopctl and the
// portal show forecasts: whole units from 1,000 up ($2,431), cents below
// ($62.13); USD (or no currency) with a $ sign, others with their code
// (12.50 EUR).
func Money(x float64, currency string) string {
	neg := x < 0
	x = math.Abs(x)
	var s string
	if x >= 1000 {
		s = thousands(strconv.FormatFloat(math.Round(x), 'f', 0, 64))
	} else {
		s = strconv.FormatFloat(x, 'f', 2, 64)
	}
	if currency == "" || currency == "USD" {
		s = "$" + s
	} else {
		s += " " + currency
	}
	if neg {
		s = "-" + s
	}
	return s
}

// thousands puts commas into a string of digits.
func thousands(digits string) string {
	var b strings.Builder
	for i, r := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
