package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rest is a minimal JSON client for the grpc-gateway REST surface.
type rest struct {
	t     *testing.T
	base  string
	token string
}

func (c rest) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, "http://"+c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		c.t.Fatalf("%s %s: response is not JSON: %v", method, path, err)
	}
	return resp.StatusCode, m
}

// detail returns the first error detail of the given @type suffix.
func detail(m map[string]any, typ string) map[string]any {
	ds, _ := m["details"].([]any)
	for _, d := range ds {
		dm, _ := d.(map[string]any)
		if s, _ := dm["@type"].(string); strings.HasSuffix(s, typ) {
			return dm
		}
	}
	return nil
}

func restLoop(residency string, retentionMs int64, owners []string) map[string]any {
	return map[string]any{
		"labels": map[string]string{"domain": "checkout"},
		"spec": map[string]any{
			"owners": owners, "classification": "pii", "residency": residency,
			"retentionMs": fmt.Sprint(retentionMs),
			"slo":         map[string]any{"latencyP99Ms": "2000"},
			"throughput":  map[string]any{"bytesPerSecond": "1048576", "peakFactor": 2},
			"streams": []any{map[string]any{"name": "events", "partitions": 6, "schema": map[string]any{
				"format": "avro", "definition": `{"type":"record","name":"E","fields":[{"name":"u","type":"string"}]}`}}},
			"producers": []any{map[string]any{"principal": "User:rest-api", "streams": []string{"events"}}},
			"consumers": []any{map[string]any{"principal": "User:rest-worker", "group": "rest-worker", "streams": []string{"events"}}},
		},
	}
}

