package slo

import (
	"sort"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// RelativeAccuracy is the sketches' relative accuracy: a reported quantile
// is within 1% of the true value at that rank.
const RelativeAccuracy = 0.01

// Window names, in the order LoopStatus.slo.windows lists them.
const (
	Window1m  = "1m"
	Window1h  = "1h"
	Window28d = "28d"
)

// Days is how many UTC days the longest window spans (today included).
const Days = 28

// shortSlots is how many slots make the short (1m) window; longSlots how
// many short-window lengths make the 1h window.
const (
	shortSlots = 6
	longSlots  = 60
)

func newSketch() *ddsketch.DDSketch {
	s, err := ddsketch.NewDefaultDDSketch(RelativeAccuracy)
	if err != nil {
		panic(err) // only for an invalid accuracy
	}
	return s
}

// bucket is the latencies (ms) and counts of one time slot.
type bucket struct {
	slot          int64 // slot number (time / slot length); -1 = empty
	sketch        *ddsketch.DDSketch
	records       int64 // with the header
	withoutHeader int64
	over          int64 // latency above the target
	// rolled is set on a short slot once it was added to the hour and
	// day it belongs to (records go into the short slot only; longer
	// windows take complete short slots, and merge the others on read).
	rolled bool
}

func (b *bucket) empty() bool { return b.records == 0 && b.withoutHeader == 0 }

// mergeInto adds b's contents to dst.
func (b *bucket) mergeInto(dst *bucket) {
	if b.records > 0 {
		_ = dst.sketch.MergeWith(b.sketch)
	}
	dst.records += b.records
	dst.withoutHeader += b.withoutHeader
	dst.over += b.over
}

func (b *bucket) reset(slot int64) {
	b.slot = slot
	if b.sketch == nil {
		b.sketch = newSketch()
	} else {
		b.sketch.Clear()
	}
	b.records, b.withoutHeader, b.over = 0, 0, 0
	b.rolled = false
}

func (b *bucket) add(ms float64, over bool) {
	_ = b.sketch.Add(ms)
	b.records++
	if over {
		b.over++
	}
}

// ring is a fixed number of consecutive slots of one length.
type ring struct {
	length  time.Duration
	buckets []bucket
}

func newRing(length time.Duration, n int) *ring {
	r := &ring{length: length, buckets: make([]bucket, n)}
	for i := range r.buckets {
		r.buckets[i].slot = -1
	}
	return r
}

func (r *ring) at(t time.Time) *bucket {
	slot := t.UnixNano() / int64(r.length)
	b := &r.buckets[int(slot%int64(len(r.buckets)))]
	if b.slot != slot {
		b.reset(slot)
	}
	return b
}

// start is when slot begins.
func (r *ring) start(slot int64) time.Time { return time.Unix(0, slot*int64(r.length)) }

// merged sums the slots within the ring's span ending at now.
func (r *ring) merged(now time.Time) Summary {
	cur := now.UnixNano() / int64(r.length)
	var s Summary
	for i := range r.buckets {
		b := &r.buckets[i]
		if b.slot < 0 || b.slot > cur || b.slot <= cur-int64(len(r.buckets)) {
			continue
		}
		s.merge(b.sketch, b.records, b.withoutHeader, b.over)
	}
	return s
}

// Summary is the latencies of one window.
type Summary struct {
	Sketch        *ddsketch.DDSketch // nil when no record had the header
	Records       int64
	WithoutHeader int64
	Over          int64
}

func (s *Summary) merge(sk *ddsketch.DDSketch, records, without, over int64) {
	if sk != nil && !sk.IsEmpty() {
		if s.Sketch == nil {
			s.Sketch = sk.Copy()
		} else {
			_ = s.Sketch.MergeWith(sk)
		}
	}
	s.Records += records
	s.WithoutHeader += without
	s.Over += over
}

// Quantile is the q-quantile in ms, 0 when there is no record.
func (s Summary) Quantile(q float64) float64 {
	if s.Sketch == nil || s.Sketch.IsEmpty() {
		return 0
	}
	v, err := s.Sketch.GetValueAtQuantile(q)
	if err != nil {
		return 0
	}
	return v
}

// ErrorBudgetRemaining is 1 − over / (1% × records): the share of the
// window's error budget (1% of records may exceed the p99 target) left; 1
// when there is no record, negative when overspent.
func (s Summary) ErrorBudgetRemaining() float64 {
	if s.Records == 0 {
		return 1
	}
	return 1 - float64(s.Over)/(0.01*float64(s.Records))
}

// day is one UTC day's latencies.
type day struct {
	start time.Time
	b     bucket
	dirty bool // changed since the last flush
}

// Windows keeps one loop's latencies over the 1m, 1h and 28-day windows:
// a ring of short slots (6 × short/6) for 1m, a ring of 60 short-window
// slots for 1h, and one sketch per UTC day for 28 days. A record goes into
// its short slot only (one sketch insertion); a complete short slot is
// merged into its hour slot and its day once. Quantiles are merged on
// read. Not safe for concurrent use.
type Windows struct {
	short, long *ring
	days        map[time.Time]*day
}

// NewWindows returns empty windows whose short window is short long (one
// minute in production) and whose long one is 60 × short.
func NewWindows(short time.Duration) *Windows {
	if short <= 0 {
		short = time.Minute
	}
	return &Windows{short: newRing(short/shortSlots, shortSlots), long: newRing(short, longSlots), days: map[time.Time]*day{}}
}

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func (w *Windows) today(at time.Time) *day {
	k := dayOf(at)
	d := w.days[k]
	if d == nil {
		d = &day{start: k}
		d.b.reset(0)
		w.days[k] = d
		// Forget days out of the window.
		for s := range w.days {
			if s.Before(k.AddDate(0, 0, -(Days - 1))) {
				delete(w.days, s)
			}
		}
	}
	return d
}

// slotAt returns the short slot of at, first rolling up what it held
// before (an older slot) into the longer windows.
func (w *Windows) slotAt(at time.Time) *bucket {
	slot := at.UnixNano() / int64(w.short.length)
	b := &w.short.buckets[int(slot%int64(len(w.short.buckets)))]
	if b.slot != slot {
		w.roll(b)
		b.reset(slot)
	}
	return b
}

// roll adds a short slot to its hour slot and its day, once.
func (w *Windows) roll(b *bucket) {
	if b.rolled || b.slot < 0 || b.empty() {
		b.rolled = true
		return
	}
	t := w.short.start(b.slot)
	b.mergeInto(w.long.at(t))
	d := w.today(t)
	b.mergeInto(&d.b)
	d.dirty = true
	b.rolled = true
}

// Roll rolls up every complete short slot (those before now's).
func (w *Windows) Roll(now time.Time) {
	cur := now.UnixNano() / int64(w.short.length)
	for i := range w.short.buckets {
		if b := &w.short.buckets[i]; b.slot < cur {
			w.roll(b)
		}
	}
}

// Add records one sampled action record with the origin header observed at
// at: latency in ms, and whether it was over the target.
func (w *Windows) Add(at time.Time, ms float64, over bool) {
	w.slotAt(at).add(ms, over)
}

// AddWithoutHeader records one sampled action record without the header.
func (w *Windows) AddWithoutHeader(at time.Time) {
	w.slotAt(at).withoutHeader++
}

// Short is the 1m window ending at now.
func (w *Windows) Short(now time.Time) Summary { return w.short.merged(now) }

// unrolled merges into s the short slots not yet rolled up whose start
// satisfies in.
func (w *Windows) unrolled(s *Summary, in func(time.Time) bool) {
	for i := range w.short.buckets {
		b := &w.short.buckets[i]
		if b.slot >= 0 && !b.rolled && !b.empty() && in(w.short.start(b.slot)) {
			s.merge(b.sketch, b.records, b.withoutHeader, b.over)
		}
	}
}

// Long is the 1h window ending at now.
func (w *Windows) Long(now time.Time) Summary {
	s := w.long.merged(now)
	from := now.Add(-time.Duration(len(w.long.buckets)) * w.long.length)
	w.unrolled(&s, func(t time.Time) bool { return t.After(from) && !t.After(now) })
	return s
}

// Month is the 28-day window ending at now (today and the 27 days before).
func (w *Windows) Month(now time.Time) Summary {
	first := dayOf(now).AddDate(0, 0, -(Days - 1))
	var s Summary
	for k, d := range w.days {
		if !k.Before(first) && !k.After(now) {
			s.merge(d.b.sketch, d.b.records, d.b.withoutHeader, d.b.over)
		}
	}
	w.unrolled(&s, func(t time.Time) bool { return !t.Before(first) && !t.After(now) })
	return s
}

// Daily returns each UTC day of the 28-day window ending at now that has
// sampled records (with or without the header), oldest first: the rolled-up
// day merged with its short slots not rolled up yet, as Month merges them.
func (w *Windows) Daily(now time.Time) []DayStat {
	first := dayOf(now).AddDate(0, 0, -(Days - 1))
	byDay := map[time.Time]*Summary{}
	at := func(k time.Time) *Summary {
		s := byDay[k]
		if s == nil {
			s = &Summary{}
			byDay[k] = s
		}
		return s
	}
	for k, d := range w.days {
		if !k.Before(first) && !k.After(now) && !d.b.empty() {
			at(k).merge(d.b.sketch, d.b.records, d.b.withoutHeader, d.b.over)
		}
	}
	for i := range w.short.buckets {
		b := &w.short.buckets[i]
		if t := w.short.start(b.slot); b.slot >= 0 && !b.rolled && !b.empty() && !t.Before(first) && !t.After(now) {
			at(dayOf(t)).merge(b.sketch, b.records, b.withoutHeader, b.over)
		}
	}
	out := make([]DayStat, 0, len(byDay))
	for k, s := range byDay {
		out = append(out, DayStat{Day: k, Summary: *s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Day.Before(out[j].Day) })
	return out
}

// DayStat is one day of Daily.
type DayStat struct {
	Day time.Time
	Summary
}

// DaySketch is one day's state, serialized for the store.
type DaySketch struct {
	Day                          time.Time
	Sketch                       []byte
	Records, WithoutHeader, Over int64
}

// DirtyDays returns the days changed since the last call, serialized
// (complete short slots only: call Roll first).
func (w *Windows) DirtyDays() []DaySketch {
	var out []DaySketch
	for _, d := range w.days {
		if !d.dirty {
			continue
		}
		d.dirty = false
		var b []byte
		d.b.sketch.Encode(&b, false)
		out = append(out, DaySketch{Day: d.start, Sketch: b, Records: d.b.records, WithoutHeader: d.b.withoutHeader, Over: d.b.over})
	}
	return out
}

// RestoreDay merges a persisted day into the windows (at start, before any
// record of that day was added here; a day already present is replaced).
func (w *Windows) RestoreDay(ds DaySketch) error {
	sk, err := ddsketch.DecodeDDSketch(ds.Sketch, store.DefaultProvider, nil)
	if err != nil {
		return err
	}
	k := dayOf(ds.Day)
	w.days[k] = &day{start: k, b: bucket{sketch: sk, records: ds.Records, withoutHeader: ds.WithoutHeader, over: ds.Over}}
	return nil
}
