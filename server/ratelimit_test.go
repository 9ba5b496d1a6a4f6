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

// A batch spends one token per item, all or none.
func TestLimiterTakeNSpendsAllOrNothing(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(1, 5)
	l.now = func() time.Time { return now }
	if ok, _ := l.TakeN("alice", 4); !ok {
		t.Fatal("4 of a burst of 5 refused")
	}
	ok, wait := l.TakeN("alice", 3)
	if ok || wait <= time.Second || wait > 2*time.Second {
		t.Fatalf("3 with 1 left: %v, wait %s; want refused with a wait of about 2s", ok, wait)
	}
	if ok, _ := l.Take("alice"); !ok {
		t.Error("the refused batch spent tokens: the last one is gone")
	}
	if ok, wait := l.TakeN("bob", 6); ok || wait != 0 {
		t.Errorf("6 over a burst of 5: %v, wait %s; want refused with no wait (none would do)", ok, wait)
	}
	if l.Burst() != 5 || (*Limiter)(nil).Burst() != 0 {
		t.Errorf("Burst() = %d", l.Burst())
	}
}