// TestRESTLifecycle runs the lifecycle over REST (grpc-gateway) and checks
// that errors carry the same details as over gRPC: ErrorInfo reasons,
// field violations, policy violations; etag mismatch is ABORTED (409).
func TestRESTLifecycle(t *testing.T) {
	home := t.TempDir()
	srv := startServer(t, home, filepath.Join(t.TempDir(), "data"))
	c := rest{t: t, base: srv.REST, token: devToken(t, home, "growth")}

	// No token: 401 with ErrorInfo UNAUTHENTICATED.
	anon := rest{t: t, base: srv.REST}
	code, body := anon.do("GET", "/v1/teams/growth/loops", nil)
	if code != http.StatusUnauthorized || detail(body, "ErrorInfo")["reason"] != "UNAUTHENTICATED" {
		t.Errorf("anonymous list: %d %v", code, body)
	}

	// Invalid: every field problem at once, 400 with BadRequest.
	bad := restLoop("eu", 0, nil)
	code, body = c.do("POST", "/v1/teams/growth/loops?loopId=Bad_Name", bad)
	br := detail(body, "BadRequest")
	if code != http.StatusBadRequest || br == nil {
		t.Fatalf("invalid create: %d %v", code, body)
	}
	fields := map[string]bool{}
	for _, v := range br["fieldViolations"].([]any) {
		fields[v.(map[string]any)["field"].(string)] = true
	}
	for _, f := range []string{"metadata.name", "spec.owners", "spec.retention"} {
		if !fields[f] {
			t.Errorf("invalid create: no violation for %s in %v", f, fields)
		}
	}

	// Denied: 400 (FAILED_PRECONDITION) with every policy violation.
	code, body = c.do("POST", "/v1/teams/growth/loops?loopId=pii-us", restLoop("us", 60*86400000, []string{"ana@example.com"}))
	ei := detail(body, "ErrorInfo")
	pf := detail(body, "PreconditionFailure")
	if code != http.StatusBadRequest || ei["reason"] != "POLICY_DENIED" || pf == nil {
		t.Fatalf("denied create: %d %v", code, body)
	}
	ids := map[string]string{}
	for _, v := range pf["violations"].([]any) {
		vm := v.(map[string]any)
		ids[vm["type"].(string)] = vm["subject"].(string)
	}
	if ids["PII_RESIDENCY"] != "spec.residency" || ids["PII_RETENTION_TOO_LONG"] != "spec.retention" {
		t.Errorf("denied create violations = %v", ids)
	}
	if md, _ := ei["metadata"].(map[string]any); md["decision_id"] == "" || md["bundle_revision"] == "" {
		t.Errorf("denial lacks decision id / bundle revision: %v", ei)
	}

	// Create, then wait for READY.
	code, body = c.do("POST", "/v1/teams/growth/loops?loopId=rest-loop&requestId=req-1", restLoop("eu", 86400000, []string{"ana@example.com"}))
	if code != http.StatusOK {
		t.Fatalf("create: %d %v", code, body)
	}
	uid := body["uid"]
	// A retry with the same request id returns the same loop, not a conflict.
	code, body = c.do("POST", "/v1/teams/growth/loops?loopId=rest-loop&requestId=req-1", restLoop("eu", 86400000, []string{"ana@example.com"}))
	if code != http.StatusOK || body["uid"] != uid {
		t.Errorf("retry with the same request id: %d %v", code, body)
	}
	// Without a request id, a second create conflicts.
	code, body = c.do("POST", "/v1/teams/growth/loops?loopId=rest-loop", restLoop("eu", 86400000, []string{"ana@example.com"}))
	if code != http.StatusConflict || detail(body, "ErrorInfo")["reason"] != "LOOP_ALREADY_EXISTS" {
		t.Errorf("duplicate create: %d %v", code, body)
	}
	var loop map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, loop = c.do("GET", "/v1/teams/growth/loops/rest-loop", nil)
		if field(loop, "status", "state") == "READY" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rest-loop not READY: %v", loop["status"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	etag := loop["etag"].(string)
	if got := observe(t, srv.Clusters["eu"], "growth.rest-loop."); got.Partitions["growth.rest-loop.events"] != 6 {
		t.Errorf("topic after REST create: %v", got.Partitions)
	}

	// Update with a stale etag: 409 ABORTED, nothing changed.
	patch := map[string]any{"etag": "stale", "spec": map[string]any{"retentionMs": "43200000"}}
	code, body = c.do("PATCH", "/v1/teams/growth/loops/rest-loop?updateMask=spec.retention_ms", patch)
	if code != http.StatusConflict || detail(body, "ErrorInfo")["reason"] != "ETAG_MISMATCH" {
		t.Errorf("stale etag update: %d %v", code, body)
	}
	// With the right etag: only retention changes.
	patch["etag"] = etag
	code, body = c.do("PATCH", "/v1/teams/growth/loops/rest-loop?updateMask=spec.retention_ms", patch)
	if code != http.StatusOK || field(body, "spec", "retentionMs") != "43200000" || body["generation"] != "2" {
		t.Fatalf("update: %d %v", code, body)
	}
	if owners := field(body, "spec", "owners").([]any); len(owners) != 1 {
		t.Errorf("masked update touched other fields: owners %v", owners)
	}

	// Another team's token may not delete it (403), ours may.
	risk := rest{t: t, base: srv.REST, token: devToken(t, home, "risk")}
	if code, body = risk.do("DELETE", "/v1/teams/growth/loops/rest-loop", nil); code != http.StatusForbidden {
		t.Errorf("cross-team delete: %d %v", code, body)
	}
	if code, body = c.do("DELETE", "/v1/teams/growth/loops/rest-loop", nil); code != http.StatusOK || field(body, "status", "state") != "DELETING" {
		t.Fatalf("delete: %d %v", code, body)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		code, _ = c.do("GET", "/v1/teams/growth/loops/rest-loop", nil)
		if code == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("loop not gone after delete")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := observe(t, srv.Clusters["eu"], "growth.rest-loop."); len(got.Partitions) != 0 {
		t.Errorf("topics left after REST delete: %v", got.Partitions)
	}

	// The OpenAPI document is served.
	resp, err := http.Get("http://" + srv.REST + "/openapi.json")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("openapi.json: %v %v", err, resp)
	}
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc["paths"] == nil {
		t.Errorf("openapi.json is not an OpenAPI document: %v", err)
	}
	resp.Body.Close()

	// The admin sees the whole trail and it verifies.
	admin := rest{t: t, base: srv.REST, token: devToken(t, home, "admin")}
	code, body = admin.do("POST", "/v1/auditEvents:verify", map[string]any{})
	if code != http.StatusOK || body["ok"] != true {
		t.Errorf("verify: %d %v", code, body)
	}
}

// Errors raised by the REST gateway itself (bad JSON, unknown fields) carry
// an ErrorInfo and name the unknown field, like the services' own errors.
func TestRESTGatewayErrorsCarryDetails(t *testing.T) {
	home := t.TempDir()
	srv := startServer(t, home, filepath.Join(t.TempDir(), "data"))
	c := rest{t: t, base: srv.REST, token: devToken(t, home, "growth")}
	code, body := c.do("POST", "/v1/teams/growth/loops?loopId=x", map[string]any{"spec": map[string]any{"colour": "blue"}})
	br := detail(body, "BadRequest")
	if code != http.StatusBadRequest || detail(body, "ErrorInfo")["reason"] != "INVALID_REQUEST" || br == nil {
		t.Fatalf("unknown field: %d %v", code, body)
	}
	if f := br["fieldViolations"].([]any)[0].(map[string]any)["field"]; f != "colour" {
		t.Errorf("unknown field violation names %v, want colour", f)
	}
	code, body = c.do("GET", "/v1/no/such/path", nil)
	if code != http.StatusNotFound || detail(body, "ErrorInfo")["reason"] != "NOT_FOUND" {
		t.Errorf("unknown path: %d %v", code, body)
	}
}
