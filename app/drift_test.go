package app_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// Topics deleted behind loopgate's back are found by the next drift pass
// and recreated. ListClusters reports the pass (how long, how many loops,
// which drifted), naming only the drifted loops the caller may see: team
// growth learns that one of its loops drifted, not which of risk's did;
// the platform admin sees both.
func TestDriftPassThroughTheAPI(t *testing.T) {
	user, pass := "drift-admin", randomHex(t)
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, pass),
		kfake.EnableACLs(), kfake.DefaultNumPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kf.Close)

	t.Setenv("HOME", t.TempDir())
	cfg := &config.Config{
		DataDir: filepath.Join(t.TempDir(), "data"),
		Resync:  300 * time.Millisecond,
		Clusters: []config.Cluster{{
			Name: "eu-drift", Region: "eu", ReplicationFactor: 1, BootstrapServers: kf.ListenAddrs(),
			SASL: &config.SASL{Mechanism: "SCRAM-SHA-512", Username: user, Password: pass},
		}},
		Teams: []catalog.Team{
			{Name: "growth", AllowedRegions: []string{"eu"}, MaxPartitionsPerLoop: 64, MaxPartitions: 1000, MaxBytesPerSecond: 50 << 20},
			{Name: "risk", AllowedRegions: []string{"eu"}, MaxPartitionsPerLoop: 64, MaxPartitions: 1000, MaxBytesPerSecond: 50 << 20},
		},
		DevCredentials: true,
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := runServer(t, cfg, 0)
	loops := lgv1.NewLoopServiceClient(r.conn)
	clusters := lgv1.NewClusterServiceClient(r.conn)
	growth, risk := asDemo(t, "growth"), asDemo(t, "risk")

	for _, c := range []struct {
		ctx        context.Context
		team, name string
	}{{growth, "growth", "watched"}, {risk, "risk", "secret"}} {
		l := typicalLoop(c.name)
		l.Name = ""
		for _, p := range l.Spec.Producers {
			p.Principal += "-" + c.team
		}
		for _, k := range l.Spec.Consumers {
			k.Principal += "-" + c.team
			k.Group += "-" + c.team
		}
		if _, err := loops.CreateLoop(c.ctx, &lgv1.CreateLoopRequest{Parent: "teams/" + c.team, LoopId: c.name, Loop: l}); err != nil {
			t.Fatalf("create %s/%s: %v", c.team, c.name, err)
		}
		awaitReady(t, c.ctx, loops, "teams/"+c.team+"/loops/"+c.name)
	}
	lastPass := func(ctx context.Context) *lgv1.DriftPass {
		resp, err := clusters.ListClusters(ctx, &lgv1.ListClustersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetClusters()[0].GetLastDriftPass()
	}
	waitPass := func(ctx context.Context, what string, ok func(*lgv1.DriftPass) bool) *lgv1.DriftPass {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			p := lastPass(ctx)
			if p != nil && ok(p) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("no drift pass %s; last: %v", what, p)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	before := waitPass(r.ctx, "over both converged loops", func(p *lgv1.DriftPass) bool { return p.GetLoops() == 2 })
	if before.GetDrifted() != 0 || before.GetError() != "" || before.GetDuration().AsDuration() <= 0 {
		t.Errorf("pass over a converged cluster = %v, want nothing drifted and a duration", before)
	}

	kcl, err := kgo.NewClient(kgo.SeedBrokers(kf.ListenAddrs()...), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	ctx := context.Background()
	gone := []string{"growth.watched.events", "risk.secret.events"}
	if _, err := adm.DeleteTopics(ctx, gone...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		topics, err := adm.ListTopics(ctx, gone...)
		if err == nil && len(topics) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted topics not recreated: %v %v", topics.Names(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	asAdmin := waitPass(r.ctx, "that found drift", func(p *lgv1.DriftPass) bool { return p.GetLastDriftTime() != nil })
	want := []string{"teams/growth/loops/watched", "teams/risk/loops/secret"}
	if got := slices.Sorted(slices.Values(asAdmin.GetLastDriftedLoops())); !slices.Equal(got, want) {
		t.Errorf("the admin sees drifted loops %v, want %v", got, want)
	}
	asGrowth := lastPass(growth)
	if got := asGrowth.GetLastDriftedLoops(); !slices.Equal(got, []string{"teams/growth/loops/watched"}) {
		t.Errorf("team growth sees drifted loops %v, want only its own", got)
	}
	for _, name := range want {
		deadline := time.Now().Add(20 * time.Second)
		for {
			l, err := loops.GetLoop(r.ctx, &lgv1.GetLoopRequest{Name: name})
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(l.GetStatus().GetConditions(), func(c *lgv1.Condition) bool {
				return c.GetType() == "InSync" && c.GetReason() == "DriftCorrected"
			}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: conditions %v, want InSync with reason DriftCorrected", name, l.GetStatus().GetConditions())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
