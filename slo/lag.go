package slo

import (
	"sort"
	"time"
)

// maxPoints bounds the interpolation table of one partition.
const maxPoints = 64

type point struct {
	offset int64
	at     time.Time
}

// OffsetTable is one partition's history of end offsets: when each was
// first observed. It converts an offset into the (interpolated) time at
// which the partition's end reached it, as kafka-lag-exporter does, so a
// committed offset's time lag is now − that time. Not safe for concurrent
// use.
type OffsetTable struct {
	points []point // increasing offsets and times
}

// Observe records that the end offset was end at time at. A flat period
// (no record produced) is kept as two points, when the offset was first
// and last seen, so the records written after it are not interpolated
// back into it; an end offset below the last (the topic was re-created)
// restarts the table.
func (t *OffsetTable) Observe(end int64, at time.Time) {
	if n := len(t.points); n > 0 {
		last := t.points[n-1]
		switch {
		case !at.After(last.at) && end >= last.offset:
			return // out of order: keep what is known
		case end == last.offset && n >= 2 && t.points[n-2].offset == end:
			t.points[n-1].at = at // extend the flat period
			return
		case end < last.offset:
			t.points = t.points[:0]
		}
	}
	if len(t.points) == maxPoints {
		// Drop every other point of the older half: recent history stays
		// dense, old history coarser.
		kept := t.points[:0]
		for i, p := range t.points {
			if i >= maxPoints/2 || i%2 == 0 {
				kept = append(kept, p)
			}
		}
		t.points = kept
	}
	t.points = append(t.points, point{end, at})
}

// Latest is the last observed end offset, -1 when none.
func (t *OffsetTable) Latest() int64 {
	if len(t.points) == 0 {
		return -1
	}
	return t.points[len(t.points)-1].offset
}

// TimeLag is how old the first unconsumed record is for a consumer whose
// next offset is committed, at now: 0 when it has caught up with the last
// observed end. The record at offset committed was produced after the end
// reached committed and before it passed it; the time is interpolated
// between the two surrounding observations (extrapolated from the oldest
// two when committed is older than the table).
func (t *OffsetTable) TimeLag(committed int64, now time.Time) time.Duration {
	n := len(t.points)
	if n == 0 || committed >= t.points[n-1].offset {
		return 0
	}
	// The first point whose offset is above committed: the record at
	// committed was written before that observation.
	i := sort.Search(n, func(i int) bool { return t.points[i].offset > committed })
	var at time.Time
	switch {
	case i == 0 && n == 1:
		at = t.points[0].at
	case i == 0:
		at = interpolate(t.points[0], t.points[1], committed)
	default:
		at = interpolate(t.points[i-1], t.points[i], committed)
	}
	if lag := now.Sub(at); lag > 0 {
		return lag
	}
	return 0
}

// interpolate is the time on the line through a and b at offset o.
func interpolate(a, b point, o int64) time.Time {
	if b.offset == a.offset {
		return a.at
	}
	frac := float64(o-a.offset) / float64(b.offset-a.offset)
	return a.at.Add(time.Duration(frac * float64(b.at.Sub(a.at))))
}
