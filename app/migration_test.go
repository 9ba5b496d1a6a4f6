package app_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/sqlite"
)

// A store written before principals and groups were owned: loops of two
// teams share a principal. At start every name is claimed by the team of
// the earliest loop naming it (audited, origin "migration"), the conflict
// is listed, and the later team's loop can no longer be updated to keep it.
func TestUpgradeClaimsExistingNamesAndReportsConflicts(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dataDir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "loopgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	old := func(team, name, principal, group string, created time.Time) *loop.Loop {
		src := `apiVersion: loopgate.dev/v1
kind: Loop
metadata: {name: ` + name + `, team: ` + team + `}
spec:
  owners: [ana@example.com]
  classification: internal
  residency: eu
  retention: 1d
  slo: {latencyP99: 2s}
  throughput: {bytesPerSecond: 1KiB}
  streams: [{name: events, schema: {definition: '{"type":"record","name":"E","fields":[{"name":"a","type":"string"}]}'}}]
  producers: [{principal: "` + principal + `", streams: [events]}]
  consumers: [{principal: "` + principal + `", group: ` + group + `, streams: [events]}]
`
		ls, err := loop.ParseBytes([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		ls[0].Metadata.CreateTime = created
		return ls[0]
	}
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	err = st.Update(ctx, func(tx store.Tx) error {
		for _, l := range []*loop.Loop{
			old("risk", "late", "User:shared", "risk-group", t0.Add(time.Hour)),
			old("growth", "early", "User:shared", "growth-group", t0),
		} {
			if err := tx.CreateLoop(ctx, l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	r := runServer(t, config.Embedded(dataDir), 0)
	principals := lgv1.NewPrincipalServiceClient(r.conn)
	p, err := principals.GetPrincipal(r.ctx, &lgv1.GetPrincipalRequest{Name: "teams/growth/principals/shared"})
	if err != nil || p.GetOrigin() != "migration" || p.GetClaimedBy() != "teams/growth/loops/early" {
		t.Fatalf("shared after the upgrade = %v, %v; want claimed by growth's earlier loop", p, err)
	}
	if _, err := principals.GetPrincipal(r.ctx, &lgv1.GetPrincipalRequest{Name: "teams/risk/principals/shared"}); err == nil {
		t.Errorf("shared is owned by two teams")
	}
	groups, err := principals.ListConsumerGroups(r.ctx, &lgv1.ListConsumerGroupsRequest{Parent: "teams/risk"})
	if err != nil || len(groups.GetGroups()) != 1 || groups.GetGroups()[0].GetGroupId() != "risk-group" {
		t.Errorf("risk's groups = %v, %v", groups.GetGroups(), err)
	}
	cf, err := principals.ListOwnershipConflicts(r.ctx, &lgv1.ListOwnershipConflictsRequest{})
	if err != nil || len(cf.GetConflicts()) != 1 {
		t.Fatalf("conflicts = %v, %v; want one", cf.GetConflicts(), err)
	}
	c := cf.GetConflicts()[0]
	if c.GetKind() != "principal" || c.GetId() != "shared" || c.GetOwner() != "growth" || strings.Join(c.GetLoops(), ",") != "teams/risk/loops/late" {
		t.Errorf("conflict = %v", c)
	}
	audits := lgv1.NewAuditServiceClient(r.conn)
	evs, err := audits.ListAuditEvents(r.ctx, &lgv1.ListAuditEventsRequest{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	claims := 0
	for _, ev := range evs.GetEvents() {
		if strings.HasSuffix(ev.GetAction(), ".claim") && ev.GetActor() == "loopgate/migration" {
			claims++
		}
	}
	if claims != 3 { // shared, growth-group, risk-group
		t.Errorf("%d migration claim events, want 3", claims)
	}
	// Restarting claims nothing more. (The reconciler may append
	// provisioning events meanwhile: count the migration's only.)
	r.Stop()
	r2 := runServer(t, config.Embedded(dataDir), 0)
	evs2, err := lgv1.NewAuditServiceClient(r2.conn).ListAuditEvents(r2.ctx, &lgv1.ListAuditEventsRequest{PageSize: 1000, Actor: "loopgate/migration"})
	if err != nil || len(evs2.GetEvents()) != claims {
		t.Errorf("after a second start: %d migration events, want %d (%v)", len(evs2.GetEvents()), claims, err)
	}
}
