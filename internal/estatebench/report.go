package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// printTable writes the markdown table: one row per figure, three columns
// per size (loopgate, floor, loopgate/floor).
func printTable(w io.Writer, rep *report) {
	fmt.Fprintf(w, "%s · %s · %s · %d cores · load %s at start, %s at end\n\n",
		rep.Date, rep.GoVersion, rep.CPU, rep.Cores, rep.LoadStart, rep.LoadEnd)

	head := []string{""}
	for _, s := range rep.Sizes {
		head = append(head, fmt.Sprintf("%s loops: loopgate", thousands(s.Loops)), "floor", "loopgate/floor")
	}
	row := func(cells ...string) { fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | ")) }
	row(head...)
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---"
	}
	row(sep...)

	type figure struct {
		name string
		cell func(s *sizeResult) (lg, floor, ratio string)
	}
	timed := func(lg, floor func(s *sizeResult) float64) func(s *sizeResult) (string, string, string) {
		return func(s *sizeResult) (string, string, string) {
			l, f := lg(s), floor(s)
			ratio := "—"
			if f > 0 {
				ratio = fmt.Sprintf("%.1f×", l/f)
			}
			return fmtDur(l), fmtDur(f), ratio
		}
	}
	noopFloor := func(s *sizeResult) float64 { return s.Floor.NoopDiffSec }
	figures := []figure{
		{"`loopctl apply -f DIR --wait` until all READY", timed(func(s *sizeResult) float64 { return s.ApplyWaitSec }, func(s *sizeResult) float64 { return s.Floor.ApplySec })},
		{"no-op `loopctl plan -f DIR`", timed(func(s *sizeResult) float64 { return s.PlanSec }, noopFloor)},
		{"no-op re-apply `loopctl apply -f DIR`", timed(func(s *sizeResult) float64 { return s.ReapplySec }, noopFloor)},
		{"one drift pass (server's `lastDriftPass.duration`)", timed(func(s *sizeResult) float64 { return s.DriftPassSec }, noopFloor)},
		{fmt.Sprintf("idle CPU, %% of one core (%s window)", secs(rep.IdleWindow)), func(s *sizeResult) (string, string, string) {
			return fmt.Sprintf("%.2f %%", s.IdleCPUPercent), "—", "—"
		}},
		{"RSS MB (MiB, VmRSS after the idle window)", func(s *sizeResult) (string, string, string) {
			return fmt.Sprintf("%.0f", s.RSSMiB), "—", "—"
		}},
		{"deleted topic recreated after", func(s *sizeResult) (string, string, string) {
			target := rep.ResyncSec + s.DriftPassSec
			mark := "✔"
			if s.RecreateSec > target {
				mark = "✘"
			}
			return fmt.Sprintf("%s (resync %s; ≤ %s %s)", fmtDur(s.RecreateSec), secs(rep.ResyncSec), fmtDur(target), mark), "—", "—"
		}},
	}
	for _, f := range figures {
		cells := []string{f.name}
		for i := range rep.Sizes {
			l, fl, r := f.cell(&rep.Sizes[i])
			cells = append(cells, l, fl, r)
		}
		row(cells...)
	}

	fmt.Fprintf(w, "\nPer loop: one 6-partition stream, its own producer, consumer and group: 8 admin resources (1 topic, 5 ACLs, 2 quotas). "+
		"DIR holds the loops in files of up to %s loops (loopctl refuses a file over 4 MiB); the server runs with resync %s and the per-identity mutation rate limit off.\n",
		thousands(loopsPerFile), secs(rep.ResyncSec))
	fmt.Fprintf(w, "Floor (fresh embedded cluster, persisted data dir, franz-go kadm/kmsg): apply = one CreateTopics for all topics (6 partitions, RF 1) + one CreateACLs for 2 ACLs per topic; no-op diff = one Metadata + one DescribeConfigs of those topics + one DescribeACLs (it is the floor of plan, re-apply and drift pass alike).\n")
	fmt.Fprintf(w, "Target for the deleted topic: within one resync interval plus one drift pass.\n")
	for _, s := range rep.Sizes {
		detect := "unknown"
		if s.RecreateDetectSec >= 0 {
			detect = fmtDur(s.RecreateDetectSec)
		}
		fmt.Fprintf(w, "\n%s loops — loopgate CPU: apply %s, plan %s, re-apply %s; drift pass observe %s of %s (%d loops, %d drifted); "+
			"floor apply = CreateTopics %s + CreateACLs %s, no-op diff = Metadata %s + DescribeConfigs %s + DescribeACLs %s; "+
			"peak RSS %.0f MiB; SQLite %.1f MiB; embedded Kafka data %.0f MiB in %s files; deleted %s found by the pass begun %s after the deletion.\n",
			thousands(s.Loops), fmtDur(s.ApplyCPUSec), fmtDur(s.PlanCPUSec), fmtDur(s.ReapplyCPUSec),
			fmtDur(s.DriftObserveSec), fmtDur(s.DriftPassSec), s.DriftLoops, s.DriftDrifted,
			fmtDur(s.Floor.CreateTopicsSec), fmtDur(s.Floor.CreateACLsSec),
			fmtDur(s.Floor.MetadataSec), fmtDur(s.Floor.DescribeConfigsSec), fmtDur(s.Floor.DescribeACLsSec),
			s.PeakRSSMiB, s.StoreMiB, s.KafkaDataMiB, thousands(int(s.KafkaDataFiles)), s.RecreatedTopic, detect)
	}
}

// fmtDur formats seconds: "412 ms" below a second, "4.35 s" above.
func fmtDur(sec float64) string {
	switch {
	case sec < 0.01:
		return fmt.Sprintf("%.2f ms", sec*1000)
	case sec < 1:
		return fmt.Sprintf("%.0f ms", sec*1000)
	case sec < 100:
		return fmt.Sprintf("%.2f s", sec)
	}
	return fmt.Sprintf("%.0f s", sec)
}

// secs formats whole seconds as a duration: 30 → "30s".
func secs(sec float64) string {
	return time.Duration(sec * float64(time.Second)).String()
}

// thousands writes n with commas: 10000 → "10,000".
func thousands(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
