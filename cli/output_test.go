package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func readyLoop(t *testing.T) *loopgatev1.Loop {
	l := exampleLoop(t)
	l.Labels["flag"] = "true" // a string that YAML would read as a bool unquoted
	l.Generation = 2
	l.CreateTime = timestamppb.New(testNow.Add(-3 * time.Hour))
	l.Status = &loopgatev1.LoopStatus{
		State:              loopgatev1.Loop_READY,
		ObservedGeneration: 2,
		Cluster:            "eu-1",
		Conditions: []*loopgatev1.Condition{
			{Type: "Provisioned", Status: "True", Reason: "Provisioned", Message: "all resources exist", ObservedGeneration: 2,
				LastTransitionTime: timestamppb.New(testNow.Add(-90 * time.Second))},
		},
		Policy: &loopgatev1.PolicyVerdict{Allowed: true, BundleRevision: "b7",
			Warn: []*loopgatev1.Violation{{Id: "FRESHNESS_LOOSER_THAN_LATENCY", Field: "spec.slo.freshness", Msg: "set freshness below the latency"}}},
		Streams: []*loopgatev1.StreamEndpoint{
			{Stream: "events", Topic: "growth.checkout-nudge.events", Cluster: "eu-1", Region: "eu",
				BootstrapServers: []string{"k1:9092", "k2:9092"}, External: true},
			{Stream: "actions", Topic: "growth.checkout-nudge.actions", Cluster: "eu-1", Region: "eu",
				BootstrapServers: []string{"k1:9092", "k2:9092"}},
		},
		Principals: []*loopgatev1.PrincipalGrants{
			{Principal: "User:checkout-api", Resource: "teams/growth/principals/checkout-api",
				ProduceTopics: []string{"growth.checkout-nudge.events"},
				Quota:         &loopgatev1.Quota{Principal: "User:checkout-api", ProducerByteRate: 6 << 20}},
			{Principal: "User:nudge-engine", Resource: "teams/growth/principals/nudge-engine",
				ProduceTopics: []string{"growth.checkout-nudge.actions"}, ConsumeTopics: []string{"growth.checkout-nudge.events"},
				Groups: []string{"nudge-engine"}, Quota: &loopgatev1.Quota{Principal: "User:nudge-engine", ProducerByteRate: 6 << 20, ConsumerByteRate: 6 << 20}},
		},
	}
	return l
}

