package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/loopgate/loopgate/cost"
	"github.com/loopgate/loopgate/loop"
)

var pageNames = []string{"login", "error", "overview", "team", "loop", "principal", "policy", "impact", "audit"}

var funcs = template.FuncMap{
	"ts": func(t *timestamppb.Timestamp) string {
		if t == nil || (t.Seconds == 0 && t.Nanos == 0) {
			return "—"
		}
		return t.AsTime().UTC().Format("2006-01-02 15:04 UTC")
	},
	"iso": func(t *timestamppb.Timestamp) string {
		if t == nil {
			return ""
		}
		return t.AsTime().UTC().Format(time.RFC3339)
	},
	"ms":    fmtMS,
	"msi":   func(v int64) string { return fmtMS(float64(v)) },
	"money": cost.Money, // money AMOUNT CURRENCY: $62.13, $2,431, 12.50 EUR

	"pct": func(v float64) string { return fmt.Sprintf("%.0f %%", v*100) },
	"rate": func(v int64) string { // bytes per second: 6 MiB/s
		if v <= 0 {
			return "—"
		}
		s := loop.FormatSize(v)
		if strings.Trim(s, "0123456789") == "" {
			s += " B"
		}
		return s + "/s"
	},
	"join": strings.Join,
	"dash": func(s string) string {
		if s == "" {
			return "—"
		}
		return s
	},
}

func fmtMS(v float64) string {
	switch {
	case v <= 0:
		return "—"
	case v >= 10000:
		return fmt.Sprintf("%.1f s", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	default:
		return fmt.Sprintf("%.1f ms", v)
	}
}

func parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, n := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html")
		if err != nil {
			return nil, fmt.Errorf("portal template %s: %w", n, err)
		}
		out[n] = t
	}
	return out, nil
}

// page is what the layout renders around a page's body.
type page struct {
	Title    string
	Subject  string
	CSRF     string
	Nav      string // which nav item is current
	Flash    string
	FlashErr string
	Body     any
}

// errorView is the body of the error page (403, 401, 404, ...).
type errorView struct {
	Title  string
	Reason string
}

// render writes the named page with status code. The page is executed into
// a buffer first, so a template error never sends half a page.
func (p *Portal) render(w http.ResponseWriter, r *http.Request, code int, name string, body any, s *session) {
	pg := page{Body: body, Nav: navOf(r.URL.Path)}
	switch v := body.(type) {
	case errorView:
		pg.Title = v.Title
	case titled:
		pg.Title = v.title()
	}
	if s != nil {
		pg.Subject, pg.CSRF = s.who().GetSubject(), s.csrf
		msg, fail := s.takeFlash()
		if fail {
			pg.FlashErr = msg
		} else {
			pg.Flash = msg
		}
	}
	var buf bytes.Buffer
	if err := p.pages[name].Execute(&buf, pg); err != nil {
		p.log.Error("portal: rendering a page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

type titled interface{ title() string }

func navOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/policy"):
		return "policy"
	case strings.HasPrefix(path, "/audit"):
		return "audit"
	default:
		return "loops"
	}
}
