package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/census"
)

// TestCrashDuringApplyAndDelete: 120 loops (the checkout-nudge example with
// their own names, principals and groups, on three teams and both embedded
// clusters; loops of a team share acting principals and some consumer
// groups) are applied with `loopctl apply -f`, ten per file, and about 40%
// of them deleted with `loopctl delete` as soon as their file is applied,
// while `loopgate serve` is killed with SIGKILL at eight random points
// spread over that work (during applies and deletions, or after the
// commands returned while the reconciler still works) and restarted on the
// same data dir each time. Once it has converged, an independent admin
// client takes a census of every cluster: the topics, ACLs, quotas and
// SCRAM users are exactly what the stored loops need (no orphan, nothing
// missing); the audit chain verifies; and every loop create and delete is
// recorded exactly once, whatever the kills.
//
// The kill points come from a seed printed at the start; rerun a failure
// with LOOPGATE_CRASH_SEED=<seed>.
func TestCrashDuringApplyAndDelete(t *testing.T) {
	began := time.Now()
	seed := time.Now().UnixNano()
	if s := os.Getenv("LOOPGATE_CRASH_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("LOOPGATE_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with LOOPGATE_CRASH_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6c6f6f70))

	const (
		numLoops = 120
		numKills = 8
	)
	loops := crashLoops(numLoops)
	example, err := os.ReadFile(examplePath(t, "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, l := range loops {
		docs = append(docs, l.yaml(t, string(example)))
	}

	// The loops to delete: ~40% at random, plus the whole first group of
	// growth loops sharing a principal (on both clusters), so that a
	// shared quota must disappear entirely while others only shrink.
	deleted := map[string]bool{}
	var toDelete []string
	for _, l := range loops {
		if rng.Float64() < 0.4 || l.team == "growth" && l.seq < 4 {
			deleted[l.key()] = true
			toDelete = append(toDelete, l.key())
		}
	}

	home := t.TempDir()
	data := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, home, data)
	firstBootstrap := bootstrapOf(srv)

	// The file is applied in chunks of ten loops, one chunk after the
	// other (loopctl sends 16 loops at once); as soon as a chunk is
	// applied, its loops to delete are deleted, four loopctl processes at a
	// time, while the reconciler may still be provisioning them and the
	// next chunks are applied. A round runs these operations until the
	// server is killed a random moment (0-150ms) after the round's n-th
	// operation starts, n drawn so that the kills spread over the whole
	// work (or, when the round runs out of operations first, after all of
	// them returned, while the reconciler still works). After a kill the
	// server restarts on the same data dir and the next round carries on:
	// the chunk in flight is applied again (its loops created before the
	// kill are then unchanged updates), unaccepted deletions are sent again.
	d := &crashDriver{home: home, accepted: map[string]int{}}
	docChunks := splitChunks(docs, 10)
	for i, c := range splitChunks(loops, 10) {
		var keys []string
		for _, l := range c {
			if deleted[l.key()] {
				keys = append(keys, l.key())
			}
		}
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		d.chunkFiles = append(d.chunkFiles, writeSpec(t, t.TempDir(), fmt.Sprintf("chunk-%02d.yaml", i), strings.Join(docChunks[i], "---\n")))
		d.chunkDeletes = append(d.chunkDeletes, keys)
	}
	d.chunkDone = make([]bool, len(d.chunkFiles))
	var kills []crashKill
	for round := 0; d.remaining() > 0 || len(kills) < numKills; round++ {
		if round > numKills+5 {
			t.Fatalf("after %d rounds %d operations still fail\nserver:\n%s", round, d.remaining(), srv.output())
		}
		if len(kills) == numKills {
			if k := d.round(0, 0, nil); len(k.failures) > 0 {
				t.Logf("round %d without a kill: %d operations failed:\n  %s", round, len(k.failures), strings.Join(k.failures, "\n  "))
			}
			continue
		}
		// On average the kills cut what is left into equal parts.
		left := numKills - len(kills)
		at := 1 + rng.IntN(max(1, (2*d.remaining()+left)/(left+1)))
		delay := time.Duration(rng.Int64N(int64(150 * time.Millisecond)))
		k := d.round(at, delay, func() { srv.kill() })
		k.round = round
		srv = startServer(t, home, data)
		if got := bootstrapOf(srv); got != firstBootstrap {
			t.Errorf("after kill %d the clusters' bootstrap addresses changed from %s to %s", len(kills)+1, firstBootstrap, got)
		}
		restartAfterKill(t, home, &k)
		kills = append(kills, k)
		k.log(t, len(kills))
	}
	// The loops kept are exactly as applied: a re-apply changes nothing.
	var kept []string
	for i, l := range loops {
		if !deleted[l.key()] {
			kept = append(kept, docs[i])
		}
	}
	keptFile := writeSpec(t, t.TempDir(), "kept.yaml", strings.Join(kept, "---\n"))
	if r := runLoopctl(home, "apply", "-f", keptFile); r.Code != 0 || strings.Count(r.Stdout, "unchanged") != len(kept) {
		t.Errorf("re-apply of the %d loops kept: want every one unchanged: %s", len(kept), r)
	}
	deletedIn := d.accepted
	t.Logf("applied %d loops and deleted %d with %d kills (%v since start)", numLoops, len(toDelete), len(kills), time.Since(began).Round(time.Millisecond))

	// Converge: every remaining loop READY at its generation, every deleted
	// loop gone.
	convergeStart := time.Now()
	var final []*lgv1.Loop
	for {
		var err error
		final, err = listLoops(home)
		if err != nil {
			t.Fatalf("listing loops: %v", err)
		}
		var waiting []string
		present := map[string]bool{}
		for _, l := range final {
			key := loopKey(l.GetName())
			present[key] = true
			st := l.GetStatus()
			if deleted[key] || st.GetState() != lgv1.Loop_READY || st.GetObservedGeneration() != l.GetGeneration() {
				waiting = append(waiting, fmt.Sprintf("%s %s (deleted: %v) %s", key, st.GetState(), deleted[key], conditionText(st)))
			}
		}
		for _, l := range loops {
			if !deleted[l.key()] && !present[l.key()] {
				waiting = append(waiting, l.key()+" is missing (never deleted)")
			}
		}
		if len(waiting) == 0 {
			break
		}
		if time.Since(convergeStart) > 45*time.Second {
			t.Errorf("not converged %v after the last restart; %d loops wait:\n  %s", time.Since(convergeStart).Round(time.Second), len(waiting), strings.Join(waiting, "\n  "))
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("converged %v after the last round; %d loops remain, %d deleted; %d kills", time.Since(convergeStart).Round(time.Millisecond), len(final), len(toDelete), len(kills))

	// Census of every cluster against what the stored loops need.
	byName := map[string]cluster{}
	for _, c := range srv.Clusters {
		byName[c.Name] = c
	}
	genByKey := map[string]crashLoop{}
	for _, l := range loops {
		genByKey[l.key()] = l
	}
	events := auditEvents(t, home)
	early := deletedBeforeProvisioned(events)
	var report []string
	for _, name := range sortedKeys(byName) {
		c := byName[name]
		// The embedded default samples action topics as loopgate-observer.
		want := census.Want(final, name, c.User).WithObserver(final, name, config.DefaultObserver)
		_, kcl := kafkaAdmin(t, c)
		got := census.Take(t, kcl, c.Name)
		problems := want.Diff(got)
		if len(problems) == 0 {
			t.Logf("census of %s: %s, exactly as the stored loops need", name, got)
			continue
		}
		for _, p := range problems {
			report = append(report, fmt.Sprintf("%s: %s%s", name, p, attribute(p, genByKey, deletedIn, deleted, early)))
		}
	}
	if len(report) > 0 {
		var kl []string
		for i, k := range kills {
			kl = append(kl, fmt.Sprintf("kill %d: %s", i+1, k))
		}
		t.Errorf("census (seed %d): %d differences between the clusters and the stored loops:\n  %s\nkill points:\n  %s",
			seed, len(report), strings.Join(report, "\n  "), strings.Join(kl, "\n  "))
		for _, key := range affectedLoops(report, 3) {
			r := runLoopctl(home, "audit", "--loop", key, "--limit", "0")
			t.Logf("audit trail of %s:\n%s%s", key, r.Stdout, r.Stderr)
		}
	}

	// The audit chain verifies, and no create or delete is recorded twice.
	if r := runLoopctl(home, "audit", "verify"); r.Code != 0 {
		t.Errorf("audit verify after %d kills: %s", len(kills), r)
	}
	checkAuditOnce(t, events, loops, deleted)
	t.Logf("wall time %v", time.Since(began).Round(time.Millisecond))
}

// bootstrapOf lists the clusters' bootstrap addresses from the banner.
func bootstrapOf(s *server) string {
	var out []string
	for _, c := range s.Clusters {
		out = append(out, c.Name+"="+strings.Join(c.Bootstrap, ","))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// splitChunks cuts s into chunks of n.
func splitChunks[T any](s []T, n int) [][]T {
	var out [][]T
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// crashDriver applies the chunks of the file in order and deletes the
// loops to delete of each applied chunk, round after round.
type crashDriver struct {
	home         string
	chunkFiles   []string
	chunkDeletes [][]string // per chunk, the loops to delete
	chunkDone    []bool
	pending      []string       // deletions to send (their chunk is applied)
	accepted     map[string]int // loop -> kills before its deletion was accepted
	kills        int
}

// remaining counts the operations left: chunks to apply and deletions.
func (d *crashDriver) remaining() int {
	n := 0
	for c, done := range d.chunkDone {
		if !done {
			n += 1 + len(d.chunkDeletes[c])
		}
	}
	return n + len(d.pending)
}

// round runs the remaining operations: the chunks in order, and four
// deleters. With at > 0, kill is called delay after the at-th operation of
// the round starts (or after every operation returned, if fewer start),
// and no operation starts after that.
func (d *crashDriver) round(at int, delay time.Duration, kill func()) crashKill {
	var (
		mu       sync.Mutex
		k        = crashKill{at: at, after: delay}
		stopped  bool
		inflight = map[string]bool{}
		failed   []string
		wg       sync.WaitGroup
		once     sync.Once
	)
	trigger := make(chan struct{})
	begin := func(op string) bool {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return false
		}
		k.started++
		inflight[op] = true
		if k.started == at {
			once.Do(func() { close(trigger) })
		}
		return true
	}
	end := func(op string) {
		mu.Lock()
		delete(inflight, op)
		mu.Unlock()
	}
	queue := make(chan string, 1024)
	for _, key := range d.pending {
		queue <- key
	}
	d.pending = nil
	wg.Add(1)
	go func() { // the applier
		defer wg.Done()
		defer close(queue)
		for c, file := range d.chunkFiles {
			if d.chunkDone[c] {
				continue
			}
			op := fmt.Sprintf("apply chunk %d", c)
			if !begin(op) {
				return
			}
			r := runLoopctl(d.home, "apply", "-f", file)
			end(op)
			if r.Code != 0 {
				mu.Lock()
				k.failures = append(k.failures, op+": "+firstLine(r.Stderr))
				mu.Unlock()
				return
			}
			mu.Lock()
			d.chunkDone[c] = true
			mu.Unlock()
			for _, key := range d.chunkDeletes[c] {
				queue <- key
			}
		}
	}()
	for range 4 { // the deleters
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range queue {
				op := "delete " + key
				if !begin(op) {
					mu.Lock()
					failed = append(failed, key)
					mu.Unlock()
					continue
				}
				r := runLoopctl(d.home, "delete", key)
				end(op)
				mu.Lock()
				// Not found: deleted and gone, after an earlier kill.
				if r.Code == 0 || strings.Contains(r.Stderr, "not found") {
					if _, ok := d.accepted[key]; !ok {
						d.accepted[key] = d.kills
					}
				} else {
					failed = append(failed, key)
					k.failures = append(k.failures, op+": "+firstLine(r.Stderr))
				}
				mu.Unlock()
			}
		}()
	}
	killed := make(chan struct{})
	allDone := make(chan struct{})
	if kill != nil {
		go func() {
			defer close(killed)
			<-trigger
			time.Sleep(delay)
			mu.Lock()
			stopped = true
			for op := range inflight {
				k.inflight = append(k.inflight, op)
			}
			sort.Strings(k.inflight)
			select {
			case <-allDone:
				k.cmdDone = true
			default:
			}
			mu.Unlock()
			kill()
		}()
	}
	wg.Wait()
	close(allDone)
	if kill != nil {
		once.Do(func() { close(trigger) })
		<-killed
		d.kills++
	}
	// Chunks that were not applied keep their deletions for later.
	sort.Strings(failed)
	for _, key := range failed {
		if !slices.Contains(d.pending, key) {
			d.pending = append(d.pending, key)
		}
	}
	return k
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// crashKill is one SIGKILL of the server.
type crashKill struct {
	round                   int
	at                      int           // the kill point: the at-th operation of the round
	after                   time.Duration // the delay after it started
	started                 int           // operations the round started
	inflight                []string      // operations in flight at the kill
	cmdDone                 bool          // every operation of the round had returned
	failures                []string      // operations that failed, and why
	stored, ready, deleting int           // loops after the restart
}

func (k crashKill) String() string {
	what := "in flight: " + strings.Join(k.inflight, ", ")
	if k.cmdDone || len(k.inflight) == 0 {
		what = "every operation had returned"
	}
	return fmt.Sprintf("round %d, %v after operation %d of %d started (%s); after the restart %d loops stored, %d READY, %d DELETING",
		k.round, k.after.Round(time.Millisecond), k.at, k.started, what, k.stored, k.ready, k.deleting)
}

func (k crashKill) log(t *testing.T, n int) {
	t.Logf("kill %d: %s", n, k)
}

// restartAfterKill counts the loops the restarted server has.
func restartAfterKill(t *testing.T, home string, k *crashKill) {
	t.Helper()
	ls, err := listLoops(home)
	if err != nil {
		t.Fatalf("listing loops after a restart: %v", err)
	}
	k.stored = len(ls)
	for _, l := range ls {
		switch l.GetStatus().GetState() {
		case lgv1.Loop_READY:
			k.ready++
		case lgv1.Loop_DELETING:
			k.deleting++
		}
	}
}

// crashLoop is one generated loop: the checkout-nudge example with its own
// name, team, region, principals and a small partition count.
type crashLoop struct {
	team, name, region string
	seq                int    // index within the team
	producer, actor    string // principal names, without User:
	group              string // "" = the default group
	partitions         int32  // of the events stream (actions is derived: 1)
	kib                int    // bytesPerSecond in KiB; peakFactor stays 3
}

func (l crashLoop) key() string { return l.team + "/" + l.name }

// crashLoops spreads n loops over growth (eu and us), risk (eu) and search
// (us) within the embedded teams' partition budgets. Loops of a team share
// their acting principal in groups of four (so quotas are sums), and every
// other group also shares its consumer group (so group ACLs are shared).
func crashLoops(n int) []crashLoop {
	seq := map[string]int{}
	var out []crashLoop
	for i := range n {
		team := []string{"growth", "growth", "growth", "risk", "search"}[i%5]
		s := seq[team]
		seq[team]++
		region := map[string]string{"risk": "eu", "search": "us"}[team]
		if team == "growth" {
			region = "eu"
			if s%3 == 2 {
				region = "us"
			}
		}
		l := crashLoop{
			team: team, name: fmt.Sprintf("crash-%03d", i), region: region, seq: s,
			producer:   fmt.Sprintf("%s-crash-p%03d", team, i),
			actor:      fmt.Sprintf("%s-crash-actor%02d", team, s/4),
			partitions: int32(1 + i%3),
			kib:        64 + i%37,
		}
		if (s/4)%2 == 0 {
			l.group = fmt.Sprintf("%s-crash-g%02d", team, s/4)
		}
		out = append(out, l)
	}
	return out
}

var groupLine = regexp.MustCompile(`(?m)^ *group: nudge-engine.*\n`)

// yaml is the example document rewritten for l.
func (l crashLoop) yaml(t *testing.T, example string) string {
	t.Helper()
	classification := "pii"
	if l.region != "eu" {
		classification = "internal" // the default policy keeps pii in eu
	}
	doc := example
	for _, r := range [][2]string{
		{"name: checkout-nudge", "name: " + l.name},
		{"team: growth", "team: " + l.team},
		{"classification: pii", "classification: " + classification},
		{"residency: eu", "residency: " + l.region},
		{"bytesPerSecond: 2MiB", fmt.Sprintf("bytesPerSecond: %dKiB", l.kib)},
		{"partitions: 12", fmt.Sprintf("partitions: %d", l.partitions)},
		{"User:checkout-api", "User:" + l.producer},
	} {
		if strings.Count(doc, r[0]) != 1 {
			t.Fatalf("examples/checkout-nudge.yaml has %d times %q, want 1 (has its layout changed?)", strings.Count(doc, r[0]), r[0])
		}
		doc = strings.Replace(doc, r[0], r[1], 1)
	}
	group := ""
	if l.group != "" {
		group = "      group: " + l.group + "\n"
	}
	if len(groupLine.FindAllString(doc, -1)) != 1 {
		t.Fatalf("examples/checkout-nudge.yaml: no single `group: nudge-engine` line")
	}
	doc = groupLine.ReplaceAllLiteralString(doc, group)
	doc = strings.ReplaceAll(doc, "User:nudge-engine", "User:"+l.actor)
	if strings.Contains(doc, "checkout-api") || strings.Contains(doc, "User:nudge-engine") {
		t.Fatalf("the rewritten example still names the example's principals:\n%s", doc)
	}
	return doc
}

// runLoopctl is loopctl without a *testing.T, for goroutines: a failure to
// run the binary is an exit code of -1.
func runLoopctl(home string, args ...string) result {
	r, err := execLoopctl(home, nil, "", args...)
	if err != nil {
		return result{Stderr: err.Error(), Code: -1}
	}
	return r
}

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

// listLoops is `loopctl get -o json`, decoded.
func listLoops(home string) ([]*lgv1.Loop, error) {
	r := runLoopctl(home, "get", "-o", "json")
	if r.Code != 0 {
		return nil, fmt.Errorf("loopctl get: %s", r)
	}
	var resp lgv1.ListLoopsResponse
	if err := unmarshal.Unmarshal([]byte(r.Stdout), &resp); err != nil {
		return nil, fmt.Errorf("loopctl get -o json: %v\n%s", err, r.Stdout)
	}
	return resp.GetLoops(), nil
}

// loopKey turns teams/T/loops/N into T/N.
func loopKey(name string) string {
	p := strings.Split(name, "/")
	if len(p) == 4 {
		return p[1] + "/" + p[3]
	}
	return name
}

func conditionText(st *lgv1.LoopStatus) string {
	var parts []string
	for _, c := range st.GetConditions() {
		if c.GetStatus() != "True" {
			parts = append(parts, fmt.Sprintf("%s=%s %s: %s", c.GetType(), c.GetStatus(), c.GetReason(), c.GetMessage()))
		}
	}
	return strings.Join(parts, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var crashName = regexp.MustCompile(`\b(growth|risk|search)[.-]crash-(\d{3})\b`)
var crashPrincipal = regexp.MustCompile(`\b(growth|risk|search)-crash-(p\d{3}|actor\d{2}|g\d{2})\b`)

// attribute names the loops a census difference is about: by topic name,
// or by the principal or group the generated loops name, with whether and
// after which kill each deletion was accepted.
func attribute(problem string, gen map[string]crashLoop, deletedIn map[string]int, deleted, early map[string]bool) string {
	keys := map[string]bool{}
	for _, m := range crashName.FindAllStringSubmatch(problem, -1) {
		keys[m[1]+"/crash-"+m[2]] = true
	}
	for _, m := range crashPrincipal.FindAllString(problem, -1) {
		for k, l := range gen {
			if l.producer == m || l.actor == m || l.group == m {
				keys[k] = true
			}
		}
	}
	if len(keys) == 0 {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(keys) {
		switch r, ok := deletedIn[k]; {
		case ok:
			when := ""
			if early[k] {
				when = " before its first provisioning finished"
			}
			parts = append(parts, fmt.Sprintf("%s deleted%s, the deletion accepted after %d kills", k, when, r))
		case deleted[k]:
			parts = append(parts, k+" to be deleted")
		default:
			parts = append(parts, k+" kept")
		}
	}
	return " [loops: " + strings.Join(parts, ", ") + "]"
}

// affectedLoops are up to n loops named by the census report.
func affectedLoops(report []string, n int) []string {
	seen := map[string]bool{}
	var out []string
	for _, line := range report {
		for _, m := range crashName.FindAllStringSubmatch(line, -1) {
			k := m[1] + "/crash-" + m[2]
			if !seen[k] && len(out) < n {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// auditEvents is `loopctl audit --limit 0 -o json`, decoded.
func auditEvents(t *testing.T, home string) []*lgv1.AuditEvent {
	t.Helper()
	r := runLoopctl(home, "audit", "--limit", "0", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("audit: %s", r)
	}
	var resp lgv1.ListAuditEventsResponse
	if err := unmarshal.Unmarshal([]byte(r.Stdout), &resp); err != nil {
		t.Fatalf("audit -o json: %v", err)
	}
	return resp.GetEvents()
}

// deletedBeforeProvisioned are the loops whose deletion was recorded
// before any successful provisioning of theirs (loop.provision OK).
func deletedBeforeProvisioned(events []*lgv1.AuditEvent) map[string]bool {
	provisioned := map[string]bool{}
	out := map[string]bool{}
	for _, e := range events {
		key := loopKey(e.GetResource())
		switch {
		case e.GetAction() == "loop.provision" && e.GetOutcome() == "OK":
			provisioned[key] = true
		case e.GetAction() == "loop.delete" && e.GetOutcome() == "OK" && !provisioned[key]:
			out[key] = true
		}
	}
	return out
}

// checkAuditOnce: every loop was created exactly once and every deleted
// loop deleted exactly once (and removed once by the reconciler), whatever
// the kills; no request id appears on two creates or deletes.
func checkAuditOnce(t *testing.T, events []*lgv1.AuditEvent, loops []crashLoop, deleted map[string]bool) {
	t.Helper()
	type ev struct {
		seq      int64
		req, gen string
	}
	byAction := map[string]map[string][]ev{} // action -> loop -> OK events
	byRequest := map[string][]string{}       // request id -> "seq action resource"
	for _, e := range events {
		if e.GetOutcome() != "OK" {
			continue
		}
		switch e.GetAction() {
		case "loop.create", "loop.delete", "loop.deprovision":
		default:
			continue
		}
		key := loopKey(e.GetResource())
		if byAction[e.GetAction()] == nil {
			byAction[e.GetAction()] = map[string][]ev{}
		}
		gen := ""
		if g, ok := e.GetDetails().GetFields()["generation"]; ok {
			gen = strconv.FormatFloat(g.GetNumberValue(), 'f', -1, 64)
		}
		byAction[e.GetAction()][key] = append(byAction[e.GetAction()][key], ev{e.GetSeq(), e.GetRequestId(), gen})
		if id := e.GetRequestId(); id != "" && e.GetAction() != "loop.deprovision" {
			byRequest[id] = append(byRequest[id], fmt.Sprintf("%d %s %s", e.GetSeq(), e.GetAction(), key))
		}
	}
	for _, id := range sortedKeys(byRequest) {
		if len(byRequest[id]) > 1 {
			t.Errorf("request %s is recorded %d times: %v", id, len(byRequest[id]), byRequest[id])
		}
	}
	for _, l := range loops {
		k := l.key()
		if evs := byAction["loop.create"][k]; len(evs) != 1 {
			t.Errorf("%s: %d loop.create events with outcome OK, want exactly 1: %+v", k, len(evs), evs)
		}
		want := 0
		if deleted[k] {
			want = 1
		}
		for _, action := range []string{"loop.delete", "loop.deprovision"} {
			if evs := byAction[action][k]; len(evs) != want {
				t.Errorf("%s (deleted: %v): %d %s events with outcome OK, want %d: %+v", k, deleted[k], len(evs), action, want, evs)
			}
		}
	}
	if n := len(events); n > 0 {
		t.Logf("audit: %d events; %d loops created once, %d deleted once", n, len(byAction["loop.create"]), len(byAction["loop.delete"]))
	}
}
