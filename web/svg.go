package web

import (
	"fmt"
	"html"
	"html/template"
	"strings"

	"github.com/loopgate/loopgate/cost"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// The pictures are inline SVG drawn here, with a <title> and an aria-label
// saying in words what they show; the same figures are in a table next to
// them, so nothing is told by colour alone.

// palette: colour-blind-safe hues (Okabe–Ito, darkened) that keep white
// text and the white page at ≥ 3:1 as graphics.
var palette = []string{"#0b5394", "#b35900", "#1b7a5a", "#8e3b8e", "#5b6770", "#a3352f", "#2f6f8f", "#6b5b00"}

type costPart struct {
	Label string
	Value float64
}

// stackedBar draws parts as one horizontal stacked bar with a legend.
func stackedBar(title string, parts []costPart, currency string) template.HTML {
	var total float64
	for _, p := range parts {
		if p.Value > 0 {
			total += p.Value
		}
	}
	if total <= 0 {
		return ""
	}
	const width, barH = 600.0, 28.0
	shown := 0
	for _, p := range parts {
		if p.Value > 0 {
			shown++
		}
	}
	legendRows := (shown + 1) / 2
	h := barH + 12 + float64(legendRows)*22
	var words []string
	var b strings.Builder
	x := 0.0
	for i, p := range parts {
		if p.Value <= 0 {
			continue
		}
		w := p.Value / total * width
		c := palette[i%len(palette)]
		fmt.Fprintf(&b, `<rect x="%.2f" y="0" width="%.2f" height="%.0f" fill="%s" stroke="#ffffff" stroke-width="1"><title>%s: %s</title></rect>`,
			x, w, barH, c, html.EscapeString(p.Label), html.EscapeString(cost.Money(p.Value, currency)))
		x += w
		words = append(words, fmt.Sprintf("%s %.0f%%", p.Label, p.Value/total*100))
	}
	n := 0
	for i, p := range parts {
		if p.Value <= 0 {
			continue
		}
		lx := float64(n%2) * (width / 2)
		ly := barH + 12 + float64(n/2)*22
		n++
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="14" height="14" fill="%s"/><text x="%.0f" y="%.0f" font-size="13" fill="#1f2328">%s — %s (%.0f%%)</text>`,
			lx, ly, palette[i%len(palette)], lx+20, ly+12, html.EscapeString(p.Label), html.EscapeString(cost.Money(p.Value, currency)), p.Value/total*100)
	}
	label := fmt.Sprintf("%s: %s per month; %s", title, cost.Money(total, currency), strings.Join(words, ", "))
	return template.HTML(fmt.Sprintf(`<svg class="chart" role="img" aria-label="%s" viewBox="0 0 %.0f %.0f" width="100%%" preserveAspectRatio="xMinYMin meet"><title>%s</title>%s</svg>`,
		html.EscapeString(label), width, h, html.EscapeString(label), b.String()))
}

// sloSparkline draws the p99 of each day of the 28-day window (when two or
// more days have records), else of each window (longest first: 28d, 1h,
// 1m), as a line against the target.
func sloSparkline(s *lgv1.SloStatus) template.HTML {
	type point struct {
		label, axis string // axis: the x label ("" for none)
		p99         float64
	}
	var pts []point
	var what string
	if days := s.GetDays(); len(days) >= 2 {
		what = "day"
		for i, d := range days {
			axis := ""
			if i == 0 || i == len(days)-1 {
				axis = strings.TrimPrefix(d.GetDay()[min(5, len(d.GetDay())):], "-") // MM-DD
			}
			pts = append(pts, point{d.GetDay(), axis, d.GetP99Ms()})
		}
	} else {
		what = "window"
		ws := s.GetWindows()
		for i := len(ws) - 1; i >= 0; i-- { // the API lists 1m, 1h, 28d
			if ws[i].GetRecords() > 0 || ws[i].GetP99Ms() > 0 {
				pts = append(pts, point{ws[i].GetWindow(), ws[i].GetWindow(), ws[i].GetP99Ms()})
			}
		}
	}
	target := float64(s.GetTargetP99Ms())
	if len(pts) == 0 || target <= 0 {
		return ""
	}
	maxV := target * 1.25
	for _, p := range pts {
		if p.p99 > maxV {
			maxV = p.p99 * 1.1
		}
	}
	const w, h, pad = 320.0, 90.0, 16.0
	y := func(v float64) float64 { return h - pad - (v/maxV)*(h-2*pad) }
	step := (w - 2*pad) / float64(max(len(pts)-1, 1))
	r := 4.0
	if len(pts) > 8 {
		r = 2.5
	}
	var line, dots strings.Builder
	var words []string
	for i, p := range pts {
		x := pad + float64(i)*step
		if len(pts) == 1 {
			x = w / 2
		}
		fmt.Fprintf(&line, "%.1f,%.1f ", x, y(p.p99))
		fill := "#1b7a5a"
		if p.p99 > target {
			fill = "#a3352f"
		}
		fmt.Fprintf(&dots, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s"><title>%s p99 %s</title></circle>`,
			x, y(p.p99), r, fill, html.EscapeString(p.label), fmtMS(p.p99))
		if p.axis != "" {
			fmt.Fprintf(&dots, `<text x="%.1f" y="%.0f" font-size="11" text-anchor="middle" fill="#1f2328">%s</text>`, x, h-2, html.EscapeString(p.axis))
		}
		words = append(words, fmt.Sprintf("%s %s", p.label, fmtMS(p.p99)))
	}
	label := fmt.Sprintf("p99 latency by %s against the %s target: %s", what, fmtMS(target), strings.Join(words, ", "))
	return template.HTML(fmt.Sprintf(`<svg class="spark" role="img" aria-label="%s" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f"><title>%s</title>`+
		`<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#5b6770" stroke-dasharray="4 3"/><text x="%.0f" y="%.1f" font-size="11" text-anchor="end" fill="#444c56">target %s</text>`+
		`<polyline points="%s" fill="none" stroke="#0b5394" stroke-width="2"/>%s</svg>`,
		html.EscapeString(label), w, h, w, h, html.EscapeString(label),
		pad, w-pad, y(target), y(target), w-pad, y(target)-4, fmtMS(target), line.String(), dots.String()))
}

