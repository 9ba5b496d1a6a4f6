package app_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/identity"
)

// certPair issues a certificate for subject signed by ca (self-signed when
// ca is nil) and writes it and its key as PEM into dir.
func certPair(t *testing.T, dir, name string, subject pkix.Name, ca *tls.Certificate, isCA, server bool) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage, tmpl.ExtKeyUsage = true, true, x509.KeyUsageCertSign, nil
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	parent, signer := tmpl, any(key)
	if ca != nil {
		parent, signer = ca.Leaf, ca.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, certFile, keyFile
}

// With tls the gRPC and REST APIs are served over TLS; a verified client
// certificate maps to its configured identity, clients without one use
// bearer tokens, REST works through the gateway (which pins the server's
// own certificate), and a rotated certificate is served without a restart.
func TestMutualTLSIdentities(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	ca, caFile, _ := certPair(t, dir, "ca", pkix.Name{CommonName: "test CA"}, nil, true, false)
	_, srvCert, srvKey := certPair(t, dir, "server", pkix.Name{CommonName: "loopgate"}, &ca, false, true)
	client, _, _ := certPair(t, dir, "client", pkix.Name{CommonName: "ci-deployer", Organization: []string{"Acme"}}, &ca, false, false)
	stranger, _, _ := certPair(t, dir, "stranger", pkix.Name{CommonName: "someone-else"}, &ca, false, false)

	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	cfg.TLS = &config.ServerTLS{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: caFile}
	cfg.Auth.ClientCertificates = []identity.ClientCertificate{{Subject: "CN=ci-deployer,O=Acme", Teams: []string{"growth"}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := runServer(t, cfg, 0)

	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	whoami := func(cert *tls.Certificate, token string) (*lgv1.Caller, error) {
		tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx := t.Context()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		return lgv1.NewIdentityServiceClient(conn).GetCaller(ctx, &lgv1.GetCallerRequest{})
	}
	got, err := whoami(&client, "")
	if err != nil || got.GetSubject() != "ci-deployer" || got.GetMethod() != "mtls" || len(got.GetTeams()) != 1 || got.GetTeams()[0] != "growth" {
		t.Errorf("client certificate: %v, %v; want ci-deployer of growth by mtls", got, err)
	}
	if got, err = whoami(&stranger, ""); err == nil {
		t.Errorf("an unmapped certificate (and no token) was let in as %v", got)
	}
	if got, err = whoami(nil, r.token); err != nil || got.GetMethod() != "token" {
		t.Errorf("bearer token over TLS: %v, %v", got, err)
	}
	// REST over TLS through the gateway, bearer token.
	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+r.http+"/v1/caller", nil)
	req.Header.Set("Authorization", "BEARER "+r.token) // the scheme is case-insensitive
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var caller map[string]any
	_ = json.Unmarshal(body, &caller)
	if resp.StatusCode != http.StatusOK || caller["subject"] != "dev-admin@loopgate.local" {
		t.Errorf("REST over the TLS gateway: %d %s", resp.StatusCode, body)
	}
	if resp, err := http.Get("http://" + r.http + "/v1/caller"); err == nil && resp.StatusCode == http.StatusOK {
		t.Error("the REST listener answered plain HTTP")
	}

	// Rotate the server certificate: new handshakes get the new one, and
	// the gateway (which pins it) follows.
	rotated, _, _ := certPair(t, t.TempDir(), "server", pkix.Name{CommonName: "loopgate-rotated"}, &ca, false, true)
	writeCert(t, srvCert, srvKey, rotated)
	time.Sleep(1100 * time.Millisecond) // the files are checked at most once a second
	served := func() string {
		conn, err := tls.Dial("tcp", r.http, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "loopgate-rotated" {
		t.Errorf("after rotation the listener serves %q", cn)
	}
	req, _ = http.NewRequest(http.MethodGet, "https://"+r.http+"/v1/caller", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	httpc.CloseIdleConnections()
	if resp, err := httpc.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("REST after rotation: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// writeCert replaces the PEM files of a certificate atomically.
func writeCert(t *testing.T, certFile, keyFile string, c tls.Certificate) {
	t.Helper()
	keyDER, _ := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	for file, block := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: c.Certificate[0]},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		tmp := file + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
}
