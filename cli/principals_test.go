package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

var issueTime = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func nudgeEngine() *loopgatev1.Principal {
	return &loopgatev1.Principal{
		Name: "teams/growth/principals/nudge-engine", KafkaPrincipal: "User:nudge-engine", Team: "growth",
		Etag: "e1", CreateTime: timestamppb.New(issueTime.Add(-time.Hour)), CreatedBy: "ana",
		Origin: "loop", ClaimedBy: "teams/growth/loops/checkout-nudge",
		Loops: []string{"teams/growth/loops/checkout-nudge", "teams/growth/loops/cart-rescue"},
		Credential: &loopgatev1.CredentialInfo{
			Mechanism: "SCRAM-SHA-512", Clusters: []string{"eu-embedded"},
			IssueTime: timestamppb.New(issueTime), IssuedBy: "ana",
			RotateTime: timestamppb.New(issueTime.Add(24 * time.Hour)), RotatedBy: "bo", Rotations: 2,
		},
	}
}

func checkoutAPI() *loopgatev1.Principal {
	return &loopgatev1.Principal{
		Name: "teams/growth/principals/checkout-api", KafkaPrincipal: "User:checkout-api", Team: "growth",
		Origin: "explicit", CreatedBy: "ana",
	}
}

// rows splits table output into lines of whitespace-separated fields.
func rows(out string) [][]string {
	var rs [][]string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		rs = append(rs, strings.Fields(l))
	}
	return rs
}

func TestPrintPrincipals(t *testing.T) {
	var buf bytes.Buffer
	if err := printPrincipals(&buf, []*loopgatev1.Principal{checkoutAPI(), nudgeEngine()}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows:\n%s", buf.String())
	}
	for i, want := range []string{
		"PRINCIPAL TEAM ORIGIN LOOPS CREDENTIAL",
		"User:checkout-api growth explicit - -",
		"User:nudge-engine growth loop growth/checkout-nudge growth/checkout-nudge,growth/cart-rescue " +
			"SCRAM-SHA-512 on eu-embedded, issued 2026-11-30 10:00 by ana, rotated 2×",
	} {
		if got := strings.Join(strings.Fields(lines[i]), " "); got != want {
			t.Errorf("line %d = %q\nwant      %q", i, got, want)
		}
	}
	// Columns line up: every row has its LOOPS where the header has it.
	col := strings.Index(lines[0], "LOOPS")
	if !strings.HasPrefix(lines[2][col:], "growth/checkout-nudge,") {
		t.Errorf("LOOPS column not aligned:\n%s", buf.String())
	}
}

func TestCredentialString(t *testing.T) {
	for _, tc := range []struct {
		c    *loopgatev1.CredentialInfo
		want string
	}{
		{nil, "-"},
		{&loopgatev1.CredentialInfo{Mechanism: "SCRAM-SHA-256", Clusters: []string{"eu-1", "eu-2"}, IssueTime: timestamppb.New(issueTime), IssuedBy: "ana"},
			"SCRAM-SHA-256 on eu-1,eu-2, issued 2026-11-30 10:00 by ana"},
		{nudgeEngine().Credential, "SCRAM-SHA-512 on eu-embedded, issued 2026-11-30 10:00 by ana, rotated 2×"},
	} {
		if got := credentialString(tc.c); got != tc.want {
			t.Errorf("credentialString = %q, want %q", got, tc.want)
		}
	}
}

func TestOriginString(t *testing.T) {
	for _, tc := range []struct{ origin, claimedBy, want string }{
		{"explicit", "", "explicit"},
		{"loop", "teams/growth/loops/checkout-nudge", "loop growth/checkout-nudge"},
		{"migration", "teams/risk/loops/fraud-signals", "migration risk/fraud-signals"},
		{"", "", ""},
	} {
		if got := originString(tc.origin, tc.claimedBy); got != tc.want {
			t.Errorf("originString(%q, %q) = %q, want %q", tc.origin, tc.claimedBy, got, tc.want)
		}
	}
}

