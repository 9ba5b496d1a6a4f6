package telemetry

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Gate decides whether an HTTP request may read what it guards (/metrics,
// /readyz's reasons): nil, or a *Refusal saying why not. A nil Gate lets
// everyone in.
type Gate interface {
	Check(r *http.Request) error
}

// Refusal is a Gate's answer to a request it does not let in: the HTTP
// status, what to tell the caller (why), and, for a caller refused for too
// many failed attempts, when to retry (Retry-After).
type Refusal struct {
	Status     int
	Message    string
	RetryAfter time.Duration
}

func (r *Refusal) Error() string { return r.Message }

// writeRefusal answers err (a *Refusal, else 401) on w.
func writeRefusal(w http.ResponseWriter, err error) {
	ref, ok := err.(*Refusal)
	if !ok {
		ref = &Refusal{Status: http.StatusUnauthorized, Message: err.Error()}
	}
	if ref.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="loopgate metrics"`)
	}
	if ref.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ref.RetryAfter.Seconds()))))
	}
	http.Error(w, ref.Message, ref.Status)
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

// Check lets r in when it carries the token as "Authorization: Bearer"
// (401 otherwise). A nil BearerFile lets everything in.
func (b *BearerFile) Check(r *http.Request) error {
	if b == nil {
		return nil
	}
	want, err := b.token()
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if err != nil || !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
		return &Refusal{Status: http.StatusUnauthorized, Message: "unauthorized: send the scrape token of metrics.tokenFile as Authorization: Bearer"}
	}
	return nil
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
		if auth != nil {
			if err := auth.Check(r); err != nil {
				writeRefusal(w, err)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// ErrNotReady is returned by a readiness check whose component is not
// ready yet (or any more).
var ErrNotReady = errors.New("not ready")
