package telemetry

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Gate decides whether an HTTP request may read what it guards (/metrics,
// /readyz's reasons). A nil Gate lets everyone in.
type Gate interface {
	Allowed(r *http.Request) bool
}

// BearerFile is a bearer token read from a file, read again whenever the
// file changes (so a rotated token takes effect without a restart).
type BearerFile struct {
	path string
	mu   sync.Mutex
	mod  time.Time
	size int64
	tok  string
}

// NewBearerFile reads the token in path (surrounding whitespace trimmed);
// an unreadable or empty file is an error.
func NewBearerFile(path string) (*BearerFile, error) {
	b := &BearerFile{path: path}
	if _, err := b.token(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *BearerFile) token() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fi, err := os.Stat(b.path)
	if err != nil {
		if b.tok != "" {
			return b.tok, nil // keep the last good token while the file is replaced
		}
		return "", fmt.Errorf("metrics token file: %w", err)
	}
	if b.tok != "" && fi.ModTime().Equal(b.mod) && fi.Size() == b.size {
		return b.tok, nil
	}
	raw, err := os.ReadFile(b.path)
	if err != nil {
		if b.tok != "" {
			return b.tok, nil
		}
		return "", fmt.Errorf("metrics token file: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" {
		if b.tok != "" {
			return b.tok, nil
		}
		return "", fmt.Errorf("metrics token file %s is empty", b.path)
	}
	b.tok, b.mod, b.size = tok, fi.ModTime(), fi.Size()
	return tok, nil
}

// Allowed reports whether r carries the token as "Authorization: Bearer".
// A nil BearerFile allows everything.
func (b *BearerFile) Allowed(r *http.Request) bool {
	if b == nil {
		return true
	}
	want, err := b.token()
	if err != nil {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) == 1
}

// Handler serves the registry in the Prometheus exposition formats; with
// auth non-nil a scrape must carry its bearer token (401 otherwise).
func (m *Metrics) Handler(auth Gate) http.Handler {
	h := promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if auth != nil && !auth.Allowed(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="loopgate metrics"`)
			http.Error(w, "unauthorized: /metrics needs the scrape token of metrics.tokenFile or an API token of an admin or auditor", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ErrNotReady is returned by a readiness check whose component is not
// ready yet (or any more).
var ErrNotReady = errors.New("not ready")
