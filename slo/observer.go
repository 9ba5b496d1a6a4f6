// Package slo measures whether each loop meets its SLO: producer-to-action
// latency, sampled from the loop's action topic with loopgate's read-only
// observer principal (sampler.go), and consumer lag of the loop's groups,
// polled with loopgate's admin connection (lagpoll.go). Latencies go into
// DDSketches over 1 minute, 1 hour and 28 days (window.go); the loop's
// SLOMet and Fresh conditions follow (status.go). The process that runs the
// reconciler runs the Observer and persists its observations in the store
// (store.Observations), so that every replica shows them and the 28-day
// window survives restarts; the Collector exports them to Prometheus.
// See docs/slo.md.
package slo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/store"
)

// Defaults of Config.
const (
	DefaultSampleRate       = 200
	DefaultTotalSampleRate  = 10_000
	DefaultLagInterval      = 5 * time.Second
	DefaultFlushInterval    = 10 * time.Second
	DefaultReloadInterval   = 30 * time.Second
	DefaultMaxExportedLoops = 2000
)

// Config tunes the observer; zero fields take the defaults.
type Config struct {
	// SampleRate caps the action records sampled per loop per second.
	SampleRate int
	// TotalSampleRate caps the action records sampled per second by this
	// process, over all loops: each loop's cap is the smaller of
	// SampleRate and an equal share of it (at least 1), so that the cost
	// of sampling stays bounded however many loops there are.
	TotalSampleRate int
	// LagInterval is how often consumer lag is polled (per cluster: one
	// ListOffsets and one OffsetFetch for all its loops).
	LagInterval time.Duration
	// FlushInterval is how often SLO status is evaluated and written to
	// the store (one transaction).
	FlushInterval time.Duration
	// ReloadInterval is how often the loop list is read again (changes are
	// also followed through Changed).
	ReloadInterval time.Duration
	// ShortWindow is the length of the "1m" window (tests shorten it); the
	// "1h" window is 60 of them.
	ShortWindow time.Duration
	// MaxExportedLoops caps the loops the Collector exports.
	MaxExportedLoops int
}

