package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// withStdin makes os.Stdin, which Run hands to login, a file holding
// content, for the rest of the test.
func withStdin(t *testing.T, content string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	stdinAs(t, f)
}

func stdinAs(t *testing.T, f *os.File) {
	old := os.Stdin
	os.Stdin = f
	t.Cleanup(func() { os.Stdin = old; _ = f.Close() })
}

// hostsFile is $HOME/.loopgate/hosts.json of the test's HOME.
func hostsFile(t *testing.T) string {
	t.Helper()
	p, err := HostsPath()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readHostsFile decodes the hosts file and checks that it is mode 0600.
func readHostsFile(t *testing.T) Hosts {
	t.Helper()
	path := hostsFile(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var h Hosts
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("hosts file is not JSON: %v\n%s", err, raw)
	}
	return h
}

func writeHostsFile(t *testing.T, h Hosts) {
	t.Helper()
	if err := WriteHosts(hostsFile(t), &h, os.Stderr); err != nil {
		t.Fatal(err)
	}
}

func alice(expire time.Time) *loopgatev1.Caller {
	return &loopgatev1.Caller{Subject: "alice@example.com", Teams: []string{"growth", "risk"}, Roles: []string{"team-admin"},
		Method: "jwt", Issuer: "https://idp.example.com", ExpireTime: timestamppb.New(expire)}
}

func TestLoginStoresTheTokenForTheServerAndKeepsOthers(t *testing.T) {
	expire := time.Now().Add(42*time.Minute + 30*time.Second)
	f := &fakeServer{caller: alice(expire)}
	f.start(t)
	writeHostsFile(t, Hosts{Servers: map[string]HostEntry{"other:7070": {Token: "other-token", Subject: "bob"}}})
	withStdin(t, "  lg_secret_123  \nsecond line is ignored\n")

	code, stdout, stderr := run(t, "login", "--with-token")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := f.tokens; len(got) != 1 || got[0] != "Bearer lg_secret_123" {
		t.Errorf("GetCaller was sent %q, want the token of stdin, trimmed", got)
	}
	want := "Logged in to " + f.addr + " as alice@example.com (teams growth, risk, roles team-admin, token expires in 42m (at "
	if !strings.HasPrefix(stdout, want) {
		t.Errorf("stdout = %q\nwant prefix %q", stdout, want)
	}
	if strings.Contains(stdout+stderr, "lg_secret_123") {
		t.Errorf("the token was printed:\n%s%s", stdout, stderr)
	}

	h := readHostsFile(t)
	got := h.Servers[f.addr]
	if got.Token != "lg_secret_123" || got.Subject != "alice@example.com" || got.Expiry != expire.UTC().Format(time.RFC3339) {
		t.Errorf("entry = %+v", got)
	}
	if h.Servers["other:7070"].Token != "other-token" {
		t.Errorf("the other server's entry is gone: %+v", h.Servers)
	}
	dir := filepath.Dir(hostsFile(t))
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory %s: %v, mode %v; want 0700", dir, err, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".hosts-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}

	// The stored token is what the next command sends, ahead of the dev
	// credentials file's admin token.
	code, _, stderr = run(t, "whoami")
	if code != 0 {
		t.Fatalf("whoami: exit %d: %s", code, stderr)
	}
	if f.tokens[1] != "Bearer lg_secret_123" {
		t.Errorf("whoami sent %q, want the stored token", f.tokens[1])
	}
}

func TestLoginWithTokenTheServerRefusesStoresNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"refused", status.Error(codes.Unauthenticated, "unknown token"),
			[]string{"refused the token: unknown token", "nothing was stored"}},
		{"server error", status.Error(codes.Internal, "database is down"),
			[]string{"error: Internal: database is down", "nothing was stored"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeServer{err: tc.err}
			f.start(t)
			withStdin(t, "wrong-token\n")
			code, stdout, stderr := run(t, "login", "--with-token")
			if code != 1 {
				t.Fatalf("exit %d, want 1; stdout %q", code, stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, "wrong-token") {
				t.Errorf("the token was printed: %s", stderr)
			}
			if _, err := os.Stat(hostsFile(t)); !os.IsNotExist(err) {
				t.Errorf("hosts file written (%v)", err)
			}
		})
	}

	// An existing file is left exactly as it was.
	f := &fakeServer{err: status.Error(codes.Unauthenticated, "unknown token")}
	f.start(t)
	writeHostsFile(t, Hosts{Servers: map[string]HostEntry{"other:7070": {Token: "other-token"}}})
	before, _ := os.ReadFile(hostsFile(t))
	withStdin(t, "wrong-token\n")
	if code, _, _ := run(t, "login", "--with-token"); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if after, _ := os.ReadFile(hostsFile(t)); !bytes.Equal(before, after) {
		t.Errorf("hosts file changed:\n%s\nwas\n%s", after, before)
	}
}

func TestLoginRefusesBadInputBeforeAnyRPC(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stdin string // "" with device: a character device
		args  []string
		want  string
	}{
		{"empty", "\n\n", nil, "no token on standard input: pipe the token: `echo $TOKEN | loopctl login --with-token`"},
		{"too long", strings.Repeat("x", 16<<10+1), nil, "longer than 16 KiB"},
		{"not one word", "Bearer abc\n", nil, "contains spaces"},
		{"control characters", "ab\x1bc\n", nil, "control"},
		{"without --with-token", "tok\n", []string{"login"}, "needs --with-token"},
		{"with --token", "tok\n", []string{"login", "--with-token", "--token", "x"}, "drop --token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeServer{caller: alice(time.Now().Add(time.Hour))}
			f.start(t)
			withStdin(t, tc.stdin)
			args := tc.args
			if args == nil {
				args = []string{"login", "--with-token"}
			}
			code, _, stderr := run(t, args...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tc.want)
			}
			if n := len(sent[*loopgatev1.GetCallerRequest](f)); n != 0 {
				t.Errorf("%d RPCs sent", n)
			}
			if _, err := os.Stat(hostsFile(t)); !os.IsNotExist(err) {
				t.Errorf("hosts file written (%v)", err)
			}
		})
	}

	// A 16 KiB token on a line of its own is fine.
	f := &fakeServer{caller: alice(time.Now().Add(time.Hour))}
	f.start(t)
	withStdin(t, strings.Repeat("x", 16<<10)+"\n")
	if code, _, stderr := run(t, "login", "--with-token"); code != 0 {
		t.Errorf("16 KiB token: exit %d: %s", code, stderr)
	}
}

// A terminal on standard input is refused before anything is read. The
// test stands in a character device (the null device) for a terminal:
// that is what loopctl checks.
func TestLoginRefusesATerminal(t *testing.T) {
	f := &fakeServer{caller: alice(time.Now().Add(time.Hour))}
	f.start(t)
	dev, err := os.Open(os.DevNull)
	if err != nil {
		t.Skip(err)
	}
	if fi, err := dev.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Skip("the null device is no character device here")
	}
	stdinAs(t, dev)
	code, _, stderr := run(t, "login", "--with-token")
	if code != 1 || !strings.Contains(stderr, "standard input is a terminal: pipe the token: `echo $TOKEN | loopctl login --with-token`") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if len(f.requests) != 0 {
		t.Errorf("RPCs sent: %v", f.requests)
	}
}

func TestLogout(t *testing.T) {
	f := &fakeServer{}
	f.start(t)
	writeHostsFile(t, Hosts{Servers: map[string]HostEntry{
		f.addr:       {Token: "mine"},
		"other:7070": {Token: "other-token"},
	}})

	code, stdout, stderr := run(t, "logout")
	if code != 0 || !strings.Contains(stdout, "Logged out of "+f.addr) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	h := readHostsFile(t)
	if _, ok := h.Servers[f.addr]; ok || h.Servers["other:7070"].Token != "other-token" {
		t.Errorf("servers = %+v, want only other:7070", h.Servers)
	}

	code, stdout, _ = run(t, "logout")
	if code != 0 || stdout != "not logged in to "+f.addr+"\n" {
		t.Errorf("second logout: exit %d, stdout %q", code, stdout)
	}
	code, stdout, _ = run(t, "logout", "--server", "nowhere:1")
	if code != 0 || stdout != "not logged in to nowhere:1\n" {
		t.Errorf("logout of an unknown server: exit %d, stdout %q", code, stdout)
	}
	if len(f.requests) != 0 {
		t.Errorf("logout sent RPCs: %v", f.requests)
	}
}

