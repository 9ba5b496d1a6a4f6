package web

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The list cache never holds more than its byte budget or entry count: the
// oldest entries go first, an entry larger than the whole budget is not
// kept, and dropping or replacing an entry gives its bytes back.
func TestListCacheIsBounded(t *testing.T) {
	rows := func(n, desc int) []loopRow {
		out := make([]loopRow, n)
		for i := range out {
			out[i] = loopRow{Key: fmt.Sprint(i), Team: "growth", Name: fmt.Sprintf("loop-%04d", i), Description: strings.Repeat("d", desc)}
		}
		return out
	}
	one := newListEntry(time.Now(), rows(10, 100), false)
	c := newListCache(time.Minute, 100, one.size*3)
	now := time.Now()
	for i := range 5 {
		c.put(fmt.Sprint("s", i), newListEntry(now.Add(time.Duration(i)*time.Millisecond), rows(10, 100), false))
	}
	if len(c.m) != 3 || c.used != 3*one.size {
		t.Fatalf("%d entries, %d bytes; want 3 entries of %d bytes", len(c.m), c.used, one.size)
	}
	if c.get("s0") != nil || c.get("s1") != nil || c.get("s4") == nil {
		t.Errorf("the oldest entries were not the ones evicted")
	}
	c.put("s4", newListEntry(time.Now(), rows(5, 100), false)) // replaced: its bytes are given back
	c.drop("s3")
	if want := one.size + newListEntry(now, rows(5, 100), false).size; c.used != want || len(c.m) != 2 {
		t.Errorf("after replace and drop: %d entries, %d bytes; want 2 and %d", len(c.m), c.used, want)
	}
	c.put("huge", newListEntry(time.Now(), rows(100, 100), false))
	if c.get("huge") != nil || c.used > c.maxBytes {
		t.Errorf("an entry over the whole budget was kept (%d of %d bytes)", c.used, c.maxBytes)
	}

	byCount := newListCache(time.Minute, 2, 1<<30)
	for i := range 4 {
		byCount.put(fmt.Sprint("s", i), newListEntry(now.Add(time.Duration(i)*time.Millisecond), rows(1, 1), false))
	}
	if len(byCount.m) != 2 || byCount.get("s3") == nil || byCount.get("s2") == nil {
		t.Errorf("entry bound: %d entries", len(byCount.m))
	}

	expired := newListCache(time.Millisecond, 10, 1<<30)
	expired.put("old", newListEntry(time.Now().Add(-time.Second), rows(1, 1), false))
	if expired.get("old") != nil || expired.used != 0 {
		t.Errorf("an expired entry is served or still counted (%d bytes)", expired.used)
	}
}
