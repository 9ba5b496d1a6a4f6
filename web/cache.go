package web

import (
	"sync"
	"time"
)

// listCache keeps, per session, the overview's last listing for a few
// seconds, as the rows the overview shows: listing 1,000 loops through the
// API costs tens of milliseconds, paging through the overview's filters
// should not. It holds only what the API returned to that person's own
// token, so it widens nobody's view. It is bounded by entries, by age and
// by the approximate bytes of all its rows together (the oldest entries go
// first), dropped on any POST of the session, and bypassed with ?fresh=1.
type listCache struct {
	mu       sync.Mutex
	m        map[string]*listEntry
	ttl      time.Duration
	max      int // entries
	maxBytes int // approximate bytes of every entry's rows
	used     int
}

type listEntry struct {
	at    time.Time
	rows  []loopRow
	trunc bool
	size  int // approximate bytes of rows
}

// defaultListCacheBytes bounds the rows of every session's cached listing
// together: 64 MiB, some 200,000 rows of typical loops.
const defaultListCacheBytes = 64 << 20

func newListCache(ttl time.Duration, max, maxBytes int) *listCache {
	return &listCache{m: map[string]*listEntry{}, ttl: ttl, max: max, maxBytes: maxBytes}
}

// rowBytes approximates the memory one row holds.
func rowBytes(r *loopRow) int {
	n := 160 + len(r.Key) + len(r.Team) + len(r.Name) + len(r.Description) + len(r.State) + len(r.StateName) +
		len(r.Compliance) + len(r.Region) + len(r.SLO) + len(r.Currency)
	for _, o := range r.Owners {
		n += 16 + len(o)
	}
	return n
}

func newListEntry(at time.Time, rows []loopRow, trunc bool) *listEntry {
	e := &listEntry{at: at, rows: rows, trunc: trunc}
	for i := range rows {
		e.size += rowBytes(&rows[i])
	}
	return e
}

func (c *listCache) get(sid string) *listEntry {
	if c.ttl <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[sid]
	if e == nil || time.Since(e.at) > c.ttl {
		c.remove(sid)
		return nil
	}
	return e
}

func (c *listCache) put(sid string, e *listEntry) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(sid)
	if e.size > c.maxBytes {
		return // larger than the whole cache: not kept
	}
	for id, o := range c.m {
		if time.Since(o.at) > c.ttl {
			c.remove(id)
		}
	}
	for len(c.m) >= c.max || c.used+e.size > c.maxBytes {
		oldest := ""
		var at time.Time
		for id, o := range c.m {
			if oldest == "" || o.at.Before(at) {
				oldest, at = id, o.at
			}
		}
		c.remove(oldest)
	}
	c.m[sid] = e
	c.used += e.size
}

// remove deletes sid's entry; c.mu is held.
func (c *listCache) remove(sid string) {
	if e := c.m[sid]; e != nil {
		c.used -= e.size
		delete(c.m, sid)
	}
}

func (c *listCache) drop(sid string) {
	c.mu.Lock()
	c.remove(sid)
	c.mu.Unlock()
}