func (c Config) withDefaults() Config {
	if c.SampleRate <= 0 {
		c.SampleRate = DefaultSampleRate
	}
	if c.TotalSampleRate <= 0 {
		c.TotalSampleRate = DefaultTotalSampleRate
	}
	if c.LagInterval <= 0 {
		c.LagInterval = DefaultLagInterval
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.ReloadInterval <= 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	if c.ShortWindow <= 0 {
		c.ShortWindow = time.Minute
	}
	if c.MaxExportedLoops <= 0 {
		c.MaxExportedLoops = DefaultMaxExportedLoops
	}
	return c
}

// Cluster is how the observer reaches one cluster.
type Cluster struct {
	Name string
	// Admin is loopgate's admin client of the cluster (consumer lag).
	Admin *kgo.Client
	// Sampler connects as the observer principal; nil when no observer
	// is available on the cluster (NotSampled says why).
	Sampler func(ctx context.Context) (provisioning.ClusterConn, error)
	// NotSampled says why action topics of this cluster are not sampled
	// when Sampler is nil.
	NotSampled string
}

// Loops is where the observer reads loops from (a store.Reader).
type Loops interface {
	GetLoop(ctx context.Context, team, name string) (*loop.Loop, error)
	ListLoops(ctx context.Context, opts store.ListOptions) ([]*loop.Loop, string, error)
}

// target is what is observed of one loop.
type target struct {
	key, team, name, uid string
	generation           int64
	cluster              string
	actionTopic          string // "" = no action stream
	targetMs             int64
	freshnessMs          int64
	groups               map[string][]string // group → topics it consumes
}

func targetOf(l *loop.Loop) (target, bool) {
	if l.Status.Cluster == "" || !l.Metadata.DeleteTime.IsZero() {
		return target{}, false
	}
	t := target{key: l.Metadata.Key(), team: l.Metadata.Team, name: l.Metadata.Name, uid: l.Metadata.UID,
		generation: l.Metadata.Generation, cluster: l.Status.Cluster,
		targetMs: l.Spec.SLO.LatencyP99Ms, freshnessMs: l.Spec.SLO.FreshnessMs, groups: map[string][]string{}}
	if a := l.Spec.Action; a != nil && a.Stream != "" {
		t.actionTopic = provisioning.TopicName(t.team, t.name, a.Stream)
	}
	streams := map[string]bool{}
	for _, s := range l.Spec.Streams {
		streams[s.Name] = true
	}
	for _, c := range l.Spec.Consumers {
		g := c.Group
		if g == "" {
			g = loop.DefaultGroup(t.team, t.name, c.Principal)
		}
		for _, s := range c.Streams {
			if streams[s] {
				t.groups[g] = append(t.groups[g], provisioning.TopicName(t.team, t.name, s))
			}
		}
	}
	for g, ts := range t.groups {
		slices.Sort(ts)
		t.groups[g] = slices.Compact(ts)
	}
	return t, true
}

// loopState is the observer's in-memory state of one loop.
type loopState struct {
	t   target
	win *Windows
	// Sampling cap: records taken in the current second, and whether the
	// topic is paused until the next one.
	second int64
	taken  int
	paused bool

	lag         []store.GroupLag
	lagObserved bool
	// withoutHeaderTotal counts sampled records without the header since
	// this process started (the Prometheus counter).
	withoutHeaderTotal int64

	// Last evaluation, what the Collector exports and the flush writes.
	obs     store.Observation
	written []byte // the last observation written, to skip unchanged ones
}

// Observer samples action topics and polls consumer lag for every loop of
// its clusters. Start it with Run in the process that runs the reconciler.
type Observer struct {
	cfg      Config
	loops    Loops
	st       store.Observations // nil: nothing persisted
	clusters map[string]*Cluster
	log      *slog.Logger
	now      func() time.Time

	mu         sync.Mutex
	states     map[string]*loopState // by loop key
	byTopic    map[string]*loopState // action topic → loop
	notSampled map[string]string     // cluster → why its topics are not sampled (run time)
	changed    chan string
	// pending are loops changed but not provisioned yet (no cluster): read
	// again soon (1 s, backing off to 30 s) for a while, so sampling starts
	// as soon as the reconciler provisioned them rather than at the next
	// reload.
	pending       map[string]*pendingLoop
	topicsChanged map[string]chan struct{} // per cluster sampler
	// running is true while Run runs: only then does Snapshot export
	// anything (a process that lost the lead must not export stale SLOs).
	running bool
}

// New returns an observer of the loops of loops on clusters, persisting
// into st when not nil.
func New(cfg Config, loops Loops, st store.Observations, clusters []Cluster, log *slog.Logger) *Observer {
	if log == nil {
		log = slog.Default()
	}
	o := &Observer{cfg: cfg.withDefaults(), loops: loops, st: st, clusters: map[string]*Cluster{}, log: log, now: time.Now,
		states: map[string]*loopState{}, byTopic: map[string]*loopState{}, notSampled: map[string]string{},
		changed: make(chan string, 1024), topicsChanged: map[string]chan struct{}{}, pending: map[string]*pendingLoop{}}
	for i := range clusters {
		c := clusters[i]
		o.clusters[c.Name] = &c
		o.topicsChanged[c.Name] = make(chan struct{}, 1)
	}
	return o
}

// Changed tells the observer that the loop key ("team/name") changed.
// It never blocks; a full queue waits for the next reload.
func (o *Observer) Changed(key string) {
	select {
	case o.changed <- key:
	default:
	}
}

// Run observes until ctx ends: it restores the persisted days and
// conditions, loads the loops, starts a sampler and a lag poller per
// cluster, and evaluates and flushes every FlushInterval (a last time when
// ctx ends).
func (o *Observer) Run(ctx context.Context) error {
	o.mu.Lock()
	o.running = true
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.running = false
		o.mu.Unlock()
	}()
	o.restore(ctx)
	if err := o.reload(ctx); err != nil && ctx.Err() == nil {
		o.log.Warn("loading loops for SLO observation failed; retrying at the next reload", "err", err)
	}
	var wg sync.WaitGroup
	for _, c := range o.clusters {
		wg.Go(func() { o.sample(ctx, c) })
		wg.Go(func() { o.pollLag(ctx, c) })
	}
	flush := time.NewTicker(o.cfg.FlushInterval)
	reload := time.NewTicker(o.cfg.ReloadInterval)
	pending := time.NewTicker(time.Second)
	defer flush.Stop()
	defer reload.Stop()
	defer pending.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			o.flush(fctx, true)
			cancel()
			return nil
		case <-flush.C:
			o.Flush(ctx)
		case <-reload.C:
			if err := o.reload(ctx); err != nil && ctx.Err() == nil {
				o.log.Warn("reloading loops for SLO observation failed; retrying", "err", err)
			}
		case key := <-o.changed:
			o.refresh(ctx, key)
		case <-pending.C:
			for _, key := range o.pendingKeys() {
				o.refresh(ctx, key)
			}
		}
	}
}

