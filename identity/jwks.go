package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Bounds of the key set cache.
const (
	maxJWKSBytes     = 1 << 20          // largest key set document accepted
	jwksFetchTimeout = 10 * time.Second // per fetch
	// unknownKidInterval rate-limits the refetches triggered by tokens
	// signed with a key we do not know, so random kids cannot make us
	// hammer the issuer.
	unknownKidInterval = 30 * time.Second
	// retryBackoff is the minimum time between a failed fetch and the next
	// attempt, whatever triggers it.
	retryBackoff = 5 * time.Second
	// minRSABits is the smallest RSA key accepted from a key set.
	minRSABits = 2048
)

// keySource loads a raw JWKS document.
type keySource interface {
	load(ctx context.Context) ([]byte, error)
	String() string
}

// urlSource fetches the key set over HTTP(S).
type urlSource struct {
	url    string
	client *http.Client
}

func (s urlSource) String() string { return s.url }

func (s urlSource) load(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("GET %s: %s", s.url, resp.Status)
	}
	return readBounded(resp.Body)
}

// fileSource reads the key set from a local file.
type fileSource struct{ path string }

func (s fileSource) String() string { return s.path }

func (s fileSource) load(context.Context) ([]byte, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBounded(f)
}

// readBounded reads r to the end, refusing more than maxJWKSBytes.
func readBounded(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	return data, nil
}

// parseJWKS decodes a JWK Set and keeps the keys usable to verify
// signatures: RSA (at least 2048 bits), EC and Ed25519 public keys not
// reserved for encryption. Private keys are reduced to their public half.
// Keys go-jose cannot decode are skipped rather than failing the whole set,
// so an issuer publishing a new key type does not lock everybody out.
func parseJWKS(data []byte) (*jose.JSONWebKeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("invalid JWKS: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`invalid JWKS: no "keys" array`)
	}
	set := &jose.JSONWebKeySet{}
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil || !k.Valid() || k.Use == "enc" {
			continue
		}
		if !k.IsPublic() {
			k = k.Public()
		}
		switch key := k.Key.(type) {
		case *rsa.PublicKey:
			if key.N.BitLen() < minRSABits {
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default: // symmetric keys and anything else
			continue
		}
		set.Keys = append(set.Keys, k)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("JWKS has no usable public signing keys")
	}
	return set, nil
}

// keyCache holds the last good key set and decides when to refetch it:
// when it is older than the refresh interval (in the background, the
// current keys stay in use), when a token names an unknown key (at most
// once per unknownKidInterval), and while no key set could be loaded yet.
// After a failed fetch no new attempt is made for retryBackoff. Concurrent
// callers share one fetch.
type keyCache struct {
	src     keySource
	refresh time.Duration
	now     func() time.Time
	log     *slog.Logger

	mu          sync.Mutex
	set         *jose.JSONWebKeySet // last good key set; nil until the first success
	gen         uint64              // incremented when a fetch completes
	fetchedAt   time.Time           // last successful fetch
	lastAttempt time.Time           // last fetch, successful or not
	lastFailed  bool                // whether the last fetch failed
	lastKidSync time.Time           // last fetch triggered by an unknown kid
	inflight    chan struct{}       // closed when the running fetch completes; nil when idle
}

// fetchReason says why a fetch is wanted; each has its own rate limit.
type fetchReason int

const (
	reasonStale fetchReason = iota
	reasonNoKeys
	reasonUnknownKid
)

// allowedLocked reports whether a fetch for reason may start now.
func (c *keyCache) allowedLocked(now time.Time, reason fetchReason) bool {
	if c.lastFailed && now.Sub(c.lastAttempt) < retryBackoff {
		return false
	}
	switch reason {
	case reasonStale:
		return now.Sub(c.fetchedAt) >= c.refresh
	case reasonUnknownKid:
		return c.lastKidSync.IsZero() || now.Sub(c.lastKidSync) >= unknownKidInterval
	default:
		return true
	}
}

// load fetches the key set once, synchronously; used at start-up.
func (c *keyCache) load(ctx context.Context) error {
	c.mu.Lock()
	c.inflight = make(chan struct{})
	c.mu.Unlock()
	return c.fetch(ctx)
}

// current returns the key set in use (nil if none could be loaded yet) and
// its generation. A stale set is refreshed in the background.
func (c *keyCache) current() (*jose.JSONWebKeySet, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set != nil && c.inflight == nil && c.allowedLocked(c.now(), reasonStale) {
		c.inflight = make(chan struct{})
		go c.fetch(context.Background()) //nolint:errcheck // logged by fetch
	}
	return c.set, c.gen
}

// refetch fetches the key set again, synchronously, unless a fetch has
// completed since the caller saw generation seen or the rate limit for
// reason forbids it. It returns the key set in use afterwards.
func (c *keyCache) refetch(ctx context.Context, seen uint64, reason fetchReason) *jose.JSONWebKeySet {
	c.mu.Lock()
	for c.inflight != nil {
		wait := c.inflight
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.set
		}
		c.mu.Lock()
	}
	now := c.now()
	if c.gen != seen || !c.allowedLocked(now, reason) {
		defer c.mu.Unlock()
		return c.set
	}
	if reason == reasonUnknownKid {
		c.lastKidSync = now
	}
	c.inflight = make(chan struct{})
	c.mu.Unlock()

	// The fetch outlives a caller that gives up: others may be waiting.
	c.fetch(context.WithoutCancel(ctx)) //nolint:errcheck // logged by fetch

	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set
}

// fetch loads and parses the key set and records the outcome. The caller
// must have set c.inflight; fetch closes and clears it. A failure keeps the
// previous key set.
func (c *keyCache) fetch(ctx context.Context) error {
	start := c.now()
	set, err := c.loadSet(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.lastAttempt = start
	c.lastFailed = err != nil
	if err == nil {
		c.set = set
		c.fetchedAt = start
		c.log.Debug("identity: loaded JWKS", "source", c.src.String(), "keys", len(set.Keys))
	} else {
		c.log.Warn("identity: cannot load JWKS; keeping the previous keys", "source", c.src.String(), "error", err, "have_keys", c.set != nil)
	}
	close(c.inflight)
	c.inflight = nil
	return err
}

func (c *keyCache) loadSet(ctx context.Context) (*jose.JSONWebKeySet, error) {
	data, err := c.src.load(ctx)
	if err != nil {
		return nil, err
	}
	return parseJWKS(data)
}
