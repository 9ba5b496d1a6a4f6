package app_test

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/cli"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// runLoopctl runs loopctl in-process against r as the dev admin.
func runLoopctl(r *running, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	args = append(args, "--server", r.addr, "--token", r.token, "--insecure")
	code = cli.Run(args, &out, &errOut, func(string) string { return "" })
	return code, out.String(), errOut.String()
}

// The embedded default forecasts every plan on its clusters (broker-local,
// one zone, RF 1, the built-in us-east-1 prices): plan gives the cost, a
// created loop's status gives the same, and an update's plan gives both the
// current and the new cost; `loopctl plan` and `loopctl get` print them.
func TestPlanAndStatusCarryTheCostForecast(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), slog.LevelWarn)
	loops := lgv1.NewLoopServiceClient(r.conn)

	l := typicalLoop("costly") // examples/checkout-nudge.yaml: 2 MiB/s, 72h
	plan, err := loops.PlanLoop(r.ctx, &lgv1.PlanLoopRequest{Loop: l})
	if err != nil {
		t.Fatal(err)
	}
	c := plan.GetCost()
	// 2 MiB/s × 72 h × RF 1 = 543.6 GB on disks at 70% use × $0.08.
	if c.GetStorageModel() != catalog.StorageBrokerLocal || c.GetCurrency() != "USD" || c.GetPriceList() != catalog.DefaultPriceListName ||
		math.Abs(c.GetMonthlyTotal()-62.12) > 0.005 || len(c.GetItems()) != 3 || c.GetBasis() == "" {
		t.Fatalf("plan cost = %v", c)
	}
	if plan.GetCurrentCost() != nil {
		t.Errorf("a CREATE has a current cost: %v", plan.GetCurrentCost())
	}

	created, err := loops.CreateLoop(r.ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "costly", Loop: l})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(created.GetStatus().GetCost(), c) {
		t.Errorf("status cost %v, want the plan's %v", created.GetStatus().GetCost(), c)
	}
	got, err := loops.GetLoop(r.ctx, &lgv1.GetLoopRequest{Name: l.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.GetStatus().GetCost(), c) {
		t.Errorf("GetLoop status cost %v, want %v", got.GetStatus().GetCost(), c)
	}

	// Doubling the throughput doubles the cost; the plan shows both.
	bigger := proto.Clone(l).(*lgv1.Loop)
	bigger.Spec.Throughput.BytesPerSecond *= 2
	up, err := loops.PlanLoop(r.ctx, &lgv1.PlanLoopRequest{Loop: bigger})
	if err != nil {
		t.Fatal(err)
	}
	if up.GetOperation() != lgv1.PlanLoopResponse_UPDATE || !proto.Equal(up.GetCurrentCost(), c) ||
		math.Abs(up.GetCost().GetMonthlyTotal()-124.25) > 0.005 {
		t.Errorf("update plan: %v, current %v, cost %v", up.GetOperation(), up.GetCurrentCost(), up.GetCost())
	}
	same, err := loops.PlanLoop(r.ctx, &lgv1.PlanLoopRequest{Loop: l})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(same.GetCurrentCost(), c) || !proto.Equal(same.GetCost(), c) {
		t.Errorf("NOOP plan: current %v, cost %v", same.GetCurrentCost(), same.GetCost())
	}

	code, out, errOut := runLoopctl(r, "get", "growth/costly")
	if code != 0 || !strings.Contains(out, "Cost:") || !strings.Contains(out, "$62.12/month on broker-local (storage $62.12, cross-az $0.00, compute $0.00; replay $0.00/day)") {
		t.Errorf("loopctl get (exit %d):\n%s%s", code, out, errOut)
	}
}