func TestPrintGroups(t *testing.T) {
	var buf bytes.Buffer
	err := printGroups(&buf, []*loopgatev1.ConsumerGroup{
		{Name: "teams/growth/groups/nudge-engine", GroupId: "nudge-engine", Team: "growth", Origin: "loop",
			ClaimedBy: "teams/growth/loops/checkout-nudge", CreateTime: timestamppb.New(issueTime), CreatedBy: "ana"},
		{Name: "teams/risk/groups/scorer", Team: "risk", Origin: "explicit"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := rows(buf.String())
	want := [][]string{
		{"GROUP", "TEAM", "ORIGIN", "CREATED"},
		{"nudge-engine", "growth", "loop", "growth/checkout-nudge", "2026-11-30", "10:00", "by", "ana"},
		{"scorer", "risk", "explicit", "-"},
	}
	if len(got) != len(want) {
		t.Fatalf("groups table:\n%s", buf.String())
	}
	for i := range want {
		if strings.Join(got[i], " ") != strings.Join(want[i], " ") {
			t.Errorf("row %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func conflictFixture() []*loopgatev1.OwnershipConflict {
	return []*loopgatev1.OwnershipConflict{
		{Kind: "principal", Id: "shared-api", Owner: "growth", Loops: []string{"teams/risk/loops/fraud-signals"}},
		{Kind: "group", Id: "analytics", Owner: "data", Loops: []string{"teams/ops/loops/a", "teams/ops/loops/b"}},
	}
}

func TestPrintConflicts(t *testing.T) {
	var buf bytes.Buffer
	if err := printConflicts(&buf, conflictFixture()); err != nil {
		t.Fatal(err)
	}
	got := rows(buf.String())
	want := []string{
		"KIND NAME OWNER LOOPS OF OTHER TEAMS",
		"principal shared-api growth risk/fraud-signals",
		"group analytics data ops/a,ops/b",
	}
	for i := range want {
		if strings.Join(got[i], " ") != want[i] {
			t.Errorf("row %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestConflictsOfKeepsThoseTheTeamIsPartOf(t *testing.T) {
	all := conflictFixture()
	ids := func(cs []*loopgatev1.OwnershipConflict) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.GetId())
		}
		return strings.Join(s, ",")
	}
	for team, want := range map[string]string{
		"":       "shared-api,analytics",
		"growth": "shared-api", // as the owner
		"risk":   "shared-api", // with a loop naming it
		"ops":    "analytics",
		"other":  "",
	} {
		if got := ids(conflictsOf(all, team)); got != want {
			t.Errorf("conflictsOf(%q) = %q, want %q", team, got, want)
		}
	}
}

func TestOptionalTeam(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		ok   bool
	}{
		{nil, "", true},
		{[]string{"growth"}, "growth", true},
		{[]string{"teams/growth"}, "growth", true},
		{[]string{"growth/x"}, "", false},
		{[]string{"-"}, "", false},
	} {
		got, err := optionalTeam(tc.args)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("optionalTeam(%q) = %q, %v", tc.args, got, err)
		}
	}
	if teamParent("") != "teams/-" || teamParent("growth") != "teams/growth" {
		t.Error("teamParent")
	}
}

func TestPrincipalsCommandPagesThroughEveryTeam(t *testing.T) {
	f := &fakeServer{principalPages: []*loopgatev1.ListPrincipalsResponse{
		{Principals: []*loopgatev1.Principal{checkoutAPI()}, NextPageToken: "p2"},
		{Principals: []*loopgatev1.Principal{nudgeEngine()}},
	}}
	f.start(t)
	code, stdout, stderr := run(t, "principals", "--as", "growth")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	reqs := sent[*loopgatev1.ListPrincipalsRequest](f)
	if len(reqs) != 2 || reqs[0].GetParent() != "teams/-" || reqs[1].GetPageToken() != "p2" || reqs[0].GetPageSize() != listPageSize {
		t.Errorf("requests = %v", reqs)
	}
	if f.tokens[0] != "Bearer growth-token" {
		t.Errorf("token = %q, want the one of --as growth", f.tokens[0])
	}
	if !strings.Contains(stdout, "User:checkout-api") || !strings.Contains(stdout, "User:nudge-engine") {
		t.Errorf("stdout lacks a page:\n%s", stdout)
	}
}

func TestPrincipalsCommandJSONAndTeam(t *testing.T) {
	f := &fakeServer{principalPages: []*loopgatev1.ListPrincipalsResponse{{Principals: []*loopgatev1.Principal{nudgeEngine()}}}}
	f.start(t)
	code, stdout, stderr := run(t, "principals", "growth", "-o", "json", "--token", "tok")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := sent[*loopgatev1.ListPrincipalsRequest](f)[0].GetParent(); got != "teams/growth" {
		t.Errorf("parent = %q", got)
	}
	if f.tokens[0] != "Bearer tok" {
		t.Errorf("token = %q, want --token's", f.tokens[0])
	}
	var resp loopgatev1.ListPrincipalsResponse
	if err := protojson.Unmarshal([]byte(stdout), &resp); err != nil || len(resp.GetPrincipals()) != 1 {
		t.Errorf("stdout is not a ListPrincipalsResponse (%v):\n%s", err, stdout)
	}
}

func TestPrincipalsConflictsCommand(t *testing.T) {
	f := &fakeServer{conflicts: &loopgatev1.ListOwnershipConflictsResponse{}}
	f.start(t)
	code, stdout, _ := run(t, "principals", "--conflicts")
	if code != 0 || stdout != "no ownership conflicts\n" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	f.conflicts = &loopgatev1.ListOwnershipConflictsResponse{Conflicts: conflictFixture()}
	code, stdout, _ = run(t, "principals", "risk", "--conflicts")
	if code != 0 || !strings.Contains(stdout, "shared-api") || strings.Contains(stdout, "analytics") {
		t.Errorf("exit %d, conflicts of risk:\n%s", code, stdout)
	}
}

func TestGroupsCommand(t *testing.T) {
	f := &fakeServer{groupPages: []*loopgatev1.ListConsumerGroupsResponse{
		{Groups: []*loopgatev1.ConsumerGroup{{GroupId: "a", Team: "growth"}}, NextPageToken: "n"},
		{Groups: []*loopgatev1.ConsumerGroup{{GroupId: "b", Team: "growth"}}},
	}}
	f.start(t)
	code, stdout, stderr := run(t, "groups", "growth")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	reqs := sent[*loopgatev1.ListConsumerGroupsRequest](f)
	if len(reqs) != 2 || reqs[0].GetParent() != "teams/growth" || reqs[1].GetPageToken() != "n" {
		t.Errorf("requests = %v", reqs)
	}
	if got := rows(stdout); len(got) != 3 || got[1][0] != "a" || got[2][0] != "b" {
		t.Errorf("groups:\n%s", stdout)
	}
}
