package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made up for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	key := newP256(t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Acme"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCA{cert: cert, key: key}
}

func newP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// issue signs a leaf certificate for subject: a server certificate for
// 127.0.0.1 when server is set, a client certificate otherwise.
func (ca testCA) issue(t *testing.T, subject pkix.Name, server bool) tls.Certificate {
	t.Helper()
	key := newP256(t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// writePEM writes the certificate and key of c (and returns their paths).
func writePEM(t *testing.T, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return certFile, keyFile
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsFixture is a server configuration built by ServerTLSConfig from files.
type tlsFixture struct {
	ca, otherCA     testCA
	certFile        string
	keyFile         string
	caFile          string
	deployer, alien tls.Certificate // issued by ca and by otherCA
	unmapped        tls.Certificate // issued by ca, subject not configured
}

func newTLSFixture(t *testing.T) tlsFixture {
	t.Helper()
	dir := t.TempDir()
	f := tlsFixture{ca: newTestCA(t, "loopgate client CA"), otherCA: newTestCA(t, "someone else's CA")}
	serverCert := f.ca.issue(t, pkix.Name{CommonName: "loopgate"}, true)
	f.certFile, f.keyFile = writePEM(t, dir, "server", serverCert)
	f.caFile = filepath.Join(dir, "client-ca.pem")
	writeFile(t, f.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.cert.Raw}))
	deployer := pkix.Name{CommonName: "ci-deployer", Organization: []string{"Acme"}}
	f.deployer = f.ca.issue(t, deployer, false)
	f.alien = f.otherCA.issue(t, deployer, false) // same subject, wrong CA
	f.unmapped = f.ca.issue(t, pkix.Name{CommonName: "intruder", Organization: []string{"Acme"}}, false)
	return f
}

// handshake connects a client presenting cert (if any) to a TLS listener on
// 127.0.0.1 configured with serverCfg, and returns the server's view of the
// connection and its handshake error.
func handshake(t *testing.T, serverCfg *tls.Config, roots *x509.CertPool, cert *tls.Certificate) (*tls.ConnectionState, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type result struct {
		state *tls.ConnectionState
		err   error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		state := tc.ConnectionState()
		done <- result{state: &state}
	}()

	clientCfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		// Always present cert: with Certificates the client would withhold a
		// certificate whose issuer the server did not ask for.
		clientCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	conn, err := tls.Dial("tcp", ln.Addr().String(), clientCfg)
	if err == nil {
		defer conn.Close()
	}
	// With TLS 1.3 the client may finish before the server has checked its
	// certificate; the server's verdict is what counts.
	r := <-done
	return r.state, r.err
}

func TestCertificateMapperOverTLS(t *testing.T) {
	f := newTLSFixture(t)
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.cert)

	mapper, err := NewCertificateMapper([]ClientCertificate{
		{Subject: "CN=ci-deployer,O=Acme", Teams: []string{"platform"}, Roles: []string{"deployer"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	optional, err := ServerTLSConfig(f.certFile, f.keyFile, f.caFile, false)
	if err != nil {
		t.Fatal(err)
	}
	required, err := ServerTLSConfig(f.certFile, f.keyFile, f.caFile, true)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("mapped subject", func(t *testing.T) {
		for _, cfg := range []*tls.Config{optional, required} {
			state, err := handshake(t, cfg, roots, &f.deployer)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if got := state.VerifiedChains[0][0].Subject.String(); got != "CN=ci-deployer,O=Acme" {
				t.Fatalf("verified subject = %q", got)
			}
			id, ok := mapper.Identify(state)
			if !ok {
				t.Fatal("Identify: not mapped")
			}
			if id.Subject != "ci-deployer" || id.Method != MethodMTLS || !slices.Equal(id.Teams, []string{"platform"}) ||
				!slices.Equal(id.Roles, []string{"deployer"}) || id.Issuer != "" || !id.Expiry.IsZero() {
				t.Errorf("identity = %+v", id)
			}
		}
	})

	t.Run("unknown subject", func(t *testing.T) {
		state, err := handshake(t, optional, roots, &f.unmapped)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if id, ok := mapper.Identify(state); ok {
			t.Errorf("Identify = %+v, want not mapped", id)
		}
	})

	t.Run("certificate from another CA", func(t *testing.T) {
		for _, cfg := range []*tls.Config{optional, required} {
			state, err := handshake(t, cfg, roots, &f.alien)
			if err == nil {
				t.Fatalf("handshake succeeded (verified chains %d)", len(state.VerifiedChains))
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("handshake error = %v", err)
			}
		}
	})

	t.Run("no certificate", func(t *testing.T) {
		state, err := handshake(t, optional, roots, nil)
		if err != nil {
			t.Fatalf("handshake without a certificate when optional: %v", err)
		}
		if _, ok := mapper.Identify(state); ok {
			t.Error("Identify mapped a connection without a certificate")
		}
		if _, err := handshake(t, required, roots, nil); err == nil {
			t.Error("handshake without a certificate succeeded when required")
		}
	})
}

func TestIdentifyTrustsOnlyVerifiedChains(t *testing.T) {
	f := newTLSFixture(t)
	mapper, err := NewCertificateMapper([]ClientCertificate{{Subject: "CN=ci-deployer,O=Acme", Name: "deployer"}})
	if err != nil {
		t.Fatal(err)
	}
	// Presented but not verified: never trusted.
	if _, ok := mapper.Identify(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{f.alien.Leaf}}); ok {
		t.Error("Identify trusted an unverified peer certificate")
	}
	// Only the leaf of the first verified chain counts.
	state := &tls.ConnectionState{
		PeerCertificates: []*x509.Certificate{f.unmapped.Leaf},
		VerifiedChains:   [][]*x509.Certificate{{f.unmapped.Leaf, f.ca.cert}, {f.deployer.Leaf, f.ca.cert}},
	}
	if _, ok := mapper.Identify(state); ok {
		t.Error("Identify looked beyond VerifiedChains[0][0]")
	}
	state.VerifiedChains = [][]*x509.Certificate{{f.deployer.Leaf, f.ca.cert}}
	id, ok := mapper.Identify(state)
	if !ok || id.Subject != "deployer" {
		t.Errorf("Identify = %+v, %v; want the configured name", id, ok)
	}
	for _, s := range []*tls.ConnectionState{nil, {}, {VerifiedChains: [][]*x509.Certificate{{}}}} {
		if _, ok := mapper.Identify(s); ok {
			t.Errorf("Identify(%+v) = true", s)
		}
	}
	var nilMapper *CertificateMapper
	if _, ok := nilMapper.Identify(state); ok {
		t.Error("nil mapper identified a caller")
	}
}

func TestNewCertificateMapperErrors(t *testing.T) {
	_, err := NewCertificateMapper([]ClientCertificate{
		{Subject: ""},
		{Subject: "ci-deployer"},
		{Subject: "CN=ci-deployer, O=Acme"},
		{Subject: "CN=a,O=Acme"},
		{Subject: "CN=a,O=Acme"},
		{Subject: "O=Acme,OU=Robots"},
		{Subject: `CN=trailing\`},
		{Subject: `CN=escaped\, comma,O=Acme`},             // fine
		{Subject: "O=Acme,OU=Robots+UID=7", Name: "robot"}, // fine: named
	})
	if err == nil {
		t.Fatal("NewCertificateMapper accepted invalid subjects")
	}
	for _, want := range []string{
		"clientCertificates[0].subject: required",
		`clientCertificates[1].subject: "ci-deployer" is not an RFC 2253 distinguished name`,
		`clientCertificates[2].subject: "CN=ci-deployer, O=Acme": no spaces`,
		`clientCertificates[4].subject: "CN=a,O=Acme" is listed twice`,
		"clientCertificates[5].name: required when the subject has no CN",
		"clientCertificates[6].subject:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	for _, unwanted := range []string{"[7]", "[8]", "[3]"} {
		if strings.Contains(err.Error(), unwanted) {
			t.Errorf("error mentions valid entry %s:\n%v", unwanted, err)
		}
	}
}

func TestServerTLSConfig(t *testing.T) {
	f := newTLSFixture(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, []byte("not a certificate"))

	cfg, err := ServerTLSConfig(f.certFile, f.keyFile, f.caFile, false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.VerifyClientCertIfGiven || cfg.ClientCAs == nil {
		t.Errorf("optional client certs: MinVersion %x ClientAuth %v", cfg.MinVersion, cfg.ClientAuth)
	}
	cfg, err = ServerTLSConfig(f.certFile, f.keyFile, f.caFile, true)
	if err != nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("required client certs: %v, %v", cfg, err)
	}
	cfg, err = ServerTLSConfig(f.certFile, f.keyFile, "", false)
	if err != nil || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("no client CA: %v, %v", cfg, err)
	}

	for name, args := range map[string][3]string{
		"no certificate":        {"", f.keyFile, f.caFile},
		"missing certificate":   {filepath.Join(dir, "missing.crt"), f.keyFile, f.caFile},
		"key does not match":    {f.certFile, garbage, f.caFile},
		"missing client CA":     {f.certFile, f.keyFile, filepath.Join(dir, "missing.pem")},
		"client CA not PEM":     {f.certFile, f.keyFile, garbage},
		"required without a CA": {f.certFile, f.keyFile, ""},
	} {
		if _, err := ServerTLSConfig(args[0], args[1], args[2], true); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
