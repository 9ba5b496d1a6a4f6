package web

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// The pending sign-ins: each entry is used once, expires after its TTL,
// and the table never holds more than its bound (expired entries go
// first, then the oldest).
func TestPendingLogins(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tbl := newPendingLogins(3, 10*time.Minute)
	tbl.now = func() time.Time { return now }

	a := tbl.add(&pendingLogin{state: "a"})
	if len(a) < 43 {
		t.Errorf("id %q is shorter than 256 bits of base64", a)
	}
	if pl := tbl.take(a); pl == nil || pl.state != "a" {
		t.Fatalf("take: %+v", pl)
	}
	if pl := tbl.take(a); pl != nil {
		t.Errorf("an entry was taken twice")
	}
	if pl := tbl.take("unknown"); pl != nil {
		t.Errorf("an unknown id: %+v", pl)
	}

	old := tbl.add(&pendingLogin{state: "old"})
	now = now.Add(10 * time.Minute)
	if pl := tbl.take(old); pl != nil {
		t.Errorf("an entry 10 minutes old was taken")
	}
	if n := tbl.len(); n != 0 {
		t.Errorf("an expired entry stays after take: %d", n)
	}

	// Full: an expired entry goes first, then the oldest.
	e1 := tbl.add(&pendingLogin{state: "e1"})
	now = now.Add(11 * time.Minute) // e1 expired
	k2 := tbl.add(&pendingLogin{state: "k2"})
	now = now.Add(time.Second)
	k3 := tbl.add(&pendingLogin{state: "k3"})
	now = now.Add(time.Second)
	k4 := tbl.add(&pendingLogin{state: "k4"}) // full: e1 goes
	if n := tbl.len(); n != 3 {
		t.Errorf("len %d, want 3", n)
	}
	now = now.Add(time.Second)
	k5 := tbl.add(&pendingLogin{state: "k5"}) // full, none expired: k2 (oldest) goes
	if n := tbl.len(); n != 3 {
		t.Errorf("len %d, want at most 3", n)
	}
	for id, want := range map[string]bool{e1: false, k2: false, k3: true, k4: true, k5: true} {
		if got := tbl.take(id) != nil; got != want {
			t.Errorf("entry present %v, want %v", got, want)
		}
	}
}

// One address starting sign-ins in a loop pushes out its own oldest
// pending sign-in, never another address's.
func TestPendingLoginsPerAddress(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tbl := newPendingLogins(100, 10*time.Minute)
	tbl.perAddr = 3
	tbl.now = func() time.Time { now = now.Add(time.Millisecond); return now }
	victim := tbl.add(&pendingLogin{state: "v", addr: "10.0.0.2"})
	var flood []string
	for range 50 {
		flood = append(flood, tbl.add(&pendingLogin{state: "f", addr: "10.0.0.9"}))
	}
	if n := tbl.len(); n != 4 {
		t.Errorf("%d pending, want the victim's 1 and the flooder's 3", n)
	}
	if tbl.take(victim) == nil {
		t.Errorf("the flood pushed out another address's sign-in")
	}
	if tbl.take(flood[0]) != nil || tbl.take(flood[49]) == nil {
		t.Errorf("the flooder's oldest stayed or its newest went")
	}
}

func TestNewOIDCLoginRefusesBadOptions(t *testing.T) {
	good := OIDCOptions{Issuer: "https://login.example.com/realms/acme", ClientID: "portal", RedirectURL: "https://lg.example.com/login/oidc/callback",
		ClientSecret: "s3cr3t-v4lue"}
	o, err := newOIDCLogin(good, false)
	if err != nil {
		t.Fatal(err)
	}
	if o.host != "login.example.com" || o.opts.Bearer != BearerAccessToken || len(o.opts.Scopes) != 1 || o.opts.Scopes[0] != "openid" || !o.secure {
		t.Errorf("defaults: host %q bearer %q scopes %v secure %v", o.host, o.opts.Bearer, o.opts.Scopes, o.secure)
	}
	if o.unavailable() {
		t.Errorf("unavailable before any discovery")
	}
	for name, mutate := range map[string]func(*OIDCOptions){
		"issuer":   func(o *OIDCOptions) { o.Issuer = "login.example.com" },
		"redirect": func(o *OIDCOptions) { o.RedirectURL = "/login/oidc/callback" },
		"client":   func(o *OIDCOptions) { o.ClientID = "" },
		"bearer":   func(o *OIDCOptions) { o.Bearer = "refresh_token" },
	} {
		bad := good
		mutate(&bad)
		if _, err := newOIDCLogin(bad, false); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), good.ClientSecret) {
			t.Errorf("%s: the error holds the client secret: %v", name, err)
		}
	}
}

// A provider that accepts connections and never answers: discovery gives
// up at its bound (shortened here), the failure is remembered: the next
// attempt does not reach the provider, and the login page says it is
// unavailable.
func TestOIDCDiscoveryIsBounded(t *testing.T) {
	bound := oidcDiscoveryTimeout
	oidcDiscoveryTimeout = 200 * time.Millisecond
	t.Cleanup(func() { oidcDiscoveryTimeout = bound })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	accepted := func() int { mu.Lock(); defer mu.Unlock(); return len(held) }
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	o, err := newOIDCLogin(OIDCOptions{Issuer: "http://" + ln.Addr().String() + "/realm", ClientID: "portal",
		RedirectURL: "http://127.0.0.1:8080/login/oidc/callback", ClientSecret: "s3cret"}, false)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = o.provider(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("discovery against a silent provider: %v, want it to give up at its deadline", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error holds the client secret: %v", err)
	}
	if !o.unavailable() {
		t.Errorf("not unavailable after a failed discovery")
	}
	before := accepted()
	if _, _, err := o.provider(context.Background()); err == nil {
		t.Errorf("a second attempt right after a failure succeeded")
	}
	if n := accepted(); n != before {
		t.Errorf("a second attempt right after a failure reached the provider (%d connections, was %d)", n, before)
	}
}
