package server

import (
	"testing"
	"time"
)

func TestLimiterBurstThenRate(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(2, 5) // 5 at once, then 2 a second
	l.now = func() time.Time { return now }
	for i := range 5 {
		if ok, _ := l.Take("alice"); !ok {
			t.Fatalf("take %d within the burst refused", i)
		}
	}
	ok, wait := l.Take("alice")
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("past the burst: %v, wait %s; want refused with a wait ≤ 1s", ok, wait)
	}
	if ok, _ := l.Take("bob"); !ok {
		t.Error("another key shares alice's bucket")
	}
	if ex, _ := l.Exhausted("alice"); !ex {
		t.Error("Exhausted says alice has tokens")
	}
	now = now.Add(600 * time.Millisecond)
	if ok, _ := l.Take("alice"); !ok {
		t.Error("no token after the refill")
	}
}

func TestLimiterKeysAreBounded(t *testing.T) {
	l := NewLimiter(1, 1)
	for i := range 3 * maxLimiterKeys {
		l.Take(string(rune(i)) + "-key")
	}
	if n := len(l.buckets); n > maxLimiterKeys+1 {
		t.Errorf("%d buckets, want at most %d", n, maxLimiterKeys+1)
	}
}