// restore reads the persisted daily sketches and conditions.
func (o *Observer) restore(ctx context.Context) {
	if o.st == nil {
		return
	}
	now := o.now()
	days, err := o.st.ListDailySketches(ctx, dayOf(now).AddDate(0, 0, -(Days-1)))
	if err != nil {
		o.log.Warn("reading persisted latency sketches failed; the 28-day window starts empty", "err", err)
	}
	obs, err := o.st.ListObservations(ctx, store.KeyRange{})
	if err != nil {
		o.log.Warn("reading persisted observations failed", "err", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, d := range days {
		s := o.stateLocked(d.Team + "/" + d.Name)
		if err := s.win.RestoreDay(DaySketch{Day: d.Day, Sketch: d.Sketch, Records: d.Records, WithoutHeader: d.RecordsWithoutHeader, Over: d.RecordsOverTarget}); err != nil {
			o.log.Warn("a persisted latency sketch does not decode; skipped", "loop", d.Team+"/"+d.Name, "day", d.Day.Format("2006-01-02"), "err", err)
		}
	}
	for _, ob := range obs {
		s := o.stateLocked(ob.Team + "/" + ob.Name)
		s.obs = *ob
		s.t.uid = ob.UID
	}
}

func (o *Observer) stateLocked(key string) *loopState {
	s := o.states[key]
	if s == nil {
		s = &loopState{win: NewWindows(o.cfg.ShortWindow)}
		s.t.key = key
		o.states[key] = s
	}
	return s
}

// reload reads every loop and replaces the observed set.
func (o *Observer) reload(ctx context.Context) error {
	var all []target
	token := ""
	for {
		page, next, err := o.loops.ListLoops(ctx, store.ListOptions{PageSize: 1000, PageToken: token})
		if err != nil {
			return err
		}
		for _, l := range page {
			if t, ok := targetOf(l); ok {
				all = append(all, t)
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	keep := map[string]bool{}
	for _, t := range all {
		keep[t.key] = true
		o.setLocked(t)
	}
	for key, s := range o.states {
		if !keep[key] {
			o.dropLocked(s)
		}
	}
	o.signalAllLocked()
	return nil
}

// refresh reads one loop again.
func (o *Observer) refresh(ctx context.Context, key string) {
	team, name, _ := strings.Cut(key, "/")
	l, err := o.loops.GetLoop(ctx, team, name)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			delete(o.pending, key)
			if s := o.states[key]; s != nil {
				o.dropLocked(s)
				o.signalAllLocked()
			}
		}
		return
	}
	if t, ok := targetOf(l); ok {
		o.setLocked(t)
		delete(o.pending, key)
	} else {
		if s := o.states[key]; s != nil {
			o.dropLocked(s)
		}
		if !l.Metadata.DeleteTime.IsZero() {
			delete(o.pending, key)
		} else if _, ok := o.pending[key]; !ok {
			now := o.now()
			o.pending[key] = &pendingLoop{since: now, next: now.Add(pendingFirst), every: pendingFirst}
		}
	}
	o.signalAllLocked()
}

// pendingLoop is a changed loop that is not provisioned yet: it is read
// again after 1 s, then at doubling intervals up to pendingMaxEvery, for
// pendingWatch; afterwards the periodic reload finds it. A batch of loops
// waiting for approval costs a few reads a minute each, not one a second.
type pendingLoop struct {
	since, next time.Time
	every       time.Duration
}

const (
	pendingWatch    = 10 * time.Minute
	pendingFirst    = time.Second
	pendingMaxEvery = 30 * time.Second
)

// pendingKeys returns the pending loops due to be read again now, and
// schedules their next read.
func (o *Observer) pendingKeys() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	now := o.now()
	for k, p := range o.pending {
		switch {
		case now.Sub(p.since) > pendingWatch:
			delete(o.pending, k)
		case !now.Before(p.next):
			out = append(out, k)
			p.every = min(2*p.every, pendingMaxEvery)
			p.next = now.Add(p.every)
		}
	}
	return out
}

func (o *Observer) setLocked(t target) {
	s := o.stateLocked(t.key)
	if s.t.uid != "" && s.t.uid != t.uid {
		// A new loop of the same name: start clean.
		o.dropLocked(s)
		s = o.stateLocked(t.key)
	}
	if s.t.actionTopic != "" && o.byTopic[s.t.actionTopic] == s && s.t.actionTopic != t.actionTopic {
		delete(o.byTopic, s.t.actionTopic)
	}
	s.t = t
	if t.actionTopic != "" {
		o.byTopic[t.actionTopic] = s
	}
}

func (o *Observer) dropLocked(s *loopState) {
	if s.t.actionTopic != "" && o.byTopic[s.t.actionTopic] == s {
		delete(o.byTopic, s.t.actionTopic)
	}
	delete(o.states, s.t.key)
}

func (o *Observer) signalAllLocked() {
	for _, ch := range o.topicsChanged {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// loopCap is the records each loop may have sampled per second now.
func (o *Observer) loopCap() int {
	o.mu.Lock()
	n := len(o.byTopic)
	o.mu.Unlock()
	return max(1, min(o.cfg.SampleRate, o.cfg.TotalSampleRate/max(n, 1)))
}

// actionTopics lists the action topics of the loops on cluster.
func (o *Observer) actionTopics(cluster string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for topic, s := range o.byTopic {
		if s.t.cluster == cluster {
			out = append(out, topic)
		}
	}
	sort.Strings(out)
	return out
}

func (o *Observer) setNotSampled(cluster, why string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if why == "" {
		delete(o.notSampled, cluster)
	} else {
		o.notSampled[cluster] = why
	}
}

// Flush evaluates every loop and writes the observations that changed, and
// the days whose sketches changed, in one store transaction.
func (o *Observer) Flush(ctx context.Context) { o.flush(ctx, false) }

// flush is Flush; final also persists the current (incomplete) short
// slots, when sampling stops.
func (o *Observer) flush(ctx context.Context, final bool) {
	now := o.now()
	rollAt := now
	if final {
		rollAt = now.Add(o.cfg.ShortWindow)
	}
	var obs []store.Observation
	var days []store.DailySketch
	o.mu.Lock()
	for _, s := range o.states {
		if s.t.cluster == "" {
			continue // restored, not (yet) a live loop
		}
		o.evaluateLocked(s, now)
		b := fingerprint(s.obs)
		changed := string(b) != string(s.written)
		if changed || now.Sub(s.obs.UpdateTime) > time.Minute {
			s.obs.UpdateTime = now // when it was last written: the age check's clock
			obs = append(obs, s.obs)
			s.written = b
		}
		s.win.Roll(rollAt)
		for _, d := range s.win.DirtyDays() {
			days = append(days, store.DailySketch{Team: s.t.team, Name: s.t.name, Day: d.Day, Sketch: d.Sketch,
				Records: d.Records, RecordsWithoutHeader: d.WithoutHeader, RecordsOverTarget: d.Over})
		}
	}
	o.mu.Unlock()
	if o.st == nil || (len(obs) == 0 && len(days) == 0) {
		return
	}
	if err := o.st.PutObservations(ctx, obs, days, dayOf(now).AddDate(0, 0, -Days)); err != nil && ctx.Err() == nil {
		o.log.Warn("writing loop observations failed; retrying at the next flush", "loops", len(obs), "err", err)
		o.mu.Lock()
		for _, ob := range obs {
			if s := o.states[ob.Team+"/"+ob.Name]; s != nil {
				s.written = nil
			}
		}
		o.mu.Unlock()
	}
}

// evaluateLocked recomputes s.obs at now.
func (o *Observer) evaluateLocked(s *loopState, now time.Time) {
	why := ""
	switch {
	case s.t.actionTopic == "":
		why = "the loop has no action stream"
	case o.clusters[s.t.cluster] == nil:
		why = fmt.Sprintf("cluster %s is not observed", s.t.cluster)
	case o.clusters[s.t.cluster].Sampler == nil:
		why = o.clusters[s.t.cluster].NotSampled
	default:
		why = o.notSampled[s.t.cluster]
	}
	slo := Evaluate(s.win, s.t.targetMs, why, now)
	prev := s.obs.Conditions
	st := loop.Status{Conditions: slices.Clone(prev)}
	st.SetCondition(SLOCondition(slo, s.t.generation), now)
	st.SetCondition(FreshCondition(s.lag, s.lagObserved, len(s.t.groups) > 0, s.t.freshnessMs, s.t.generation), now)
	s.obs = store.Observation{Team: s.t.team, Name: s.t.name, UID: s.t.uid, UpdateTime: s.obs.UpdateTime,
		SLO: &slo, Lag: s.lag, Conditions: st.Conditions}
	s.obs.SLO.ObserveTime = time.Time{} // keep writes to changes; UpdateTime says when
}

// Snapshot returns the last evaluated observation of every loop, sorted by
// key (what the Collector exports); nothing while Run is not running (this
// process does not lead, or no longer does).
func (o *Observer) Snapshot() []store.Observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.running {
		return nil
	}
	out := make([]store.Observation, 0, len(o.states))
	for _, s := range o.states {
		if s.t.cluster != "" && s.obs.SLO != nil {
			out = append(out, s.obs)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Team+"/"+out[i].Name < out[j].Team+"/"+out[j].Name })
	return out
}

// fingerprint is what an observation says, without when it was said: the
// lag poll and the sampler stamp every observation, so comparing those
// stamps would rewrite every loop at every flush. An unchanged loop is
// still written once a minute (the flush's age check), keeping
// UpdateTime fresh.
func fingerprint(o store.Observation) []byte {
	o.UpdateTime = time.Time{}
	if o.SLO != nil {
		slo := *o.SLO
		slo.ObserveTime = time.Time{}
		o.SLO = &slo
	}
	if len(o.Lag) > 0 {
		lag := make([]store.GroupLag, len(o.Lag))
		for i, g := range o.Lag {
			g.ObserveTime = time.Time{}
			lag[i] = g
		}
		o.Lag = lag
	}
	b, _ := json.Marshal(o)
	return b
}