// lagBars draws each consumer group's time lag against its freshness
// objective.
func lagBars(lags []*lgv1.ConsumerGroupLag) template.HTML {
	if len(lags) == 0 {
		return ""
	}
	maxV := 1.0
	for _, l := range lags {
		maxV = max(maxV, float64(l.GetTimeLagMs()), float64(l.GetFreshnessMs()))
	}
	const w, rowH = 600.0, 26.0
	h := rowH*float64(len(lags)) + 4
	var b strings.Builder
	var words []string
	for i, l := range lags {
		y := float64(i)*rowH + 2
		bw := float64(l.GetTimeLagMs()) / maxV * (w - 200)
		fill := "#1b7a5a"
		if l.GetFreshnessMs() > 0 && l.GetTimeLagMs() > l.GetFreshnessMs() {
			fill = "#a3352f"
		}
		fmt.Fprintf(&b, `<text x="0" y="%.0f" font-size="12" fill="#1f2328">%s</text><rect x="150" y="%.0f" width="%.1f" height="16" fill="%s"/>`,
			y+13, html.EscapeString(clip(l.GetGroup(), 22)), y, max(bw, 1), fill)
		if l.GetFreshnessMs() > 0 {
			fx := 150 + float64(l.GetFreshnessMs())/maxV*(w-200)
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#1f2328" stroke-width="2"/>`, fx, fx, y-2, y+18)
		}
		words = append(words, fmt.Sprintf("%s %d ms behind (%d records), objective %d ms", l.GetGroup(), l.GetTimeLagMs(), l.GetOffsetLag(), l.GetFreshnessMs()))
	}
	label := "Consumer lag: " + strings.Join(words, "; ")
	return template.HTML(fmt.Sprintf(`<svg class="chart" role="img" aria-label="%s" viewBox="0 0 %.0f %.0f" width="100%%"><title>%s</title>%s</svg>`,
		html.EscapeString(label), w, h, html.EscapeString(label), b.String()))
}
