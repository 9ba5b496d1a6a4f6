package app_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/loopgate/loopgate/config"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/internal/policytest"
	"github.com/loopgate/loopgate/policy"
)

// With policy.verificationKeys configured, the server accepts only bundles
// signed by one of them (as opa build --signing-key signs): an unsigned
// bundle, one signed by another key and a signed one changed afterwards are
// refused with their reasons; the signed one is accepted and shows its key.
func TestPushedBundlesMustBeSigned(t *testing.T) {
	newKey := func() (*rsa.PrivateKey, string) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return k, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	}
	trusted, trustedPub := newKey()
	other, _ := newKey()
	pubFile := filepath.Join(t.TempDir(), "security.pub.pem")
	if err := os.WriteFile(pubFile, []byte(trustedPub), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", t.TempDir())
	cfg := config.Embedded(filepath.Join(t.TempDir(), "data"))
	cfg.Policy.VerificationKeys = []config.VerificationKey{{KeyID: "security-2026", File: pubFile}}
	r := runServer(t, cfg, 0)
	policies := lgv1.NewPolicyServiceClient(r.conn)
	reviewer := asDemo(t, "reviewer")

	sign := func(archive []byte, k *rsa.PrivateKey) []byte {
		t.Helper()
		b, err := policy.ReadArchive(archive, nil)
		if err != nil {
			t.Fatal(err)
		}
		priv := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
		if err := b.GenerateSignature(bundle.NewSigningConfig(priv, "RS256", ""), "security-2026", false); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := bundle.NewWriter(&buf).DisableFormat(true).Write(*b); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	push := func(archive []byte) error {
		_, err := policies.PushPolicyBundle(reviewer, &lgv1.PushPolicyBundleRequest{Archive: archive})
		return err
	}
	unsigned := policytest.PIIRetention(t, "signed-2026.12.1", policytest.PIIRetentionTest)
	for _, tc := range []struct {
		what    string
		archive []byte
		reason  string
	}{
		{"an unsigned bundle", unsigned, "UNSIGNED"},
		{"a bundle signed by another key", sign(unsigned, other), "BAD_SIGNATURE"},
	} {
		if err := push(tc.archive); status.Code(err) != codes.FailedPrecondition || reasonOf(err) != tc.reason {
			t.Errorf("pushing %s: %v (reason %s), want FAILED_PRECONDITION %s", tc.what, err, reasonOf(err), tc.reason)
		}
	}

	// A signed bundle with one file changed after signing (the archive
	// rewritten entry by entry, its .signatures.json kept).
	signed := sign(unsigned, trusted)
	zr, err := gzip.NewReader(bytes.NewReader(signed))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var tampered bytes.Buffer
	zw := gzip.NewWriter(&tampered)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(h.Name, "pii_retention.rego") {
			data = bytes.Replace(data, []byte("259200000"), []byte("2592000000"), 1)
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := push(tampered.Bytes()); status.Code(err) != codes.FailedPrecondition || reasonOf(err) != "MODIFIED_AFTER_SIGNING" {
		t.Errorf("pushing a signed bundle changed afterwards: %v (reason %s), want MODIFIED_AFTER_SIGNING", err, reasonOf(err))
	}

	pushed, err := policies.PushPolicyBundle(reviewer, &lgv1.PushPolicyBundleRequest{Archive: signed})
	if err != nil {
		t.Fatalf("pushing the signed bundle: %v", err)
	}
	if pushed.GetSignedBy() != "security-2026" {
		t.Errorf("signed by %q, want security-2026", pushed.GetSignedBy())
	}
}
