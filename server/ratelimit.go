package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimits are the abuse limits of the API. Both are token buckets: a
// burst is allowed, then a steady rate.
type RateLimits struct {
	// MutationsPerSecond and MutationBurst limit each identity's mutating
	// calls (create, update, delete, approve, reject, principal changes,
	// credentials) and plans, which evaluate policy and read the cluster.
	MutationsPerSecond float64
	MutationBurst      int
	// AuthFailuresPerMinute and AuthFailureBurst limit failed
	// authentications per client address; past them, requests from that
	// address are refused before their credentials are even checked.
	AuthFailuresPerMinute float64
	AuthFailureBurst      int
}

// DefaultRateLimits allow a 1,000-loop apply in one go and a few hundred
// writes a minute after that, per identity; 20 failed logins per address,
// then one a second.
var DefaultRateLimits = RateLimits{
	MutationsPerSecond: 20, MutationBurst: 2000,
	AuthFailuresPerMinute: 60, AuthFailureBurst: 20,
}

// rateLimitedActions are the actions MutationsPerSecond applies to.
//
// A batch apply (BatchApplyLoops) spends one token to be let in, like any
// change, and after it ran one more for each further loop it created or
// updated: an identity that re-applies an estate of unchanged loops is not
// slowed down, one that changes many waits afterwards until the bucket
// refills (Charge). A batch plan (BatchPlanLoops) spends one token per
// planItemsPerToken loops, up front: it writes nothing and observes each
// cluster once, but evaluates policy for every loop.
// planItemsPerToken is how many loops of a batch plan cost one token.
const planItemsPerToken = 20

var rateLimitedActions = map[string]bool{
	"loop.create": true, "loop.update": true, "loop.delete": true, "loop.plan": true,
	"loop.approve": true, "loop.reject": true,
	"principal.create": true, "principal.delete": true, "principal.credentials": true,
}

// Limiter holds the token buckets, one per key, for a bounded number of
// keys: a flood of distinct keys cannot grow memory without limit. Idle
// buckets (full again) are dropped.
type Limiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// maxLimiterKeys bounds the keys a Limiter tracks; when full, full buckets
// are swept, and if none is, the new key shares one overflow bucket.
const maxLimiterKeys = 10000

// NewLimiter allows burst events at once and perSecond after that, per key.
func NewLimiter(perSecond float64, burst int) *Limiter {
	return &Limiter{limit: rate.Limit(perSecond), burst: burst, now: time.Now, buckets: map[string]*rate.Limiter{}}
}

func (l *Limiter) bucket(key string) *rate.Limiter {
	b, ok := l.buckets[key]
	if ok {
		return b
	}
	if len(l.buckets) >= maxLimiterKeys {
		now := l.now()
		for k, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		if len(l.buckets) >= maxLimiterKeys {
			key = "(overflow)"
			if b, ok := l.buckets[key]; ok {
				return b
			}
		}
	}
	b = rate.NewLimiter(l.limit, l.burst)
	l.buckets[key] = b
	return b
}

// Take spends one token of key; when none is left it returns false and how
// long until one is.
func (l *Limiter) Take(key string) (bool, time.Duration) { return l.TakeN(key, 1) }

// TakeN spends n tokens of key at once (a batch of n changes), or none:
// when fewer are left it returns false and how long until n are. n must
// not exceed Burst (no wait would do); false with a zero wait then.
func (l *Limiter) TakeN(key string, n int) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	r := l.bucket(key).ReserveN(now, n)
	if !r.OK() {
		return false, 0
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Charge spends n tokens of key that were already used (the changes a
// batch made): the bucket may go below zero, and the key's next Take waits
// until the debt is paid. At most a burst is charged at once.
func (l *Limiter) Charge(key string, n int) {
	if l == nil || n <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bucket(key).ReserveN(l.now(), min(n, l.burst)) // kept: a debt, never cancelled
}

// Burst is how many tokens a key may spend at once; 0 for no limiter.
func (l *Limiter) Burst() int {
	if l == nil {
		return 0
	}
	return l.burst
}

// Exhausted reports whether key has no token left, without spending one,
// and how long until it has.
func (l *Limiter) Exhausted(key string) (bool, time.Duration) {
	if l == nil {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[key]
	if !ok || b.TokensAt(now) >= 1 {
		return false, 0
	}
	missing := 1 - b.TokensAt(now)
	return true, time.Duration(missing / float64(l.limit) * float64(time.Second))
}

// Limiters are the API's limiters built from RateLimits.
type Limiters struct {
	Mutations    *Limiter // by subject
	AuthFailures *Limiter // by client address
}

// NewLimiters builds the limiters of rl; a zero rate disables that limit.
func NewLimiters(rl RateLimits) *Limiters {
	out := &Limiters{}
	if rl.MutationsPerSecond > 0 {
		out.Mutations = NewLimiter(rl.MutationsPerSecond, max(rl.MutationBurst, 1))
	}
	if rl.AuthFailuresPerMinute > 0 {
		out.AuthFailures = NewLimiter(rl.AuthFailuresPerMinute/60, max(rl.AuthFailureBurst, 1))
	}
	return out
}
