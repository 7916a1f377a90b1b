package dashboard

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/metaq-go/metaq/internal/clusterview"
)

//go:embed assets
var assets embed.FS

// pageNames are the templates of assets/, each rendered inside layout.html.
var pageNames = []string{"overview", "topics", "topic", "groups", "transactions", "health", "confirm", "result"}

// pages holds one parsed template set per page.
type pages struct {
	sets map[string]*template.Template
}

func newPages() (*pages, error) {
	p := &pages{sets: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", name, err)
		}
		p.sets[name] = t
	}
	return p, nil
}

// static is the assets served under /static/.
func static() fs.FS {
	sub, _ := fs.Sub(assets, "assets/static")
	return sub
}

var funcs = template.FuncMap{
	"spark":   spark,
	"bytes":   humanBytes,
	"rate":    humanRate,
	"num":     func(n int64) string { return groupDigits(n) },
	"offset":  clusterview.FormatOffset,
	"dur":     humanDuration,
	"ago":     func(t time.Time) string { return humanDuration(time.Since(t)) },
	"utc":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"pathesc": url.PathEscape,
	"join":    strings.Join,
	"ints":    joinInts,
	"prom":    promGraph,
	"deref":   func(p *int) int { return *p },
	"deref64": func(p *int64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatInt(*p, 10)
	},
}

// sparkPoints is the most points a sparkline draws (it is 120 px wide).
const sparkPoints = 60

// spark draws samples as an inline SVG polyline (numbers only, so the
// markup is safe to emit unescaped). Longer series are thinned to
// sparkPoints by taking the maximum of each bucket, so spikes stay visible.
func spark(vals []float64) template.HTML {
	const w, h = 120.0, 24.0
	if len(vals) < 2 {
		return template.HTML(`<svg class="spark" viewBox="0 0 120 24" aria-hidden="true"></svg>`)
	}
	if len(vals) > sparkPoints {
		thin := make([]float64, sparkPoints)
		for i := range thin {
			lo, hi := i*len(vals)/sparkPoints, (i+1)*len(vals)/sparkPoints
			thin[i] = slices.Max(vals[lo:hi])
		}
		vals = thin
	}
	top := slices.Max(vals)
	b := make([]byte, 0, 160+len(vals)*10)
	b = append(b, `<svg class="spark" viewBox="0 0 120 24" preserveAspectRatio="none" role="img" aria-label="trend"><polyline points="`...)
	for i, v := range vals {
		y := h - 1
		if top > 0 {
			y = h - 1 - (v/top)*(h-2)
		}
		b = strconv.AppendFloat(b, float64(i)*w/float64(len(vals)-1), 'f', 1, 64)
		b = append(b, ',')
		b = strconv.AppendFloat(b, y, 'f', 1, 64)
		b = append(b, ' ')
	}
	b = append(b, `"/></svg>`...)
	return template.HTML(b)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func humanRate(r float64) string {
	switch {
	case r == 0:
		return "0"
	case r < 10:
		return strconv.FormatFloat(r, 'f', 2, 64)
	}
	return groupDigits(int64(math.Round(r)))
}

func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// promGraph links to a Prometheus graph of expr, or "" without --prometheus.
func promGraph(base, expr string) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/graph?g0.tab=0&g0.range_input=1h&g0.expr=" + url.QueryEscape(expr)
}
