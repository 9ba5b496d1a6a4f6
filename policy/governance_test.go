package policy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
)

// The policy package keeps its own copy of the store's archive bound (it
// does not import store): they must agree, or the store would refuse what
// Check accepted.
func TestMaxArchiveBytesIsTheStoreBound(t *testing.T) {
	if policy.MaxArchiveBytes != store.MaxPolicyArchiveBytes {
		t.Errorf("policy.MaxArchiveBytes = %d, store.MaxPolicyArchiveBytes = %d: keep them equal", policy.MaxArchiveBytes, store.MaxPolicyArchiveBytes)
	}
}

// writeTarGzEntries writes a .tar.gz with the entries in order (a nil content
// is a directory) and returns its path.
func writeTarGzEntries(t *testing.T, entries []tarEntry) string {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o600, Size: int64(len(e.content)), Typeflag: tar.TypeReg, Uname: "someone", Uid: 501}
		if e.typ != 0 {
			hdr.Typeflag, hdr.Size, hdr.Linkname = e.typ, 0, "target"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == 0 {
			if _, err := tw.Write([]byte(e.content)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type tarEntry struct {
	name, content string
	typ           byte // 0: a regular file
}

func pack(t *testing.T, path string) []byte {
	t.Helper()
	archive, err := policy.Pack(path)
	if err != nil {
		t.Fatal(err)
	}
	return archive
}

// A directory and a tarball of the same files pack to the same bytes,
// whatever the order, modes, owners and path forms of the tarball.
func TestPackIsNormalised(t *testing.T) {
	dir := writeBundle(t, customBundle)
	fromDir := pack(t, dir)
	if again := pack(t, dir); !bytes.Equal(fromDir, again) {
		t.Error("packing the same directory twice gave different bytes")
	}
	link := filepath.Join(t.TempDir(), "current")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if viaLink := pack(t, link); !bytes.Equal(fromDir, viaLink) {
		t.Error("packing the directory through a link to it gave different bytes")
	}
	if fromTar := pack(t, writeTarGz(t, customBundle)); !bytes.Equal(fromDir, fromTar) {
		t.Error("the directory and the tarball (as opa build writes it) pack to different bytes")
	}
	var entries []tarEntry
	for _, name := range []string{"loop/owners_test.rego", "data.json", "loop/owners.rego", ".manifest"} {
		entries = append(entries, tarEntry{name: "./" + name, content: customBundle[name]})
	}
	entries = append([]tarEntry{{name: "./loop/", typ: tar.TypeDir}}, entries...)
	if fromOther := pack(t, writeTarGzEntries(t, entries)); !bytes.Equal(fromDir, fromOther) {
		t.Error("a tarball with ./ paths, a directory entry and another order packs to different bytes")
	}
	// Packing a packed archive changes nothing.
	packed := filepath.Join(t.TempDir(), "packed.tar.gz")
	if err := os.WriteFile(packed, fromDir, 0o644); err != nil {
		t.Fatal(err)
	}
	if repacked := pack(t, packed); !bytes.Equal(fromDir, repacked) {
		t.Error("packing a packed archive changed it")
	}
	// It is a bundle OPA reads.
	b, err := policy.ReadArchive(fromDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Revision != "acme-7" || len(b.Modules) != 2 {
		t.Errorf("read back: revision %q, %d modules", b.Manifest.Revision, len(b.Modules))
	}
}

func TestPackRefuses(t *testing.T) {
	big := make([]byte, policy.MaxArchiveBytes+1<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	oversized := writeBundle(t, map[string]string{".manifest": manifest, "blob.bin": string(big)})

	linked := writeBundle(t, customBundle)
	if err := os.Symlink(filepath.Join(linked, "data.json"), filepath.Join(linked, "more.json")); err != nil {
		t.Fatal(err)
	}
	// 40 MiB of zeros compress to a few KiB: a decompression bomb.
	bomb := writeTarGzEntries(t, []tarEntry{{name: "zeros", content: string(make([]byte, 40<<20))}})

	for name, tc := range map[string]struct{ path, want string }{
		"an archive over 8 MiB":     {oversized, "more than the 8 MiB"},
		"a symbolic link":           {linked, "more.json is not a regular file"},
		"a path outside the bundle": {writeTarGzEntries(t, []tarEntry{{name: "../evil.rego", content: "package x"}}), "outside the bundle"},
		"a link in a tarball":       {writeTarGzEntries(t, []tarEntry{{name: "link.rego", typ: tar.TypeSymlink}}), "not a regular file"},
		"a file twice":              {writeTarGzEntries(t, []tarEntry{{name: "/a.rego", content: "x"}, {name: "a.rego", content: "y"}}), "twice"},
		"a decompression bomb":      {bomb, "expands to more than"},
		"not a bundle":              {writeBundle(t, map[string]string{"x": ""}) + "/x", "not a directory or a .tar.gz bundle"},
		"an empty directory":        {t.TempDir(), "no files"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := policy.Pack(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Pack = %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := policy.Check(context.Background(), make([]byte, policy.MaxArchiveBytes+1), policy.CheckOptions{}); reasonOf(err) != policy.ReasonInvalidArchive {
		t.Errorf("Check of an archive over the bound: %v, want %s", err, policy.ReasonInvalidArchive)
	}
}

func reasonOf(err error) string {
	var ce *policy.CheckError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}

func check(t *testing.T, files map[string]string, opts policy.CheckOptions) (*policy.Checked, error) {
	t.Helper()
	return policy.Check(context.Background(), pack(t, writeBundle(t, files)), opts)
}

func with(files map[string]string, changes map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range files {
		out[k] = v
	}
	for k, v := range changes {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func TestCheckAcceptsAGoodBundle(t *testing.T) {
	c, err := check(t, customBundle, policy.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Revision != "acme-7" || c.SignedBy != "" {
		t.Errorf("revision %q, signed by %q; want acme-7, unsigned", c.Revision, c.SignedBy)
	}
	if want := []string{".manifest", "data.json", "loop/owners.rego", "loop/owners_test.rego"}; !reflect.DeepEqual(c.Files, want) {
		t.Errorf("files = %v, want %v", c.Files, want)
	}
	if len(c.Tests) != 1 || !c.Tests[0].Pass || c.Tests[0].Name != "test_foreign_owner_denied" {
		t.Errorf("tests = %v", c.Tests)
	}
	var m map[string]any
	if err := json.Unmarshal(c.Manifest, &m); err != nil || m["revision"] != "acme-7" {
		t.Errorf("manifest %s: %v", c.Manifest, err)
	}
	if sum, _ := hex.DecodeString(c.Digest); len(sum) != 32 || !bytes.Equal(c.Archive, pack(t, writeBundle(t, customBundle))) {
		t.Errorf("digest %q, archive of %d bytes: want the SHA-256 of Pack's archive", c.Digest, len(c.Archive))
	}
	// What Check accepts, NewEngine accepts and decides with.
	e, err := policy.NewEngine(context.Background(), c.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := e.Evaluate(context.Background(), typicalInput()); !slices.Equal(ids(d.Deny), []string{"OWNER_DOMAIN"}) {
		t.Errorf("deny = %v, want OWNER_DOMAIN", ids(d.Deny))
	}
}

// The bundle shipped in the binary passes its own check.
func TestCheckAcceptsTheDefaultBundle(t *testing.T) {
	c, err := policy.Check(context.Background(), pack(t, "bundles/default"), policy.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := policy.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	if c.Revision != b.Manifest.Revision || len(c.Tests) < 80 {
		t.Errorf("revision %q (embedded %q), %d tests", c.Revision, b.Manifest.Revision, len(c.Tests))
	}
}

func TestCheckNamesEveryFailingTest(t *testing.T) {
	c, err := check(t, with(customBundle, map[string]string{"loop/more_test.rego": `package loopgate.loop_test

test_fails if {
	count(data.loopgate.loop.deny) == 2 with input as {"loop": {"spec": {"owners": ["x@example.com"]}}}
}

test_errors if {
	count(data.loopgate.loop.deny) == 1 with input as {"loop": {"spec": {"owners": ["x@example.com"]}}}
	to_number("not a number") == 1
}

test_passes if true
`}), policy.CheckOptions{})
	var ce *policy.CheckError
	if !errors.As(err, &ce) || ce.Reason != policy.ReasonTestsFailed {
		t.Fatalf("err = %v, want %s", err, policy.ReasonTestsFailed)
	}
	want := []string{"data.loopgate.loop_test.test_errors", "data.loopgate.loop_test.test_fails"}
	if !reflect.DeepEqual(ce.FailedTests, want) {
		t.Errorf("failed tests = %v, want %v", ce.FailedTests, want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
	if c == nil || len(c.Tests) != 4 {
		t.Fatalf("checked = %+v: want every test result with the refusal", c)
	}
}

func TestCheckRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		files   map[string]string
		reason  string
		problem string // in the error
	}{
		"a compile error": {with(customBundle, map[string]string{"loop/bad.rego": "package loopgate.loop\n\n\nwarn contains x if {\n\tx := undefined_function(1)\n}\n"}),
			policy.ReasonCompile, "loop/bad.rego:5: rego_type_error: undefined function undefined_function"},
		"a parse error": {with(customBundle, map[string]string{"loop/bad.rego": "package loopgate.loop\n\ndeny contains if {\n"}),
			policy.ReasonCompile, "loop/bad.rego:3"},
		"a test that does not compile": {with(customBundle, map[string]string{"loop/bad_test.rego": "package loopgate.loop_test\n\ntest_x if nope.x\n"}),
			policy.ReasonCompile, "loop/bad_test.rego:3"},
		"no revision": {with(customBundle, map[string]string{".manifest": `{"roots":["loopgate"]}`}),
			policy.ReasonNoRevision, "no revision"},
		"a revision with spaces": {with(customBundle, map[string]string{".manifest": `{"revision":"my rev","roots":["loopgate"]}`}),
			policy.ReasonInvalidRevision, `"my rev"`},
		"no deny rule": {with(customBundle, map[string]string{"loop/owners.rego": "package loopgate.loop\n\nwarn contains \"x\" if false\n"}),
			policy.ReasonNotLoopgatePolicy, "data.loopgate.loop.deny"},
		"no tests": {with(customBundle, map[string]string{"loop/owners_test.rego": ""}),
			policy.ReasonNoTests, "no test"},
		"malformed data": {with(customBundle, map[string]string{"data.json": "{"}),
			policy.ReasonInvalidBundle, "data.json"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := check(t, tc.files, policy.CheckOptions{})
			if reasonOf(err) != tc.reason || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("err = %v\nwant reason %s naming %q", err, tc.reason, tc.problem)
			}
		})
	}
}

// A signing key pair, made once: RSA key generation is slow.
var keys = sync.OnceValues(func() (map[string]string, error) {
	out := map[string]string{}
	for _, name := range []string{"a", "b"} {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return nil, err
		}
		out[name+".private"] = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
		out[name+".public"] = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	}
	return out, nil
})

func keyPair(t *testing.T, name string) (private, public string) {
	t.Helper()
	k, err := keys()
	if err != nil {
		t.Fatal(err)
	}
	return k[name+".private"], k[name+".public"]
}

// signFiles adds the .signatures.json that `opa sign --bundle .` writes in a
// bundle directory (with --claims-file {"keyid": kid}), made with OPA's own
// signing functions.
func signFiles(t *testing.T, files map[string]string, privateKey, kid string) map[string]string {
	t.Helper()
	h, err := bundle.NewSignatureHasher(bundle.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	var infos []bundle.FileInfo
	for name, content := range files {
		var v any = []byte(content)
		if bundle.IsStructuredDoc(name) {
			if err := json.Unmarshal([]byte(content), &v); err != nil {
				t.Fatal(err)
			}
		}
		sum, err := h.HashFile(v)
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, bundle.NewFile(name, hex.EncodeToString(sum), string(bundle.SHA256)))
	}
	token, err := bundle.GenerateSignedToken(infos, bundle.NewSigningConfig(privateKey, "RS256", ""), kid)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := json.Marshal(bundle.SignaturesConfig{Signatures: []string{token}})
	if err != nil {
		t.Fatal(err)
	}
	return with(files, map[string]string{".signatures.json": string(sig)})
}

func verifyWith(kid, publicKey string) policy.CheckOptions {
	return policy.CheckOptions{VerificationKeys: map[string]*bundle.KeyConfig{kid: {Key: publicKey}}}
}

func TestCheckVerifiesSignatures(t *testing.T) {
	privA, pubA := keyPair(t, "a")
	_, pubB := keyPair(t, "b")
	signed := signFiles(t, customBundle, privA, "security-2026")

	c, err := check(t, signed, verifyWith("security-2026", pubA))
	if err != nil {
		t.Fatal(err)
	}
	if c.SignedBy != "security-2026" || !slices.Contains(c.Files, ".signatures.json") {
		t.Errorf("signed by %q, files %v", c.SignedBy, c.Files)
	}
	// Without keys the signature is not looked at.
	if c, err := check(t, signed, policy.CheckOptions{}); err != nil || c.SignedBy != "" {
		t.Errorf("without keys: %v, signed by %q", err, c.SignedBy)
	}

	for name, tc := range map[string]struct {
		files   map[string]string
		opts    policy.CheckOptions
		reason  string
		message string
	}{
		"unsigned": {customBundle, verifyWith("security-2026", pubA), policy.ReasonUnsigned, "not signed"},
		"signed by another key with the same id": {signed, verifyWith("security-2026", pubB),
			policy.ReasonBadSignature, `does not verify with key "security-2026"`},
		"signed with a key loopgate does not know": {signed, verifyWith("other", pubA),
			policy.ReasonUnknownKey, `key "security-2026", which is not one of the verification keys (other)`},
		"signed without a key id": {signFiles(t, customBundle, privA, ""), verifyWith("security-2026", pubA),
			policy.ReasonUnknownKey, "names no key id"},
		"a file modified after signing": {with(signed, map[string]string{"loop/owners.rego": customBundle["loop/owners.rego"] + "\n# changed\n"}),
			verifyWith("security-2026", pubA), policy.ReasonModified, "loop/owners.rego was modified after signing"},
		"data changed after signing": {with(signed, map[string]string{"data.json": `{"loopgate":{"config":{"owner_domain":"example.com"}}}`}),
			verifyWith("security-2026", pubA), policy.ReasonModified, "data.json was modified after signing"},
		"a file added after signing": {with(signed, map[string]string{"loop/extra.rego": "package loopgate.loop\n"}),
			verifyWith("security-2026", pubA), policy.ReasonModified, "loop/extra.rego is not covered by the signature"},
		"a file removed after signing": {with(signed, map[string]string{"loop/owners_test.rego": ""}),
			verifyWith("security-2026", pubA), policy.ReasonModified, "loop/owners_test.rego is signed but missing"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := check(t, tc.files, tc.opts)
			if reasonOf(err) != tc.reason || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("err = %v\nwant reason %s with %q", err, tc.reason, tc.message)
			}
		})
	}
}

// A bundle signed as `opa build --signing-key KEY --verification-key-id ID
// -b DIR` signs it ((*bundle.Bundle).GenerateSignature, then the bundle
// writer) is accepted, and refused once a file of it changes.
func TestCheckAcceptsABundleSignedAsOpaBuildSignsIt(t *testing.T) {
	priv, pub := keyPair(t, "a")
	b, err := policy.ReadArchive(pack(t, writeBundle(t, customBundle)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.GenerateSignature(bundle.NewSigningConfig(priv, "RS256", ""), "ci", false); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).DisableFormat(true).Write(*b); err != nil {
		t.Fatal(err)
	}
	c, err := policy.Check(context.Background(), buf.Bytes(), verifyWith("ci", pub))
	if err != nil {
		t.Fatal(err)
	}
	if c.SignedBy != "ci" || c.Revision != "acme-7" {
		t.Errorf("signed by %q, revision %q", c.SignedBy, c.Revision)
	}

	// Change one module of the signed tarball.
	dir := t.TempDir()
	path := filepath.Join(dir, "signed.tar.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var entries []tarEntry
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		var content bytes.Buffer
		if _, err := content.ReadFrom(tr); err != nil {
			t.Fatal(err)
		}
		s := content.String()
		if strings.HasSuffix(hdr.Name, "owners.rego") {
			s = strings.Replace(s, "not endswith", "endswith", 1)
		}
		entries = append(entries, tarEntry{name: hdr.Name, content: s})
	}
	_, err = policy.Check(context.Background(), pack(t, writeTarGzEntries(t, entries)), verifyWith("ci", pub))
	if reasonOf(err) != policy.ReasonModified || !strings.Contains(err.Error(), "owners.rego was modified after signing") {
		t.Errorf("err = %v, want %s naming owners.rego", err, policy.ReasonModified)
	}
}

func TestUnwaivable(t *testing.T) {
	b, err := policy.DefaultBundle()
	if err != nil {
		t.Fatal(err)
	}
	got := policy.Unwaivable(b)
	if !slices.IsSorted(got) || !slices.Contains(got, "PII_RESIDENCY") || !slices.Contains(got, "PII_OUTSIDE_HOME_REGION") {
		t.Errorf("Unwaivable(default) = %v, want the PII rules, sorted", got)
	}
	// Every id is one of the bundle's rules.
	var src strings.Builder
	for _, m := range b.Modules {
		if !strings.HasSuffix(m.Path, "_test.rego") {
			src.Write(m.Raw)
		}
	}
	for _, id := range got {
		if !strings.Contains(src.String(), `"`+id+`",`) {
			t.Errorf("unwaivable %s is not a rule id of the default bundle", id)
		}
	}
	if got := policy.Unwaivable(loadBundle(t, customBundle)); got != nil {
		t.Errorf("Unwaivable of a bundle without the list = %v, want nil", got)
	}
}
