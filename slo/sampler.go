package slo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/loopgate/loopgate/provisioning"
)

// capPeriodSeconds is the period a loop's sampling cap is counted over: a
// loop may have cap × capPeriodSeconds records sampled per period, then its
// topic is paused until the next period (pausing and jumping to the end
// once per period rather than once per second keeps the sampler cheap with
// many loops over their cap).
const capPeriodSeconds = 10

// sample reads the action topics of cluster c's loops as the observer
// principal until ctx ends: one direct (group-less) consumer for all of
// them, every topic starting from its end. Each loop is capped (loopCap:
// SampleRate, or its share of TotalSampleRate) records per second: past
// the cap its topic is paused for the rest of the period (capPeriodSeconds)
// and then read again from its end (listed when it resumes), so sampling
// never falls behind.
func (o *Observer) sample(ctx context.Context, c *Cluster) {
	if c.Sampler == nil {
		return
	}
	delay := samplerRetryMin
	for ctx.Err() == nil {
		started := time.Now()
		err := o.sampleOnce(ctx, c)
		if ctx.Err() != nil {
			return
		}
		// Every reader of every loop on the cluster sees this message: it
		// says what and where, the error itself (paths, broker answers)
		// goes to the operator's log only.
		why := fmt.Sprintf("the action topics of cluster %s cannot be read as the observer principal; the loopgate log says why (SLO sampler stopped)", c.Name)
		o.setNotSampled(c.Name, why)
		// Each restart may issue the observer a new credential (audited):
		// back off, 5 s doubling to 5 min, from scratch after a run that
		// lasted.
		if time.Since(started) > samplerRetryMax {
			delay = samplerRetryMin
		}
		o.log.Warn("SLO sampler stopped; restarting", "cluster", c.Name, "in", delay, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, samplerRetryMax)
	}
}

// The sampler's restart backoff.
const (
	samplerRetryMin = 5 * time.Second
	samplerRetryMax = 5 * time.Minute
)

func (o *Observer) sampleOnce(ctx context.Context, c *Cluster) error {
	conn, err := c.Sampler(ctx)
	if err != nil {
		return err
	}
	cl, err := provisioning.Connect(conn,
		kgo.ClientID("loopgate-observer"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		// One fetch a second per broker, however many topics: the cost of
		// a fetch request grows with the partitions it names.
		kgo.FetchMaxWait(time.Second),
		kgo.FetchMinBytes(4<<20),
		kgo.FetchMaxPartitionBytes(256<<10),
		kgo.MetadataMaxAge(30*time.Second),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	o.setNotSampled(c.Name, "")

	consuming := map[string]bool{}
	sync := func() {
		want := map[string]bool{}
		var add []string
		for _, t := range o.actionTopics(c.Name) {
			want[t] = true
			if !consuming[t] {
				add = append(add, t)
				consuming[t] = true
			}
		}
		var drop []string
		for t := range consuming {
			if !want[t] {
				drop = append(drop, t)
				delete(consuming, t)
			}
		}
		if len(drop) > 0 {
			cl.PurgeTopicsFromConsuming(drop...)
		}
		if len(add) > 0 {
			cl.AddConsumeTopics(add...)
		}
	}
	sync()
	var paused []string
	hwm := map[string]map[int32]int64{} // last high watermark seen per partition
	rate := o.loopCap()
	for ctx.Err() == nil {
		select {
		case <-o.topicsChanged[c.Name]:
			sync()
			rate = o.loopCap()
			for t := range hwm {
				if !consuming[t] {
					delete(hwm, t)
				}
			}
		default:
		}
		now := o.now()
		sec := now.Unix() / capPeriodSeconds
		// Resume the loops paused in an earlier second, from the end.
		if len(paused) > 0 {
			var again []string
			o.mu.Lock()
			for _, t := range paused {
				if s := o.byTopic[t]; s != nil && s.second < sec {
					s.paused = false
					again = append(again, t)
				}
			}
			o.mu.Unlock()
			if len(again) > 0 {
				// Jump to the end as it is now (a paused topic's last seen
				// high watermark is a period old): one ListOffsets for
				// all the topics resumed together.
				lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
				ends, err := adm.ListEndOffsets(lctx, again...)
				lcancel()
				if err == nil {
					ends.Each(func(lo kadm.ListedOffset) {
						if lo.Err == nil && lo.Offset >= 0 {
							if hwm[lo.Topic] == nil {
								hwm[lo.Topic] = map[int32]int64{}
							}
							hwm[lo.Topic][lo.Partition] = lo.Offset
						}
					})
				}
				jump := map[string]map[int32]kgo.EpochOffset{}
				for _, t := range again {
					for p, h := range hwm[t] {
						if jump[t] == nil {
							jump[t] = map[int32]kgo.EpochOffset{}
						}
						jump[t][p] = kgo.EpochOffset{Epoch: -1, Offset: h}
					}
				}
				cl.SetOffsets(jump)
				cl.ResumeFetchTopics(again...)
				paused = deleteAll(paused, again)
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		fetches := cl.PollRecords(pctx, 10_000)
		cancel()
		if fetches.IsClientClosed() {
			return errors.New("client closed")
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			o.log.Debug("SLO sampler fetch error", "cluster", c.Name, "err", ferr)
			if isFatal(ferr) {
				return ferr
			}
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.HighWatermark < 0 {
				return
			}
			m := hwm[p.Topic]
			if m == nil {
				m = map[int32]int64{}
				hwm[p.Topic] = m
			}
			m[p.Partition] = p.HighWatermark
		})
		now = o.now()
		sec = now.Unix() / capPeriodSeconds
		var pause []string
		o.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			s := o.byTopic[r.Topic]
			if s == nil || s.paused {
				return
			}
			if s.second != sec {
				s.second, s.taken = sec, 0
			}
			s.taken++
			if s.taken >= rate*capPeriodSeconds {
				// The cap is reached: take this record, fetch no more
				// of the topic until the next period.
				s.paused = true
				pause = append(pause, r.Topic)
			}
			origin, ok := originOf(r)
			if !ok {
				s.win.AddWithoutHeader(now)
				s.withoutHeaderTotal++
				return
			}
			ms := float64(r.Timestamp.UnixMilli() - origin)
			s.win.Add(now, ms, ms > float64(s.t.targetMs))
		})
		o.mu.Unlock()
		if len(pause) > 0 {
			cl.PauseFetchTopics(pause...)
			paused = append(paused, pause...)
		}
	}
	return nil
}

// originOf parses the origin header of an action record.
func originOf(r *kgo.Record) (int64, bool) {
	for _, h := range r.Headers {
		if h.Key == HeaderKey {
			v, err := strconv.ParseInt(string(h.Value), 10, 64)
			return v, err == nil && v > 0
		}
	}
	return 0, false
}

func deleteAll(from, del []string) []string {
	out := from[:0]
	for _, t := range from {
		found := false
		for _, d := range del {
			if d == t {
				found = true
				break
			}
		}
		if !found {
			out = append(out, t)
		}
	}
	return out
}

// isFatal reports whether a fetch error means the observer cannot
// authenticate, rather than a transient condition or one topic's problem.
func isFatal(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism)
}