// `loopctl plan -f examples/...` shows the forecast of every example, and an
// update shows the change from the current cost.
func TestLoopctlPlanShowsTheForecastOfTheExamples(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	r := runServer(t, config.Embedded(filepath.Join(t.TempDir(), "data")), slog.LevelWarn)

	for _, tc := range []struct {
		file, want string
		code       int
	}{
		{"checkout-nudge.yaml", "cost: $62.12/month on broker-local (prices aws-us-east-1)\n    storage $62.12, cross-az $0.00, compute $0.00; replay $0.00/day\n", 0},
		{"fraud-signals-needs-approval.yaml", "cost: $289.91/month on broker-local (prices aws-us-east-1)\n", 0}, // 4 MiB/s × 7d
		{"denied-pii-in-us.yaml", "/month on broker-local", 1},
	} {
		code, out, errOut := runLoopctl(r, "plan", "-f", filepath.Join("..", "examples", tc.file))
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("loopctl plan -f examples/%s: exit %d (want %d), want %q in:\n%s%s", tc.file, code, tc.code, tc.want, out, errOut)
		}
	}

	if code, out, errOut := runLoopctl(r, "apply", "-f", filepath.Join("..", "examples", "checkout-nudge.yaml")); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	// The same loop with twice the throughput.
	file := filepath.Join(t.TempDir(), "bigger.yaml")
	writeExampleWith(t, file, "bytesPerSecond: 2MiB", "bytesPerSecond: 4MiB")
	code, out, errOut := runLoopctl(r, "plan", "-f", file)
	if want := "cost: $62.12/month → $124.25/month (+$62.13) on broker-local"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("plan of an update: exit %d, want %q in:\n%s%s", code, want, out, errOut)
	}
}

// A cluster's storage model and prices come from the catalog, and a team's
// costApprovalThreshold holds a loop forecast above it for a team admin
// (COST_ABOVE_BUDGET in the default bundle).
func TestCostAboveTheTeamThresholdNeedsApproval(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	cfg.PriceLists = []catalog.PriceList{{Name: "lab", Currency: "USD", ObjectStoragePerGBMonth: 0.023,
		ObjectPutPer1000: 0.005, ObjectGetPer1000: 0.0004, ComputePerMBpsMonth: 10}}
	for i := range cfg.Clusters {
		if cfg.Clusters[i].Region == "eu" {
			cfg.Clusters[i].Zones = []string{"eu-a", "eu-b", "eu-c"}
			cfg.Clusters[i].Storage = catalog.Storage{Model: catalog.StorageShared}
			cfg.Clusters[i].PriceList = "lab"
		}
	}
	for i := range cfg.Teams {
		if cfg.Teams[i].Name == "growth" {
			cfg.Teams[i].CostApprovalThreshold = 100
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := runServer(t, cfg, slog.LevelWarn)
	loops := lgv1.NewLoopServiceClient(r.conn)

	plan, err := loops.PlanLoop(r.ctx, &lgv1.PlanLoopRequest{Loop: typicalLoop("shared-costs")})
	if err != nil {
		t.Fatal(err)
	}
	c := plan.GetCost()
	if c.GetStorageModel() != catalog.StorageShared || c.GetPriceList() != "lab" || c.GetMonthlyTotal() <= 100 {
		t.Fatalf("cost %v", c)
	}
	components := map[string]float64{}
	for _, it := range c.GetItems() {
		components[it.GetComponent()] = it.GetMonthly()
	}
	// 2 MiB/s: 3 zones × 4 uploads/s; compute 2.097 MB/s × $10.
	if components["object-put"] != 157.68 || components["cross-az"] != 0 || math.Abs(components["compute"]-20.97) > 0.005 {
		t.Errorf("components %v", components)
	}
	var found *lgv1.Violation
	for _, a := range plan.GetVerdict().GetApproval() {
		if a.GetId() == "COST_ABOVE_BUDGET" {
			found = a
		}
	}
	if found == nil || found.GetRole() != "team-admin" || found.GetField() != "spec.throughput" ||
		!strings.Contains(found.GetMsg(), "above team \"growth\"'s approval threshold of 100.00 USD") {
		t.Fatalf("approvals %v, want COST_ABOVE_BUDGET for a team-admin", plan.GetVerdict().GetApproval())
	}

	created, err := loops.CreateLoop(r.ctx, &lgv1.CreateLoopRequest{Parent: "teams/growth", LoopId: "shared-costs", Loop: typicalLoop("shared-costs")})
	if err != nil {
		t.Fatal(err)
	}
	if created.GetStatus().GetState() != lgv1.Loop_PENDING_APPROVAL || !proto.Equal(created.GetStatus().GetCost(), c) {
		t.Errorf("created: %v, cost %v", created.GetStatus().GetState(), created.GetStatus().GetCost())
	}
}

// writeExampleWith writes examples/checkout-nudge.yaml to file with one
// string replaced.
func writeExampleWith(t *testing.T, file, old, new string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "examples", "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(old)) {
		t.Fatalf("examples/checkout-nudge.yaml has no %q", old)
	}
	if err := os.WriteFile(file, bytes.Replace(raw, []byte(old), []byte(new), 1), 0o600); err != nil {
		t.Fatal(err)
	}
}
