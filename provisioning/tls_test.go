package provisioning_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/provisioning"
)

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type pki struct {
	caFile, certFile, keyFile string
	server                    tls.Certificate
	pool                      *x509.CertPool
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "loopgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, ips ...net.IP) (certPEM, keyPEM []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvCert, srvKey := issue("kafka", x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	cliCert, cliKey := issue("loopgate", x509.ExtKeyUsageClientAuth)
	server, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pki{
		caFile:   write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		certFile: write("client.pem", cliCert), keyFile: write("client-key.pem", cliKey),
		server: server, pool: pool,
	}
}

// loopgate reaches a cluster over mutual TLS plus SASL/SCRAM (SASL_SSL) and
// provisions a loop through it; a wrong CA or a missing client certificate
// fails with a connection error rather than silently falling back.
func TestProvisioningOverMutualTLS(t *testing.T) {
	p := newPKI(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "loopgate", "tls-secret"), kfake.EnableACLs())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	sasl := &provisioning.SASL{Mechanism: "SCRAM-SHA-512", Username: "loopgate", Password: "tls-secret"}
	conn := provisioning.ClusterConn{BootstrapServers: kc.ListenAddrs(), SASL: sasl,
		TLS: &provisioning.TLS{CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}}

	cl, err := provisioning.Connect(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	admin := provisioning.NewKafkaAdmin(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	desired := provisioning.Derive(checkoutNudge(), catalog.Cluster{Name: "tls", Region: "eu", ReplicationFactor: 1})
	observed, err := admin.Observe(ctx, desired)
	if err != nil {
		t.Fatalf("observe over TLS: %v", err)
	}
	if _, err := admin.Execute(ctx, provisioning.Plan(desired, observed).Actions); err != nil {
		t.Fatalf("execute over TLS: %v", err)
	}
	observed, err = admin.Observe(ctx, desired)
	if err != nil {
		t.Fatal(err)
	}
	if again := provisioning.Plan(desired, observed); !again.Empty() {
		t.Errorf("re-plan over TLS is not empty: %+v", again)
	}

	// A client that does not trust the broker's CA, or that has no client
	// certificate, does not get through.
	for name, bad := range map[string]*provisioning.TLS{
		"untrusted CA":          {CAFile: newPKI(t).caFile, CertFile: p.certFile, KeyFile: p.keyFile},
		"no client certificate": {CAFile: p.caFile},
	} {
		c := conn
		c.TLS = bad
		bcl, err := provisioning.Connect(c)
		if err != nil {
			t.Fatal(err)
		}
		shortCtx, done := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = provisioning.NewKafkaAdmin(bcl).Observe(shortCtx, desired)
		done()
		bcl.Close()
		if err == nil {
			t.Errorf("%s: Observe succeeded", name)
		}
	}

	// Broken TLS settings are refused before any dial, naming the field.
	c := conn
	c.TLS = &provisioning.TLS{CertFile: p.certFile}
	if _, err := provisioning.Connect(c); !errors.Is(err, provisioning.ErrInvalidConn) {
		t.Errorf("certFile without keyFile: %v, want ErrInvalidConn", err)
	}
	c.TLS = &provisioning.TLS{CAFile: filepath.Join(t.TempDir(), "missing.pem")}
	if _, err := provisioning.Connect(c); !errors.Is(err, provisioning.ErrInvalidConn) {
		t.Errorf("missing caFile: %v, want ErrInvalidConn", err)
	}
}