func TestWhoamiShowsCallerExpiryAndTokenSource(t *testing.T) {
	f := &fakeServer{caller: alice(time.Now().Add(42*time.Minute + 30*time.Second))}
	f.start(t)
	writeHostsFile(t, Hosts{Servers: map[string]HostEntry{f.addr: {Token: "stored-token"}}})

	code, stdout, stderr := run(t, "whoami")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"Subject:  alice@example.com\n",
		"Teams:    growth, risk\n",
		"Roles:    team-admin\n",
		"Method:   jwt\n",
		"Issuer:   https://idp.example.com\n",
		"(expires in 42m)\n",
		"Server:   " + f.addr + " (from " + filepath.Join(os.Getenv("HOME"), ".loopgate", "dev-credentials.json") + ")\n",
		"Token:    from loopctl login (" + hostsFile(t) + ")\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if f.tokens[0] != "Bearer stored-token" {
		t.Errorf("sent %q, want the stored token", f.tokens[0])
	}

	f.caller = alice(time.Now().Add(-5*time.Minute - time.Second))
	_, stdout, _ = run(t, "whoami", "--token", "tok")
	if !strings.Contains(stdout, "(expired 5m ago)") || !strings.Contains(stdout, "Token:    from --token") {
		t.Errorf("stdout:\n%s", stdout)
	}

	f.caller = &loopgatev1.Caller{Subject: "svc\x1b[2J", Method: "token"}
	_, stdout, _ = run(t, "whoami")
	if !strings.Contains(stdout, `Subject:  svc\x1b[2J`) || !strings.Contains(stdout, "Expires:  never") || !strings.Contains(stdout, "Teams:    -") {
		t.Errorf("stdout:\n%q", stdout)
	}

	f.caller = alice(time.Now().Add(time.Hour))
	code, stdout, _ = run(t, "whoami", "-o", "json")
	var c loopgatev1.Caller
	if err := protojson.Unmarshal([]byte(stdout), &c); code != 0 || err != nil || c.GetSubject() != "alice@example.com" {
		t.Errorf("-o json: exit %d, %v:\n%s", code, err, stdout)
	}
}

func TestStoredTokenRefusedSaysLogInAgain(t *testing.T) {
	f := &fakeServer{err: status.Error(codes.Unauthenticated, "token expired")}
	f.start(t)
	expired := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	writeHostsFile(t, Hosts{Servers: map[string]HostEntry{f.addr: {Token: "old", Expiry: expired.Format(time.RFC3339)}}})

	code, _, stderr := run(t, "whoami")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"not authenticated: token expired", "expired at " + expired.Format(time.RFC3339),
		"log in to " + f.addr + " again with `echo $TOKEN | loopctl login --with-token`"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if f.tokens[0] != "Bearer old" {
		t.Errorf("sent %q: an expired stored token is still sent, the server decides", f.tokens[0])
	}
}

func TestHostsFileReadableByOthersIsNarrowed(t *testing.T) {
	f := &fakeServer{caller: alice(time.Now().Add(time.Hour))}
	f.start(t)
	writeHostsFile(t, Hosts{Servers: map[string]HostEntry{f.addr: {Token: "stored-token"}}})
	if err := os.Chmod(hostsFile(t), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "whoami")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "had mode 0644, so others could read the tokens in it; changed it to 0600") {
		t.Errorf("stderr: %s", stderr)
	}
	readHostsFile(t) // checks 0600
}

func TestReadHostsMalformedNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.json")
	if h, err := ReadHosts(path, os.Stderr); h != nil || err != nil {
		t.Errorf("missing file: %v, %v; want nil, nil", h, err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHosts(path, os.Stderr); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want one naming %s", err, path)
	}
}