func TestPrintMessageJSONRoundTrips(t *testing.T) {
	want := readyLoop(t)
	var buf bytes.Buffer
	if err := printMessage(&buf, FormatJSON, want); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"retentionMs": "259200000"`) {
		t.Errorf("JSON does not use the REST field names:\n%s", buf.String())
	}
	var got loopgatev1.Loop
	if err := protojson.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("output is not protojson: %v", err)
	}
	if !proto.Equal(&got, want) {
		t.Error("JSON output does not round-trip to the same loop")
	}
}

func TestPrintMessageYAMLIsBlockStyleKeepsOrderAndTypes(t *testing.T) {
	want := readyLoop(t)
	var buf bytes.Buffer
	if err := printMessage(&buf, FormatYAML, want); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// Block style, in proto field order: name, labels, ..., spec, status.
	if !strings.HasPrefix(out, "name: teams/growth/loops/checkout-nudge\nlabels:\n  domain: checkout\n") {
		t.Errorf("YAML does not start with name then labels in block style:\n%s", out)
	}
	if iSpec, iStatus := strings.Index(out, "\nspec:\n"), strings.Index(out, "\nstatus:\n"); iSpec < 0 || iStatus < iSpec {
		t.Errorf("YAML lost the field order of spec and status:\n%s", out)
	}
	// Converting back through JSON gives the same loop: strings that look
	// like other types ("true", int64 as strings) stayed strings.
	var v any
	if err := yaml.Unmarshal(buf.Bytes(), &v); err != nil {
		t.Fatalf("output is not YAML: %v", err)
	}
	labels := v.(map[string]any)["labels"].(map[string]any)
	if labels["flag"] != "true" {
		t.Errorf("label flag = %#v, want the string \"true\"", labels["flag"])
	}
	spec := v.(map[string]any)["spec"].(map[string]any)
	if spec["retentionMs"] != "259200000" {
		t.Errorf("retentionMs = %#v, want the protojson string \"259200000\"", spec["retentionMs"])
	}
	def := spec["streams"].([]any)[0].(map[string]any)["schema"].(map[string]any)["definition"].(string)
	if def != want.GetSpec().GetStreams()[0].GetSchema().GetDefinition() {
		t.Errorf("schema definition changed through YAML: %q", def)
	}
}

func TestPrintLoopList(t *testing.T) {
	pending := &loopgatev1.Loop{Name: "teams/risk/loops/fraud-signals", Generation: 1,
		Spec:   &loopgatev1.LoopSpec{Residency: "eu", Classification: "confidential", Streams: []*loopgatev1.Stream{{Name: "a"}}},
		Status: &loopgatev1.LoopStatus{State: loopgatev1.Loop_PENDING_APPROVAL}}
	lagging := readyLoop(t)
	lagging.Generation = 3 // status still describes generation 2
	var buf bytes.Buffer
	if err := printLoopList(&buf, []*loopgatev1.Loop{readyLoop(t), pending, lagging}, testNow); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 rows:\n%s", buf.String())
	}
	wantRows := [][]string{
		{"NAME", "TEAM", "STATE", "REGION", "CLASSIFICATION", "TOPICS", "AGE"},
		{"checkout-nudge", "growth", "READY", "eu", "pii", "2", "3h"},
		{"fraud-signals", "risk", "PENDING_APPROVAL", "eu", "confidential", "1", "-"},
		{"checkout-nudge", "growth", "READY*", "eu", "pii", "2", "3h"},
	}
	for i, want := range wantRows {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %d = %q, want %q", i, got, want)
		}
	}
}

func TestPrintLoopDetails(t *testing.T) {
	var buf bytes.Buffer
	if err := printLoopDetails(&buf, readyLoop(t), testNow); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"Name:            teams/growth/loops/checkout-nudge",
		"Retention:       3d",
		"SLO:             p99 2s, freshness 30s",
		"Throughput:      2MiB/s steady, peak ×3, records of 600B",
		"events (12 partitions, avro BACKWARD)",
		"actions (partitions derived, avro",
		"Labels:          domain=checkout, flag=true",
		"Policy: ALLOWED (bundle b7)",
		"warning  FRESHNESS_LOOSER_THAN_LATENCY  spec.slo.freshness  set freshness below the latency",
		"Provisioned   True     Provisioned   2            90s   all resources exist",
		"\nStreams:\n" +
			"  STREAM              TOPIC                           CLUSTER   REGION   BOOTSTRAP\n" +
			"  events (external)   growth.checkout-nudge.events    eu-1      eu       k1:9092,k2:9092\n" +
			"  actions             growth.checkout-nudge.actions   eu-1      eu       k1:9092,k2:9092\n",
		"\nPrincipals:\n" +
			"  PRINCIPAL           PRODUCES                        CONSUMES                       GROUPS         QUOTA\n" +
			"  User:checkout-api   growth.checkout-nudge.events    -                              -              produce 6MiB/s\n" +
			"  User:nudge-engine   growth.checkout-nudge.actions   growth.checkout-nudge.events   nudge-engine   produce 6MiB/s, consume 6MiB/s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("details lack %q:\n%s", want, out)
		}
	}
	// The new sections come after the loop's fields and before its policy.
	if i, j, k := strings.Index(out, "Etag:"), strings.Index(out, "\nStreams:\n"), strings.Index(out, "\nPolicy:"); !(i < j && j < k) {
		t.Errorf("sections out of order:\n%s", out)
	}
}

func TestPrintLoopDetailsWithoutConnectionInfo(t *testing.T) {
	l := readyLoop(t)
	l.Status.Streams, l.Status.Principals = nil, nil
	var buf bytes.Buffer
	if err := printLoopDetails(&buf, l, testNow); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "\nStreams:\n") || strings.Contains(buf.String(), "Principals:") {
		t.Errorf("empty sections printed:\n%s", buf.String())
	}
}

func TestPrintLoopDetailsEscapesTerminalSequences(t *testing.T) {
	l := readyLoop(t)
	l.Spec.Description = "nudge\x1b]0;pwned\x07 shoppers\x1b[2J\nnow \u202eevil"
	l.Status.Conditions[0].Message = "bad\x1b[31mred"
	l.Status.Streams[0].Stream = "ev\u009bents"
	l.Status.Policy.Warn[0].Msg = "warn\x1b[1A"
	var buf bytes.Buffer
	if err := printLoopDetails(&buf, l, testNow); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.ContainsAny(out, "\x1b\x07\u009b\u202e") {
		t.Errorf("raw control characters reached the terminal:\n%q", out)
	}
	for _, want := range []string{
		`Description:     nudge\x1b]0;pwned\x07 shoppers\x1b[2J now \u202eevil` + "\n",
		`bad\x1b[31mred`, `ev\u009bents (external)`, `warn\x1b[1A`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("details lack %q:\n%s", want, out)
		}
	}
}

func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ünïcödé ✓": "plain text, ünïcödé ✓",
		"a\tb\nc\rd":            "a b c d",
		"\x1b[31mred\x1b[0m":    `\x1b[31mred\x1b[0m`,
		"bell\x07 del\x7f":      `bell\x07 del\x7f`,
		"csi\u009b1m":           `csi\u009b1m`,
		"rtl\u202eoverride":     `rtl\u202eoverride`,
		"bad\xffbyte":           `bad\xffbyte`,
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrintPlan(t *testing.T) {
	plan := &loopgatev1.PlanLoopResponse{
		Operation: loopgatev1.PlanLoopResponse_UPDATE,
		Cluster:   "eu-1",
		Verdict: &loopgatev1.PolicyVerdict{Allowed: true, DecisionId: "dec_9", BundleRevision: "b7",
			Warn:     []*loopgatev1.Violation{{Id: "W1", Field: "spec.slo.freshness", Msg: "looser than latency"}},
			Approval: []*loopgatev1.Violation{{Id: "LATENCY_BELOW_FLOOR", Field: "spec.slo.latencyP99", Msg: "a reviewer must approve"}}},
		Changes: []*loopgatev1.PlannedChange{
			{Kind: "AddPartitions", Resource: "topic growth.checkout-nudge.events", Current: "partitions=6", Desired: "partitions=12"},
			{Kind: "CreateACL", Resource: "acl User:x READ TOPIC t", Current: "absent", Desired: "present"},
		},
	}
	var buf bytes.Buffer
	if err := printPlan(&buf, "teams/growth/loops/checkout-nudge", plan); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"teams/growth/loops/checkout-nudge: UPDATE on cluster eu-1\n",
		"  verdict: ALLOWED, NEEDS APPROVAL (decision dec_9, bundle b7)\n",
		"  warning         W1                   spec.slo.freshness   looser than latency\n",
		"  needs approval  LATENCY_BELOW_FLOOR  spec.slo.latencyP99  a reviewer must approve\n",
		"  2 resource change(s), made once a reviewer approves:\n",
		"  KIND            RESOURCE                             CURRENT        DESIRED\n",
		"  AddPartitions   topic growth.checkout-nudge.events   partitions=6   partitions=12\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}

	buf.Reset()
	noop := &loopgatev1.PlanLoopResponse{Operation: loopgatev1.PlanLoopResponse_NOOP, Verdict: &loopgatev1.PolicyVerdict{Allowed: true}}
	if err := printPlan(&buf, "teams/a/loops/b", noop); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "NOOP") || !strings.Contains(buf.String(), "no resource changes") {
		t.Errorf("no-op plan:\n%s", buf.String())
	}
}

func TestVerdictLine(t *testing.T) {
	v := []*loopgatev1.Violation{{Id: "X"}}
	for _, tc := range []struct {
		v    *loopgatev1.PolicyVerdict
		want string
	}{
		{&loopgatev1.PolicyVerdict{Allowed: true}, "ALLOWED"},
		{&loopgatev1.PolicyVerdict{Allowed: true, Warn: v}, "ALLOWED"},
		{&loopgatev1.PolicyVerdict{Allowed: true, Approval: v}, "ALLOWED, NEEDS APPROVAL"},
		{&loopgatev1.PolicyVerdict{Allowed: false, Deny: v, Approval: v}, "DENIED"},
		{nil, "DENIED"}, // no verdict is no permission
	} {
		if got := verdictLine(tc.v); got != tc.want {
			t.Errorf("verdictLine(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestPrintAuditEventsAndVerify(t *testing.T) {
	var buf bytes.Buffer
	err := printAuditEvents(&buf, []*loopgatev1.AuditEvent{{
		Seq: 4, Time: timestamppb.New(testNow), Actor: "ana@example.com", Action: "loop.create",
		Resource: "teams/growth/loops/checkout-nudge", Outcome: "DENIED", DecisionId: "dec_1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	row := strings.Fields(strings.Split(buf.String(), "\n")[1])
	want := "4 2026-11-26T12:00:00Z ana@example.com loop.create teams/growth/loops/checkout-nudge DENIED dec_1"
	if strings.Join(row, " ") != want {
		t.Errorf("audit row = %q, want %q", row, want)
	}

	buf.Reset()
	printVerify(&buf, &loopgatev1.VerifyAuditChainResponse{Ok: true, EventsChecked: 12})
	if buf.String() != "OK: audit chain intact, 12 event(s) verified\n" {
		t.Errorf("verify ok = %q", buf.String())
	}
	buf.Reset()
	printVerify(&buf, &loopgatev1.VerifyAuditChainResponse{EventsChecked: 7,
		FirstBroken: &loopgatev1.BrokenLink{Seq: 5, Id: "ev_5", Reason: "hash mismatch"}})
	if !strings.HasPrefix(buf.String(), "BROKEN: event 5 (id ev_5): hash mismatch\n") {
		t.Errorf("verify broken = %q", buf.String())
	}
}

func TestPrintClusters(t *testing.T) {
	var buf bytes.Buffer
	if err := printClusters(&buf, []*loopgatev1.Cluster{{Name: "eu-1", Region: "eu", BootstrapServers: []string{"a:9092", "b:9092"}, ReplicationFactor: 3}}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(strings.Split(buf.String(), "\n")[1]); strings.Join(got, " ") != "eu-1 eu a:9092,b:9092 3 -" {
		t.Errorf("cluster row = %q", got)
	}

	buf.Reset()
	pass := &loopgatev1.DriftPass{
		StartTime: timestamppb.New(testNow), Duration: durationpb.New(1234567 * time.Microsecond),
		Loops: 10000, Drifted: 1, DriftedLoops: []string{"teams/growth/loops/x\x1b[2J"}, Unsettled: 3,
	}
	if err := printClusters(&buf, []*loopgatev1.Cluster{{Name: "eu-1", Region: "eu", ReplicationFactor: 3, LastDriftPass: pass}}); err != nil {
		t.Fatal(err)
	}
	want := `1.235s: 10000 loops, 1 drifted (teams/growth/loops/x\x1b[2J), 3 converging`
	if !strings.Contains(buf.String(), want) {
		t.Errorf("cluster row with a drift pass = %q, want it to contain %q", buf.String(), want)
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second: "45s", 12 * time.Minute: "12m", 5 * time.Hour: "5h", 72 * time.Hour: "3d",
	} {
		if got := age(timestamppb.New(testNow.Add(-d)), testNow); got != want {
			t.Errorf("age(%s) = %q, want %q", d, got, want)
		}
	}
	if got := age(nil, testNow); got != "-" {
		t.Errorf("age(nil) = %q", got)
	}
}

func TestCheckFormat(t *testing.T) {
	for _, ok := range []string{"table", "json", "yaml"} {
		if err := checkFormat(ok); err != nil {
			t.Errorf("checkFormat(%q): %v", ok, err)
		}
	}
	if err := checkFormat("xml"); err == nil || !strings.Contains(err.Error(), "table, json or yaml") {
		t.Errorf("checkFormat(xml) = %v", err)
	}
}
