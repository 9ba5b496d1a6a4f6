package slo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/loopgate/loopgate/store"
)

type topicPartition struct {
	topic     string
	partition int32
}

// pollLag polls the consumer lag of every group of cluster c's loops each
// LagInterval until ctx ends: per poll one ListOffsets (end offsets of all
// the topics the groups consume) and one OffsetFetch (all the groups), with
// loopgate's admin connection. Time lag is interpolated from the history
// of end offsets (OffsetTable).
func (o *Observer) pollLag(ctx context.Context, c *Cluster) {
	if c.Admin == nil {
		return
	}
	adm := kadm.NewClient(c.Admin)
	tables := map[topicPartition]*OffsetTable{}
	var lastWarn time.Time
	t := time.NewTicker(o.cfg.LagInterval)
	defer t.Stop()
	for {
		if problems := o.pollLagOnce(ctx, c, adm, tables); len(problems) > 0 && ctx.Err() == nil && time.Since(lastWarn) >= lagWarnEvery {
			// Once a minute at most: a broker that keeps failing would
			// otherwise log every poll.
			lastWarn = time.Now()
			o.log.Warn("consumer lag is incomplete; the groups and partitions named are left out until a poll succeeds",
				"cluster", c.Name, "problems", len(problems), "first", problems[0])
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lagWarnEvery bounds how often one cluster's lag problems are logged.
const lagWarnEvery = time.Minute

// pollLagOnce polls once and returns what it could not read (each a short
// text naming the group, topic or partition); a failure of the whole poll
// is one problem and keeps the previous lag.
func (o *Observer) pollLagOnce(ctx context.Context, c *Cluster, adm *kadm.Client, tables map[topicPartition]*OffsetTable) (problems []string) {
	// What to ask: the groups of this cluster's loops and their topics.
	o.mu.Lock()
	type want struct {
		key    string
		groups map[string][]string
	}
	var wants []want
	topicSet := map[string]bool{}
	groupSet := map[string]bool{}
	for key, s := range o.states {
		if s.t.cluster != c.Name || len(s.t.groups) == 0 {
			continue
		}
		wants = append(wants, want{key, s.t.groups})
		for g, ts := range s.t.groups {
			groupSet[g] = true
			for _, t := range ts {
				topicSet[t] = true
			}
		}
	}
	o.mu.Unlock()
	if len(wants) == 0 {
		return nil
	}
	topics := slices.Sorted(maps.Keys(topicSet))
	groups := slices.Sorted(maps.Keys(groupSet))
	pctx, cancel := context.WithTimeout(ctx, max(o.cfg.LagInterval, 5*time.Second))
	defer cancel()
	ends, err := adm.ListEndOffsets(pctx, topics...)
	if err != nil {
		return []string{"end offsets: " + err.Error()}
	}
	now := o.now()
	ends.Each(func(lo kadm.ListedOffset) {
		if lo.Err != nil || lo.Offset < 0 {
			if lo.Err != nil {
				problems = append(problems, fmt.Sprintf("end offset of %s/%d: %v", lo.Topic, lo.Partition, lo.Err))
			}
			return
		}
		tp := topicPartition{lo.Topic, lo.Partition}
		tab := tables[tp]
		if tab == nil {
			tab = &OffsetTable{}
			tables[tp] = tab
		}
		tab.Observe(lo.Offset, now)
	})
	for tp := range tables {
		if !topicSet[tp.topic] {
			delete(tables, tp)
		}
	}
	committed := adm.FetchManyOffsets(pctx, groups...)
	for _, g := range groups {
		if r, ok := committed[g]; ok && r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
			problems = append(problems, fmt.Sprintf("committed offsets of group %s: %v", g, r.Err))
		}
	}
	// Partitions no group has committed to lag by everything retained:
	// their start offsets, asked once per poll, when first needed.
	var starts kadm.ListedOffsets
	startsAsked := false
	startOf := func(t string, p int32) int64 {
		if !startsAsked {
			startsAsked = true
			if starts, err = adm.ListStartOffsets(pctx, topics...); err != nil {
				problems = append(problems, "start offsets: "+err.Error())
			}
		}
		if so, ok := starts.Lookup(t, p); ok && so.Err == nil && so.Offset >= 0 {
			return so.Offset
		}
		return 0
	}

	results := map[string][]store.GroupLag{}
	for _, w := range wants {
		var lags []store.GroupLag
		for _, g := range slices.Sorted(maps.Keys(w.groups)) {
			r, ok := committed[g]
			if ok && r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
				continue // unknown this time (a problem above); a group never seen has committed nothing
			}
			gl := store.GroupLag{Group: g, ObserveTime: now}
			for _, t := range w.groups[g] {
				parts := make([]int32, 0, len(ends[t]))
				for p := range ends[t] {
					parts = append(parts, p)
				}
				sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
				for _, p := range parts {
					end := ends[t][p]
					if end.Err != nil || end.Offset < 0 {
						continue
					}
					pl := store.PartitionLag{Topic: t, Partition: p, CommittedOffset: -1, EndOffset: end.Offset}
					var from int64
					if or, ok := r.Fetched.Lookup(t, p); ok && or.Err == nil && or.At >= 0 {
						pl.CommittedOffset, from = or.At, or.At
					} else {
						from = startOf(t, p)
					}
					pl.OffsetLag = max(end.Offset-from, 0)
					if tab := tables[topicPartition{t, p}]; tab != nil && pl.OffsetLag > 0 {
						pl.TimeLagMs = tab.TimeLag(from, now).Milliseconds()
					}
					gl.OffsetLag += pl.OffsetLag
					gl.TimeLagMs = max(gl.TimeLagMs, pl.TimeLagMs)
					gl.Partitions = append(gl.Partitions, pl)
				}
			}
			lags = append(lags, gl)
		}
		results[w.key] = lags
	}
	o.mu.Lock()
	for key, lags := range results {
		if s := o.states[key]; s != nil {
			for i := range lags {
				lags[i].FreshnessMs = s.t.freshnessMs
			}
			s.lag, s.lagObserved = lags, true
		}
	}
	o.mu.Unlock()
	return problems
}
