package e2e

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// writeSpec writes a loop spec into dir and returns its path.
func writeSpec(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func examplePath(t *testing.T, name string) string {
	return filepath.Join(repoRoot(t), "examples", name)
}

// getLoop returns `loopctl get TEAM/NAME -o json` decoded.
func getLoop(t *testing.T, home, key string, env ...string) map[string]any {
	t.Helper()
	r := loopctl(t, home, env, "get", key, "-o", "json")
	if r.Code != 0 {
		t.Fatalf("loopctl get %s: %s", key, r)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &m); err != nil {
		t.Fatalf("loopctl get -o json is not JSON: %v\n%s", err, r.Stdout)
	}
	return m
}

func field(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// TestEmbeddedLifecycle is the newcomer path of issue "governed loop
// lifecycle": apply an allowed loop and see it on the right cluster only;
// re-apply is a no-op; an update changes exactly what changed; a denied and an
// invalid loop change nothing and say why; approval; delete.
func TestEmbeddedLifecycle(t *testing.T) {
	home := t.TempDir()
	srv := startServer(t, home, filepath.Join(t.TempDir(), "data"))
	eu, us := srv.Clusters["eu"], srv.Clusters["us"]
	if eu.Name == "" || us.Name == "" {
		t.Fatalf("banner did not list both clusters:\n%s", srv.output())
	}

	// 1. Apply the allowed example and wait until READY.
	r := loopctl(t, home, nil, "apply", "-f", examplePath(t, "checkout-nudge.yaml"), "--wait")
	if r.Code != 0 || !strings.Contains(r.Stdout, "READY") {
		t.Fatalf("apply --wait of the allowed example: %s", r)
	}

	// 2. The eu cluster has exactly the derived topics, configs, ACLs and
	// quotas; the us cluster has nothing of it.
	got := observe(t, eu, "growth.")
	if got.Partitions["growth.checkout-nudge.events"] != 12 {
		t.Errorf("events topic partitions = %d, want 12 (state %+v)", got.Partitions["growth.checkout-nudge.events"], got.Partitions)
	}
	if _, ok := got.Partitions["growth.checkout-nudge.actions"]; !ok {
		t.Errorf("actions topic missing: %+v", got.Partitions)
	}
	if c := got.Configs["growth.checkout-nudge.events"]; c["retention.ms"] != "259200000" || c["cleanup.policy"] != "delete" {
		t.Errorf("events topic configs = %v, want retention.ms=259200000 cleanup.policy=delete", c)
	}
	wantACLs := []string{
		"User:checkout-api DESCRIBE TOPIC growth.checkout-nudge.events",
		"User:checkout-api WRITE TOPIC growth.checkout-nudge.events",
		// loopgate's observer reads the action topic (docs/slo.md).
		"User:loopgate-observer DESCRIBE TOPIC growth.checkout-nudge.actions",
		"User:loopgate-observer READ TOPIC growth.checkout-nudge.actions",
		"User:nudge-engine DESCRIBE TOPIC growth.checkout-nudge.actions",
		"User:nudge-engine DESCRIBE TOPIC growth.checkout-nudge.events",
		"User:nudge-engine READ GROUP nudge-engine",
		"User:nudge-engine READ TOPIC growth.checkout-nudge.events",
		"User:nudge-engine WRITE TOPIC growth.checkout-nudge.actions",
	}
	if !reflect.DeepEqual(got.ACLs, wantACLs) {
		t.Errorf("ACLs on eu:\n got %q\nwant %q", got.ACLs, wantACLs)
	}
	peak := int64(2 << 20 * 3)
	if q := got.Quotas["checkout-api"]; q["producer_byte_rate"] != peak {
		t.Errorf("checkout-api quota = %v, want producer_byte_rate=%d", q, peak)
	}
	if q := got.Quotas["nudge-engine"]; q["consumer_byte_rate"] != peak || q["producer_byte_rate"] != peak {
		t.Errorf("nudge-engine quota = %v, want consumer_byte_rate and producer_byte_rate=%d (it reads events and writes actions)", q, peak)
	}
	if other := observe(t, us, "growth."); len(other.Partitions) != 0 || len(other.ACLs) != 0 || len(other.Quotas) != 0 {
		t.Errorf("the us cluster got resources of an eu loop: %+v", other)
	}

	// 3. Re-apply is a no-op: same etag and generation, no new audit event.
	before := getLoop(t, home, "growth/checkout-nudge")
	auditBefore := loopctl(t, home, nil, "audit", "--loop", "growth/checkout-nudge", "-o", "json")
	r = loopctl(t, home, nil, "apply", "-f", examplePath(t, "checkout-nudge.yaml"))
	if r.Code != 0 || !strings.Contains(r.Stdout, "unchanged") {
		t.Fatalf("re-apply: %s", r)
	}
	after := getLoop(t, home, "growth/checkout-nudge")
	if before["etag"] != after["etag"] || before["generation"] != after["generation"] {
		t.Errorf("re-apply changed the loop: etag %v -> %v, generation %v -> %v", before["etag"], after["etag"], before["generation"], after["generation"])
	}
	if auditAfter := loopctl(t, home, nil, "audit", "--loop", "growth/checkout-nudge", "-o", "json"); auditAfter.Stdout != auditBefore.Stdout {
		t.Errorf("re-apply wrote audit events:\nbefore %s\nafter %s", auditBefore.Stdout, auditAfter.Stdout)
	}

	// 4. An update changes exactly what changed: retention and one more
	// consumer; partitions grow on the events topic.
	spec, err := os.ReadFile(examplePath(t, "checkout-nudge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	updated := strings.Replace(string(spec), "retention: 72h", "retention: 48h", 1)
	updated = strings.Replace(updated, "partitions: 12 ", "partitions: 16 ", 1)
	updated = strings.Replace(updated, "  action:\n", "    - principal: User:audit-sink\n      group: audit-sink\n      streams: [actions]\n  action:\n", 1)
	if updated == string(spec) || !strings.Contains(updated, "audit-sink") || !strings.Contains(updated, "partitions: 16") {
		t.Fatalf("could not edit the example spec (has its layout changed?)")
	}
	plan := loopctl(t, home, nil, "plan", "-f", writeSpec(t, t.TempDir(), "u.yaml", updated))
	if plan.Code != 0 {
		t.Fatalf("plan of the update: %s", plan)
	}
	// The cost forecast (docs/cost.md): 2MiB/s kept 48h instead of 72h on the
	// embedded eu cluster (broker-local, RF 1, one zone).
	for _, want := range []string{"AlterTopicConfigs", "AddPartitions", "User:audit-sink",
		"cost: $62.12/month → $41.42/month (-$20.70) on broker-local (prices aws-us-east-1)"} {
		if !strings.Contains(plan.Stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, plan.Stdout)
		}
	}
	if strings.Contains(plan.Stdout, "CreateTopic") || strings.Contains(plan.Stdout, "Delete") {
		t.Errorf("plan of an update creates or deletes unrelated resources:\n%s", plan.Stdout)
	}
	r = loopctl(t, home, nil, "apply", "-f", writeSpec(t, t.TempDir(), "u.yaml", updated), "--wait")
	if r.Code != 0 || !strings.Contains(r.Stdout, "READY") {
		t.Fatalf("apply of the update: %s", r)
	}
	got2 := observe(t, eu, "growth.")
	if got2.Partitions["growth.checkout-nudge.events"] != 16 {
		t.Errorf("partitions after update = %d, want 16", got2.Partitions["growth.checkout-nudge.events"])
	}
	if v := got2.Configs["growth.checkout-nudge.events"]["retention.ms"]; v != "172800000" {
		t.Errorf("retention.ms after update = %s, want 172800000", v)
	}
	if !slices.Contains(got2.ACLs, "User:audit-sink READ TOPIC growth.checkout-nudge.actions") || !slices.Contains(got2.ACLs, "User:audit-sink READ GROUP audit-sink") {
		t.Errorf("new consumer's ACLs missing: %q", got2.ACLs)
	}
	for _, a := range wantACLs {
		if !slices.Contains(got2.ACLs, a) {
			t.Errorf("update removed an unchanged ACL %q", a)
		}
	}

	// 5. A denied loop: non-zero exit, every violation, nothing on any
	// cluster, and the attempt in the audit trail with actor and decision.
	r = loopctl(t, home, nil, "apply", "-f", examplePath(t, "denied-pii-in-us.yaml"))
	if r.Code == 0 {
		t.Fatalf("a denied loop was applied: %s", r)
	}
	out := r.Stdout + r.Stderr
	for _, want := range []string{"PII_RESIDENCY", "PII_RETENTION_TOO_LONG", "THROUGHPUT_EXCEEDS_TEAM_LIMIT", "spec.residency", "spec.retention", "spec.throughput.bytesPerSecond"} {
		if !strings.Contains(out, want) {
			t.Errorf("denied apply output lacks %q:\n%s", want, out)
		}
	}
	for _, c := range []cluster{eu, us} {
		if st := observe(t, c, "growth.clickstream-us"); len(st.Partitions) != 0 {
			t.Errorf("denied loop reached cluster %s: %v", c.Name, st.Partitions)
		}
	}
	var events []map[string]any
	ar := loopctl(t, home, nil, "audit", "--loop", "growth/clickstream-us", "-o", "json")
	if ar.Code != 0 {
		t.Fatalf("audit: %s", ar)
	}
	events = decodeEvents(t, ar.Stdout)
	if len(events) != 1 || events[0]["outcome"] != "DENIED" || events[0]["actor"] != "dev-admin@loopgate.local" || events[0]["decisionId"] == "" {
		t.Errorf("audit of the denied attempt = %v, want one DENIED event with actor and decision", events)
	}

	// 6. An invalid spec gets every field error at once and changes nothing.
	bad := `apiVersion: loopgate.dev/v1
kind: Loop
metadata: {name: Bad_Name, team: growth}
spec:
  owners: []
  classification: pii
  residency: eu
  retention: 72h
  slo: {latencyP99: 2s}
  throughput: {bytesPerSecond: 1MiB}
  streams:
    - name: events
      schema: {format: avro, definition: '{"type":"record","name":"X","fields":[{"name":"a","type":"nope"}]}'}
`
	r = loopctl(t, home, nil, "apply", "-f", writeSpec(t, t.TempDir(), "bad.yaml", bad))
	out = r.Stdout + r.Stderr
	if r.Code == 0 {
		t.Fatalf("invalid spec applied: %s", r)
	}
	for _, want := range []string{"metadata.name", "spec.owners", "spec.streams[0].schema.definition"} {
		if !strings.Contains(out, want) {
			t.Errorf("invalid-spec output lacks %q:\n%s", want, out)
		}
	}
	unknown := strings.Replace(string(spec), "  residency: eu", "  residency: eu\n  colour: blue", 1)
	r = loopctl(t, home, nil, "apply", "-f", writeSpec(t, t.TempDir(), "unknown.yaml", unknown))
	if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "colour") {
		t.Errorf("unknown field not refused by name: %s", r)
	}

	// 7. Approval: a loop below the latency floor waits for a platform
	// admin (policy routes LATENCY_BELOW_FLOOR to role admin); the requester
	// cannot approve it, nor can a security reviewer; an admin can.
	risk := []string{"LOOPGATE_TOKEN=" + devToken(t, home, "risk")}
	r = loopctl(t, home, risk, "apply", "-f", examplePath(t, "fraud-signals-needs-approval.yaml"), "--wait")
	if r.Code != 0 || !strings.Contains(r.Stdout, "PENDING_APPROVAL") {
		t.Fatalf("apply of the approval example: %s", r)
	}
	if st := observe(t, eu, "risk."); len(st.Partitions) != 0 {
		t.Fatalf("a loop awaiting approval was provisioned: %v", st.Partitions)
	}
	if r = loopctl(t, home, risk, "approve", "risk/fraud-signals"); r.Code == 0 {
		t.Errorf("a developer token approved a loop: %s", r)
	}
	if r = loopctl(t, home, nil, "--as", "reviewer", "approve", "risk/fraud-signals"); r.Code == 0 || !strings.Contains(r.Stderr, "APPROVER_ROLE_REQUIRED") {
		t.Errorf("a security reviewer approved a reason routed to platform admins: %s", r)
	}
	if r = loopctl(t, home, nil, "--as", "admin", "approve", "risk/fraud-signals", "--comment", "capacity reserved"); r.Code != 0 {
		t.Fatalf("admin approval: %s", r)
	}
	waitState(t, home, "risk/fraud-signals", "READY")
	if st := observe(t, eu, "risk.fraud-signals."); st.Partitions["risk.fraud-signals.payments"] != 24 {
		t.Errorf("approved loop not provisioned: %v", st.Partitions)
	}

	// 8. Delete removes topics, ACLs and quotas of that loop only.
	r = loopctl(t, home, nil, "delete", "growth/checkout-nudge", "--wait")
	if r.Code != 0 {
		t.Fatalf("delete: %s", r)
	}
	final := observe(t, eu, "growth.")
	if len(final.Partitions) != 0 {
		t.Errorf("topics left after delete: %v", final.Partitions)
	}
	for _, a := range final.ACLs {
		if strings.Contains(a, "checkout-nudge") || strings.Contains(a, "nudge-engine") || strings.Contains(a, "audit-sink") {
			t.Errorf("ACL left after delete: %s", a)
		}
	}
	if _, ok := final.Quotas["checkout-api"]; ok {
		t.Errorf("quota left after delete: %v", final.Quotas)
	}
	if st := observe(t, eu, "risk.fraud-signals."); len(st.Partitions) != 2 {
		t.Errorf("deleting one loop touched another: %v", st.Partitions)
	}

	// 9. `audit --limit N` shows the latest N events, oldest first; the
	// audit chain verifies.
	all := decodeEvents(t, loopctl(t, home, nil, "audit", "--limit", "0", "-o", "json").Stdout)
	last2 := decodeEvents(t, loopctl(t, home, nil, "audit", "--limit", "2", "-o", "json").Stdout)
	if len(all) < 3 || len(last2) != 2 || last2[0]["seq"] != all[len(all)-2]["seq"] || last2[1]["seq"] != all[len(all)-1]["seq"] {
		t.Errorf("audit --limit 2 = seqs %v, %v; want the last two of %d events", field(last2[0], "seq"), field(last2[len(last2)-1], "seq"), len(all))
	}
	if r = loopctl(t, home, nil, "audit", "verify"); r.Code != 0 {
		t.Errorf("audit verify: %s", r)
	}
}

func decodeEvents(t *testing.T, s string) []map[string]any {
	t.Helper()
	var wrapper struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal([]byte(s), &wrapper); err == nil && wrapper.Events != nil {
		return wrapper.Events
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		t.Fatalf("audit -o json is not JSON: %v\n%s", err, s)
	}
	return list
}

func devToken(t *testing.T, home, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(home, ".loopgate", "dev-credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Tokens map[string]string `json:"tokens"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.Tokens[name] == "" {
		t.Fatalf("no dev token %q in %s", name, raw)
	}
	return c.Tokens[name]
}

func waitState(t *testing.T, home, key, state string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := getLoop(t, home, key)
		if field(l, "status", "state") == state {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %s: %v", key, state, field(l, "status"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTeamScopeRestartAndTamper: a team token cannot touch another team's
// loops; a restart keeps loops, audit and cluster contents; altering a stored
// audit row makes `loopctl audit verify` fail naming that event.
func TestTeamScopeRestartAndTamper(t *testing.T) {
	home := t.TempDir()
	data := filepath.Join(t.TempDir(), "data")
	srv := startServer(t, home, data)

	r := loopctl(t, home, nil, "apply", "-f", examplePath(t, "checkout-nudge.yaml"), "--wait")
	if r.Code != 0 {
		t.Fatalf("apply: %s", r)
	}
	risk := []string{"LOOPGATE_TOKEN=" + devToken(t, home, "risk")}
	spec, _ := os.ReadFile(examplePath(t, "checkout-nudge.yaml"))
	changed := strings.Replace(string(spec), "retention: 72h", "retention: 24h", 1)
	for name, args := range map[string][]string{
		"create":  {"apply", "-f", writeSpec(t, t.TempDir(), "c.yaml", strings.Replace(string(spec), "name: checkout-nudge", "name: sneaky-loop", 1))},
		"update":  {"apply", "-f", writeSpec(t, t.TempDir(), "u.yaml", changed)},
		"delete":  {"delete", "growth/checkout-nudge"},
		"approve": {"approve", "growth/checkout-nudge"},
	} {
		r := loopctl(t, home, risk, args...)
		if r.Code == 0 || !strings.Contains(strings.ToLower(r.Stdout+r.Stderr), "permission") && !strings.Contains(r.Stdout+r.Stderr, "may not") {
			t.Errorf("risk token could %s a growth loop: %s", name, r)
		}
	}
	l := getLoop(t, home, "growth/checkout-nudge")
	if field(l, "spec", "retentionMs") != "259200000" && field(l, "spec", "retentionMs") != float64(259200000) {
		t.Errorf("a forbidden update changed the loop: retention %v", field(l, "spec", "retentionMs"))
	}
	// Each command is refused at its first RPC; identical refusals (same
	// source, actor, method and reason) within 10 s are one event plus a
	// count written when the window ends, so at least the first is there.
	ar := loopctl(t, home, nil, "audit", "-o", "json")
	forbidden := 0
	for _, e := range decodeEvents(t, ar.Stdout) {
		if e["outcome"] == "FORBIDDEN" && e["actor"] == "risk-dev@example.com" {
			forbidden++
		}
	}
	if forbidden < 1 {
		t.Errorf("forbidden attempts audited = %d, want at least 1", forbidden)
	}

	// Restart (SIGKILL: a crash) and check everything survived.
	srv.kill()
	srv2 := startServer(t, home, data)
	l2 := waitState(t, home, "growth/checkout-nudge", "READY")
	if l2["etag"] != l["etag"] {
		t.Errorf("etag changed across restart")
	}
	if st := observe(t, srv2.Clusters["eu"], "growth."); st.Partitions["growth.checkout-nudge.events"] != 12 {
		t.Errorf("topics after restart: %v", st.Partitions)
	}
	if r = loopctl(t, home, nil, "audit", "verify"); r.Code != 0 {
		t.Fatalf("audit verify after restart: %s", r)
	}

	// Tamper with one stored audit event: verify must name it.
	srv2.stop()
	db, err := sql.Open("sqlite", filepath.Join(data, "loopgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	var id string
	if err := db.QueryRow(`SELECT seq, id FROM audit_events ORDER BY seq LIMIT 1 OFFSET 2`).Scan(&seq, &id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET actor = 'mallory@example.com' WHERE seq = ?`, seq); err != nil {
		t.Fatal(err)
	}
	db.Close()
	startServer(t, home, data)
	r = loopctl(t, home, nil, "audit", "verify")
	if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, id) {
		t.Errorf("audit verify after tampering with event %d (%s): %s", seq, id, r)
	}
}
