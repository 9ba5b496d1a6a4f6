package web

import (
	"sync"
	"time"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// listCache keeps, per session, the overview's last ListLoops answer for a
// few seconds: listing 1,000 loops through the API costs ~200 ms (the
// store decodes every loop), paging through the overview's filters should
// not. It holds only what the API returned to that person's own token, so
// it widens nobody's view; it is bounded (entries, age), dropped on any
// POST of the session, and bypassed with ?fresh=1.
type listCache struct {
	mu  sync.Mutex
	m   map[string]*listEntry
	ttl time.Duration
	max int
}

type listEntry struct {
	at    time.Time
	loops []*lgv1.Loop
	trunc bool
}

func newListCache(ttl time.Duration, max int) *listCache {
	return &listCache{m: map[string]*listEntry{}, ttl: ttl, max: max}
}

func (c *listCache) get(sid string) *listEntry {
	if c.ttl <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[sid]
	if e == nil || time.Since(e.at) > c.ttl {
		delete(c.m, sid)
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
	if len(c.m) >= c.max {
		var oldest string
		var at time.Time
		for id, o := range c.m {
			if time.Since(o.at) > c.ttl {
				delete(c.m, id)
				continue
			}
			if oldest == "" || o.at.Before(at) {
				oldest, at = id, o.at
			}
		}
		if len(c.m) >= c.max {
			delete(c.m, oldest)
		}
	}
	c.m[sid] = e
}

func (c *listCache) drop(sid string) {
	c.mu.Lock()
	delete(c.m, sid)
	c.mu.Unlock()
}
