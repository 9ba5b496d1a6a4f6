package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// The precedence documented on ResolveConn: flags beat the environment,
// which beats the token `loopctl login` stored for the resolved server,
// which beats the dev credentials file, which beats the default.
func TestResolveConnPrecedence(t *testing.T) {
	const (
		credsPath = "/home/x/.loopgate/dev-credentials.json"
		hostsPath = "/home/x/.loopgate/hosts.json"
		login     = "loopctl login (" + hostsPath + ")"
	)
	creds := &DevCredentials{
		Server: "127.0.0.1:9999",
		Token:  "file-admin",
		Tokens: map[string]string{"admin": "file-admin", "growth": "file-growth"},
	}
	expiry := time.Date(2026, 11, 30, 10, 42, 0, 0, time.UTC)
	hosts := &Hosts{Servers: map[string]HostEntry{
		"127.0.0.1:9999": {Token: "stored-local", Subject: "alice", Expiry: "2026-11-30T10:42:00Z"},
		"env-host:7070":  {Token: "stored-env-host"},
		"flag-host:1":    {Token: "stored-flag-host"},
	}}
	env := envOf(map[string]string{EnvServer: "env-host:7070", EnvToken: "env-token"})
	envServerOnly := envOf(map[string]string{EnvServer: "env-host:7070"})
	noEnv := envOf(nil)

	tests := []struct {
		name        string
		flags       ConnFlags
		getenv      func(string) string
		hosts       *Hosts
		creds       *DevCredentials
		wantServer  string
		wantSSource string
		wantToken   string
		wantTSource string
		wantStored  bool
	}{
		{"flags win", ConnFlags{Server: "flag-host:1", Token: "flag-token"}, env, hosts, creds,
			"flag-host:1", "--server", "flag-token", "--token", false},
		{"--token beats --as", ConnFlags{Token: "flag-token", As: "growth"}, env, hosts, creds,
			"env-host:7070", "$LOOPGATE_SERVER", "flag-token", "--token", false},
		{"--as picks a demo token and beats the environment and the login", ConnFlags{As: "growth"}, env, hosts, creds,
			"env-host:7070", "$LOOPGATE_SERVER", "file-growth", "--as growth", false},
		{"environment beats the login and the file", ConnFlags{}, env, hosts, creds,
			"env-host:7070", "$LOOPGATE_SERVER", "env-token", "$LOOPGATE_TOKEN", false},
		{"login of the server given by --server", ConnFlags{Server: "flag-host:1"}, noEnv, hosts, creds,
			"flag-host:1", "--server", "stored-flag-host", login, true},
		{"login of the server given by $LOOPGATE_SERVER", ConnFlags{}, envServerOnly, hosts, creds,
			"env-host:7070", "$LOOPGATE_SERVER", "stored-env-host", login, true},
		{"login beats the dev credentials token for the file's server", ConnFlags{}, noEnv, hosts, creds,
			"127.0.0.1:9999", credsPath, "stored-local", login, true},
		{"a login for another server is not used", ConnFlags{Server: "elsewhere:7070"}, noEnv, hosts, creds,
			"elsewhere:7070", "--server", "file-admin", credsPath, false},
		{"a login of the default server without a file", ConnFlags{}, noEnv,
			&Hosts{Servers: map[string]HostEntry{DefaultServer: {Token: "stored-default"}}}, nil,
			DefaultServer, "default", "stored-default", login, true},
		{"file when nothing else", ConnFlags{}, noEnv, nil, creds,
			"127.0.0.1:9999", credsPath, "file-admin", credsPath, false},
		{"default server and no token without files", ConnFlags{}, noEnv, nil, nil,
			DefaultServer, "default", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ResolveConn(tc.flags, tc.getenv, tc.hosts, hostsPath, tc.creds, credsPath)
			if err != nil {
				t.Fatalf("ResolveConn: %v", err)
			}
			if c.Server != tc.wantServer || c.ServerSource != tc.wantSSource {
				t.Errorf("server = %q from %q, want %q from %q", c.Server, c.ServerSource, tc.wantServer, tc.wantSSource)
			}
			if c.Token != tc.wantToken || c.TokenSource != tc.wantTSource {
				t.Errorf("token = %q from %q, want %q from %q", c.Token, c.TokenSource, tc.wantToken, tc.wantTSource)
			}
			if c.StoredLogin != tc.wantStored {
				t.Errorf("StoredLogin = %v, want %v", c.StoredLogin, tc.wantStored)
			}
		})
	}

	// The stored expiry comes along, for PrintError.
	c, _ := ResolveConn(ConnFlags{}, noEnv, hosts, hostsPath, creds, credsPath)
	if !c.TokenExpiry.Equal(expiry) {
		t.Errorf("TokenExpiry = %v, want %v", c.TokenExpiry, expiry)
	}
}

func TestResolveConnAsNamesKnownIdentitiesWhenUnknown(t *testing.T) {
	creds := &DevCredentials{Tokens: map[string]string{"reviewer": "r", "admin": "a"}}
	_, err := ResolveConn(ConnFlags{As: "nobody"}, envOf(nil), nil, "/h.json", creds, "/c.json")
	if err == nil {
		t.Fatal("ResolveConn accepted an unknown --as identity")
	}
	if !strings.Contains(err.Error(), "known: admin, reviewer") {
		t.Errorf("error %q does not list the known identities in order", err)
	}

	_, err = ResolveConn(ConnFlags{As: "admin"}, envOf(nil), nil, "/h.json", nil, "/c.json")
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
