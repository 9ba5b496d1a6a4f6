package loop

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Human units in loop documents.
//
// Durations are one or more <number><unit> terms: "72h", "7d", "1h30m",
// "1.5s", "500ms". Units: ms, s, m, h, d (24h), w (7d). The result must be
// a whole number of milliseconds. A bare number is refused, except 0,
// because "retention: 72" is ambiguous (hours? milliseconds?) and guessing
// wrong by a factor of 3.6 million is worse than asking.
//
// Sizes are a number with an optional unit: "600" (bytes), "600B", "2MiB",
// "1.5MiB", "10MB". IEC units (KiB, MiB, GiB, TiB) are powers of 1024, SI
// units (kB or KB, MB, GB, TB) powers of 1000. Fractions are rounded to the
// nearest byte. Lower-case "mb", "m" or "k" are refused: is "m" milli or
// mega, and bits or bytes?
//
// Negative values are refused everywhere.

var errNegative = errors.New("must not be negative")

var durationUnits = map[string]int64{
	"ms": 1,
	"s":  1000,
	"m":  60 * 1000,
	"h":  60 * 60 * 1000,
	"d":  24 * 60 * 60 * 1000,
	"w":  7 * 24 * 60 * 60 * 1000,
}

// ParseDuration parses a human duration ("72h", "7d", "500ms", "1h30m") into
// milliseconds. See the unit rules above.
func ParseDuration(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("is empty (use e.g. 72h, 7d, 500ms)")
	}
	if strings.HasPrefix(in, "-") {
		return 0, fmt.Errorf("%s %w", quote(s), errNegative)
	}
	if in == "0" {
		return 0, nil
	}
	if strings.Trim(in, "0123456789.") == "" {
		n := in
		if len(n) > 20 { // do not repeat a long input three more times
			n = "72"
		}
		return 0, fmt.Errorf("%s has no unit (write e.g. %sh, %sd or %sms)", quote(s), n, n, n)
	}
	bad := fmt.Errorf("%s is not a duration (use e.g. 72h, 7d, 30s, 500ms)", quote(s))
	var total float64
	rest := in
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, bad
		}
		num, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, bad
		}
		rest = rest[i:]
		j := 0
		for j < len(rest) && rest[j] >= 'a' && rest[j] <= 'z' {
			j++
		}
		mult, ok := durationUnits[rest[:j]]
		if !ok {
			if j == 0 {
				return 0, bad
			}
			return 0, fmt.Errorf("%s has an unknown unit%s (use ms, s, m, h, d or w)", quote(s), shortQuote(rest[:j]))
		}
		total += num * float64(mult)
		rest = rest[j:]
	}
	if total > math.MaxInt64/2 {
		return 0, fmt.Errorf("%s is too long", quote(s))
	}
	ms := math.Round(total)
	if math.Abs(total-ms) > 1e-6 {
		return 0, fmt.Errorf("%s is finer than a millisecond", quote(s))
	}
	return int64(ms), nil
}

// FormatDuration renders milliseconds in the largest unit that divides them
// exactly: 259200000 -> "3d", 2000 -> "2s", 1500 -> "1500ms". Weeks are not
// used ("14d" reads better than "2w"). ParseDuration(FormatDuration(x)) == x.
func FormatDuration(ms int64) string {
	if ms == 0 {
		return "0"
	}
	for _, u := range []string{"d", "h", "m", "s"} {
		if m := durationUnits[u]; ms%m == 0 {
			return strconv.FormatInt(ms/m, 10) + u
		}
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

var sizeUnits = map[string]int64{
	"":    1,
	"B":   1,
	"kB":  1000,
	"KB":  1000,
	"MB":  1000 * 1000,
	"GB":  1000 * 1000 * 1000,
	"TB":  1000 * 1000 * 1000 * 1000,
	"KiB": 1 << 10,
	"MiB": 1 << 20,
	"GiB": 1 << 30,
	"TiB": 1 << 40,
}

// ParseSize parses a human size ("2MiB", "600", "1.5MiB", "10MB") into
// bytes. See the unit rules above.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("is empty (use e.g. 600, 2MiB, 10MB)")
	}
	if strings.HasPrefix(in, "-") {
		return 0, fmt.Errorf("%s %w", quote(s), errNegative)
	}
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%s is not a size (use e.g. 600, 2MiB, 10MB)", quote(s))
	}
	num, err := strconv.ParseFloat(in[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not a size (use e.g. 600, 2MiB, 10MB)", quote(s))
	}
	unit := strings.TrimSpace(in[i:])
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("%s has an unknown unit%s (use B, KiB, MiB, GiB, TiB or kB, MB, GB, TB)", quote(s), shortQuote(unit))
	}
	total := math.Round(num * float64(mult))
	if total >= math.MaxInt64/2 {
		return 0, fmt.Errorf("%s is too large", quote(s))
	}
	return int64(total), nil
}

// FormatSize renders bytes in the largest IEC unit that divides them
// exactly, else the largest SI unit, else as a bare number of bytes:
// 2097152 -> "2MiB", 10000000 -> "10MB", 600 -> "600".
// ParseSize(FormatSize(x)) == x.
func FormatSize(b int64) string {
	for _, u := range []string{"TiB", "GiB", "MiB", "KiB", "TB", "GB", "MB", "kB"} {
		if m := sizeUnits[u]; b != 0 && b%m == 0 {
			return strconv.FormatInt(b/m, 10) + u
		}
	}
	return strconv.FormatInt(b, 10)
}

// shortQuote is " " and the quoted unit when it is short; a long one is
// already in the quoted input, and is not repeated.
func shortQuote(unit string) string {
	if len(unit) > 16 {
		return ""
	}
	return " " + quote(unit)
}
