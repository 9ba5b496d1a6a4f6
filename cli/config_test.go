package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// The precedence documented on ResolveConn: flags beat the environment,
// which beats the dev credentials file, which beats the default.
func TestResolveConnPrecedence(t *testing.T) {
	creds := &DevCredentials{
		Server: "127.0.0.1:9999",
		Token:  "file-admin",
		Tokens: map[string]string{"admin": "file-admin", "growth": "file-growth"},
	}
	env := envOf(map[string]string{EnvServer: "env-host:7070", EnvToken: "env-token"})
	noEnv := envOf(nil)

	tests := []struct {
		name        string
		flags       ConnFlags
		getenv      func(string) string
		creds       *DevCredentials
		wantServer  string
		wantSSource string
		wantToken   string
		wantTSource string
	}{
		{"flags win", ConnFlags{Server: "flag-host:1", Token: "flag-token"}, env, creds,
			"flag-host:1", "--server", "flag-token", "--token"},
		{"--token beats --as", ConnFlags{Token: "flag-token", As: "growth"}, env, creds,
			"env-host:7070", "$LOOPGATE_SERVER", "flag-token", "--token"},
		{"--as picks a demo token and beats the environment", ConnFlags{As: "growth"}, env, creds,
			"env-host:7070", "$LOOPGATE_SERVER", "file-growth", "--as growth"},
		{"environment beats the file", ConnFlags{}, env, creds,
			"env-host:7070", "$LOOPGATE_SERVER", "env-token", "$LOOPGATE_TOKEN"},
		{"file when nothing else", ConnFlags{}, noEnv, creds,
			"127.0.0.1:9999", "/home/x/.loopgate/dev-credentials.json", "file-admin", "/home/x/.loopgate/dev-credentials.json"},
		{"default server and no token without a file", ConnFlags{}, noEnv, nil,
			DefaultServer, "default", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ResolveConn(tc.flags, tc.getenv, tc.creds, "/home/x/.loopgate/dev-credentials.json")
			if err != nil {
				t.Fatalf("ResolveConn: %v", err)
			}
			if c.Server != tc.wantServer || c.ServerSource != tc.wantSSource {
				t.Errorf("server = %q from %q, want %q from %q", c.Server, c.ServerSource, tc.wantServer, tc.wantSSource)
			}
			if c.Token != tc.wantToken || c.TokenSource != tc.wantTSource {
				t.Errorf("token = %q from %q, want %q from %q", c.Token, c.TokenSource, tc.wantToken, tc.wantTSource)
			}
		})
	}
}

func TestResolveConnAsNamesKnownIdentitiesWhenUnknown(t *testing.T) {
	creds := &DevCredentials{Tokens: map[string]string{"reviewer": "r", "admin": "a"}}
	_, err := ResolveConn(ConnFlags{As: "nobody"}, envOf(nil), creds, "/c.json")
	if err == nil {
		t.Fatal("ResolveConn accepted an unknown --as identity")
	}
	if !strings.Contains(err.Error(), "known: admin, reviewer") {
		t.Errorf("error %q does not list the known identities in order", err)
	}

	_, err = ResolveConn(ConnFlags{As: "admin"}, envOf(nil), nil, "/c.json")
	if err == nil || !strings.Contains(err.Error(), "no dev credentials file at /c.json") {
		t.Errorf("--as without a credentials file: error %v, want it to name the missing file", err)
	}
}

func TestReadDevCredentials(t *testing.T) {
	dir := t.TempDir()

	got, err := ReadDevCredentials(filepath.Join(dir, "absent.json"))
	if err != nil || got != nil {
		t.Fatalf("missing file: got %v, %v; want nil, nil", got, err)
	}

	path := filepath.Join(dir, "dev-credentials.json")
	// The shape the embedded server writes (server/devcreds.go).
	content := `{"server":"127.0.0.1:7070","token":"lg_dev_admin_x","tokens":{"admin":"lg_dev_admin_x","growth":"lg_dev_growth_y"}}`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = ReadDevCredentials(path)
	if err != nil {
		t.Fatalf("ReadDevCredentials: %v", err)
	}
	if got.Server != "127.0.0.1:7070" || got.Token != "lg_dev_admin_x" || got.Tokens["growth"] != "lg_dev_growth_y" {
		t.Errorf("read %+v", got)
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDevCredentials(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("malformed file: error %v, want one naming %s", err, path)
	}
}

func TestParseLoopRef(t *testing.T) {
	for in, want := range map[string]string{
		"growth/checkout-nudge":             "teams/growth/loops/checkout-nudge",
		"teams/growth/loops/checkout-nudge": "teams/growth/loops/checkout-nudge",
	} {
		got, err := parseLoopRef(in)
		if err != nil || got != want {
			t.Errorf("parseLoopRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "checkout-nudge", "growth/", "/x", "a/b/c", "teams/growth/topics/x"} {
		if _, err := parseLoopRef(bad); err == nil {
			t.Errorf("parseLoopRef(%q) accepted a malformed reference", bad)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7070":           true,
		"localhost:7070":           true,
		"[::1]:7070":               true,
		"loopgate.example.com:443": false,
		"10.0.0.1:7070":            false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
