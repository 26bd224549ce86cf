package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"strings"
)

// palette colours the targets in the order of allTargets.
var palette = map[string]string{
	"raw-primary":   "#7f7f7f",
	"raw-replica":   "#b0b0b0",
	"raw-pair":      "#4c4c4c",
	"routed":        "#1f77b4",
	"routed-single": "#6baed6",
	"pgpool":        "#d62728",
	"gorm":          "#ff7f0e",
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 7.5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// writeSVG draws one panel per workload, each with its own scale: bars of
// throughput per target, labelled with the value and the ratio to
// raw-primary.
func writeSVG(path string, rep *report) error {
	const (
		panelW  = 300.0
		plotH   = 240.0
		left    = 20.0
		top     = 110.0
		bottom  = 100.0
		gapL    = 52.0 // room for the y labels inside each panel
		barGap  = 6.0
		fontCSS = "font-family:DejaVu Sans,Helvetica,Arial,sans-serif"
	)
	n := len(rep.Workloads)
	width := left*2 + panelW*float64(n)
	height := top + plotH + bottom
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" style="%s">`, width, height, width, height, fontCSS)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>`)
	p(`<text x="%.0f" y="24" font-size="16" font-weight="bold">pgxroute-bench: throughput (operations/s, higher is better)</text>`, left)
	p(`<text x="%.0f" y="44" font-size="11" fill="#444">%s</text>`, left, html.EscapeString(fmt.Sprintf(
		"%d workers, %d rounds × %s (ABBA), %d CPUs (%s), PostgreSQL %s; each panel has its own scale; label: ops/s and ratio to raw-primary",
		rep.Workers, rep.Rounds, rep.Duration, rep.Machine.CPUs, rep.Machine.CPU, rep.Machine.Postgres)))
	// Legend.
	x := left
	for _, t := range rep.Targets {
		p(`<rect x="%.0f" y="58" width="12" height="12" fill="%s"/>`, x, palette[t.Name])
		p(`<text x="%.0f" y="69" font-size="12">%s</text>`, x+16, html.EscapeString(t.Name))
		x += 24 + 7.5*float64(len(t.Name))
	}
	for i, wr := range rep.Workloads {
		x0 := left + panelW*float64(i) + gapL
		w := panelW - gapL - 16
		maxV := 0.0
		for _, r := range wr.Results {
			maxV = math.Max(maxV, r.OpsPerSec)
		}
		top := top + 10
		scale := niceCeil(maxV * 1.12)
		p(`<text x="%.0f" y="%.0f" font-size="13" font-weight="bold" text-anchor="middle">%s</text>`, x0+w/2, top-22, html.EscapeString(wr.Name))
		p(`<text x="%.0f" y="%.0f" font-size="10" fill="#444" text-anchor="middle">%s</text>`, x0+w/2, top-9, html.EscapeString(wr.Desc))
		for k := 0; k <= 5; k++ {
			v := scale * float64(k) / 5
			y := top + plotH - plotH*float64(k)/5
			p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`, x0, y, x0+w, y)
			p(`<text x="%.1f" y="%.1f" font-size="10" text-anchor="end" fill="#555">%s</text>`, x0-4, y+3, kilo(v))
		}
		p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`, x0, top+plotH, x0+w, top+plotH)
		base := wr.get("raw-primary")
		bw := (w - barGap*float64(len(wr.Results)+1)) / float64(len(wr.Results))
		for j, r := range wr.Results {
			bx := x0 + barGap + float64(j)*(bw+barGap)
			h := plotH * r.OpsPerSec / scale
			by := top + plotH - h
			p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`,
				bx, by, bw, h, palette[r.Target], html.EscapeString(fmt.Sprintf("%s %s: %.0f ops/s, p50 %s, p99 %s",
					wr.Name, r.Target, r.OpsPerSec, fmtUs(r.P50us), fmtUs(r.P99us))))
			p(`<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle">%s</text>`, bx+bw/2, by-13, kilo(r.OpsPerSec))
			if base != nil && base.OpsPerSec > 0 {
				p(`<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle" fill="#555">%.2f</text>`, bx+bw/2, by-3, r.OpsPerSec/base.OpsPerSec)
			}
			lx, ly := bx+bw/2+3, top+plotH+10
			p(`<text x="%.1f" y="%.1f" font-size="11" text-anchor="end" transform="rotate(-45 %.1f %.1f)">%s</text>`, lx, ly, lx, ly, html.EscapeString(r.Target))
		}
	}
	p(`</svg>`)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
