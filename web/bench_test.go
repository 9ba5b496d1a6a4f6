package web_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// BenchmarkPortalThousandLoops renders the overview and a loop page of a
// loopgate holding 1,000 loops (created through the API), as a signed-in
// platform admin who sees them all. Each iteration is one full HTTP GET
// against the real server on loopback: session lookup, the gRPC calls with
// the person's token (authentication, authorization, store reads), the
// template, the response. It reports the p50/p99 per page in ms; the
// target is 100 ms. api-listloops is ListLoops of all 1,000 loops over gRPC
// alone, what the fresh overview (/?fresh=1) asks for.
func BenchmarkPortalThousandLoops(b *testing.B) {
	const n = 1000
	e := start(b, func(cfg *config.Config) {
		for i := range cfg.Teams {
			cfg.Teams[i].MaxPartitions = 1 << 30
			cfg.Teams[i].MaxBytesPerSecond = 1 << 50
		}
	})
	loops := lgv1.NewLoopServiceClient(e.conn)
	admin := e.as("admin")
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			team := []string{"growth", "risk"}[i%2]
			l := checkoutLoop(team, fmt.Sprintf("loop-%04d", i))
			if _, err := loops.CreateLoop(admin, &lgv1.CreateLoopRequest{Parent: "teams/" + team, LoopId: fmt.Sprintf("loop-%04d", i), Loop: l}); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	// Measure the steady state: every loop provisioned, the reconciler idle.
	deadline := time.Now().Add(5 * time.Minute)
	// ... and observed: each loop's SLO status (NoTraffic here) is in the
	// listing, as on a running estate, so its read is measured too.
	for ready, observed := 0, 0; ready < n || observed < n; {
		ready, observed = 0, 0
		tok := ""
		for {
			resp, err := loops.ListLoops(admin, &lgv1.ListLoopsRequest{Parent: "teams/-", PageSize: 1000, PageToken: tok})
			if err != nil {
				b.Fatal(err)
			}
			for _, l := range resp.GetLoops() {
				if l.GetStatus().GetState() == lgv1.Loop_READY {
					ready++
				}
				if l.GetStatus().GetSlo() != nil {
					observed++
				}
			}
			if tok = resp.GetNextPageToken(); tok == "" {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 5 minutes: %d of %d loops READY, %d observed", ready, n, observed)
		}
		if ready < n || observed < n {
			time.Sleep(500 * time.Millisecond)
		}
	}
	// The API alone, for comparison: what listing 1,000 loops over gRPC
	// costs (the fresh overview's share of it).
	b.Run("api-listloops", func(b *testing.B) {
		var d []time.Duration
		for i := 0; i < b.N; i++ {
			start := time.Now()
			tok := ""
			for {
				resp, err := loops.ListLoops(admin, &lgv1.ListLoopsRequest{Parent: "teams/-", PageSize: 1000, PageToken: tok, View: lgv1.LoopView_LOOP_VIEW_BASIC})
				if err != nil {
					b.Fatal(err)
				}
				if tok = resp.GetNextPageToken(); tok == "" {
					break
				}
			}
			d = append(d, time.Since(start))
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		q := func(p float64) float64 { return float64(d[int(float64(len(d)-1)*p)].Microseconds()) / 1000 }
		b.ReportMetric(q(0.5), "p50-ms")
		b.ReportMetric(q(0.99), "p99-ms")
	})
	br := e.browser(b).login("admin")
	// overview-cold lists the loops through the API on every request
	// (?fresh=1); overview reuses the session's list (kept 10 s).
	pages := map[string]string{"overview-cold": "/?fresh=1", "overview": "/", "overview-filtered": "/?team=risk&q=loop-00", "loop": "/teams/risk/loops/loop-0001"}
	if p := br.get(pages["overview"]); p.code != http.StatusOK || countRows(p.body) != 200 || !strings.Contains(p.body, "1–200 of 1000 matching") {
		b.Fatalf("overview: %d, %d rows", p.code, countRows(p.body))
	}
	for _, name := range []string{"overview-cold", "overview", "overview-filtered", "loop"} {
		path := pages[name]
		var d []time.Duration
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if p := br.get(path); p.code != http.StatusOK {
					b.Fatalf("%s: %d", path, p.code)
				}
				d = append(d, time.Since(start))
			}
			sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
			q := func(p float64) float64 { return float64(d[int(float64(len(d)-1)*p)].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			d = d[:0]
		})
	}
}

func countRows(body string) int {
	c := 0
	for i := 0; i+13 <= len(body); i++ {
		if body[i:i+13] == "<tr data-loop" {
			c++
		}
	}
	return c
}
