package cli

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func observedLoop() *loopgatev1.Loop {
	now := timestamppb.New(time.Now().Add(-5 * time.Second))
	return &loopgatev1.Loop{
		Name: "teams/growth/loops/checkout-nudge",
		Status: &loopgatev1.LoopStatus{
			State: loopgatev1.Loop_READY, Cluster: "eu-embedded",
			Slo: &loopgatev1.SloStatus{State: loopgatev1.SloStatus_BREACHED, Reason: "Breach", TargetP99Ms: 2000, ObserveTime: now,
				Message: "p99 over the last minute is 3.01s, above the target 2s (171 of 1161 sampled records over)",
				Windows: []*loopgatev1.LatencyWindow{
					{Window: "1m", P50Ms: 150, P90Ms: 2990, P99Ms: 3010, Records: 1161, RecordsOverTarget: 171, RecordsWithoutHeader: 4, ErrorBudgetRemaining: -13.7},
					{Window: "1h", P50Ms: 120, P90Ms: 160, P99Ms: 2950, Records: 9000, RecordsOverTarget: 171, ErrorBudgetRemaining: -0.9},
					{Window: "28d"},
				}},
			Lag: []*loopgatev1.ConsumerGroupLag{{Group: "nudge-engine", OffsetLag: 707, TimeLagMs: 14822, FreshnessMs: 10000, ObserveTime: now,
				Partitions: []*loopgatev1.PartitionLag{{Topic: "growth.checkout-nudge.events", Partition: 0, OffsetLag: 707, TimeLagMs: 14822}}}},
			Cost: &loopgatev1.CostForecast{StorageModel: "broker-local", Currency: "USD", MonthlyTotal: 2431,
				Items: []*loopgatev1.CostItem{{Component: "storage", Monthly: 2074}, {Component: "cross-az", Monthly: 357}}},
			Conditions: []*loopgatev1.Condition{
				{Type: "Provisioned", Status: "True", Reason: "Provisioned"},
				{Type: "SLOMet", Status: "False", Reason: "Breach", LastTransitionTime: now},
				{Type: "Fresh", Status: "False", Reason: "Lagging", Message: "max time lag 14.8s (group nudge-engine, 707 records behind), above the freshness target 10s", LastTransitionTime: now},
			},
		},
	}
}

func TestStatusShowsSLOLagAndCost(t *testing.T) {
	f := &fakeServer{loop: observedLoop()}
	f.start(t)
	code, stdout, stderr := run(t, "status", "growth/checkout-nudge")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"growth/checkout-nudge (READY, cluster eu-embedded)",
		"SLO:      BREACHED (Breach): p99 over the last minute is 3.01s, above the target 2s",
		"target p99 2s",
		"1m       150ms   2.99s   3.01s   2s       1161      171           4                -1370.0%",
		"28d      -       -       -       2s",
		"nudge-engine   707       14.82s     10s (exceeded)",
		"Cost:     $2,431/month on broker-local (storage $2,074, cross-az $357.00",
		"SLOMet=False (Breach", "Fresh=False (Lagging",
		"Fresh: max time lag 14.8s",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
	if got := sent[*loopgatev1.GetLoopRequest](f); len(got) != 1 || got[0].GetName() != "teams/growth/loops/checkout-nudge" {
		t.Errorf("requests: %v", got)
	}

	// -o json is the status message.
	code, stdout, _ = run(t, "status", "growth/checkout-nudge", "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"timeLagMs": "14822"`) || !strings.Contains(stdout, `"state": "BREACHED"`) {
		t.Errorf("-o json: exit %d\n%s", code, stdout)
	}
}

func TestStatusBeforeObservation(t *testing.T) {
	f := &fakeServer{loop: &loopgatev1.Loop{Name: "teams/growth/loops/new", Status: &loopgatev1.LoopStatus{State: loopgatev1.Loop_PROVISIONING}}}
	f.start(t)
	code, stdout, _ := run(t, "status", "growth/new")
	if code != 0 || !strings.Contains(stdout, "SLO:      not observed yet") || !strings.Contains(stdout, "Lag:      not observed yet") || strings.Contains(stdout, "Cost:") {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
}
