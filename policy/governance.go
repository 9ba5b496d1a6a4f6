package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// Bounds of a policy bundle.
const (
	// MaxArchiveBytes bounds a bundle archive: the gzipped tarball Pack
	// makes and Check reads. It is store.MaxPolicyArchiveBytes, the largest
	// archive the store keeps; policy does not import store, so the two are
	// kept equal by TestMaxArchiveBytesIsTheStoreBound.
	MaxArchiveBytes = 8 << 20
	// MaxBundleBytes bounds the files of a bundle together, uncompressed.
	MaxBundleBytes = 32 << 20
	// MaxBundleFiles bounds the number of files of a bundle.
	MaxBundleFiles = 1000
	// maxPathBytes bounds the path of a file of a bundle.
	maxPathBytes = 1024
	// maxUnpackedBytes bounds what reading an archive may decompress: the
	// files, and their tar headers.
	maxUnpackedBytes = MaxBundleBytes + MaxBundleFiles*4096 + 1<<20
)

// signaturesFile is the file of an OPA bundle that holds its signature.
const signaturesFile = ".signatures.json"

// bundleFile is one file of a bundle: its slash-separated path relative to
// the bundle's root (no leading slash) and its content.
type bundleFile struct {
	path string
	data []byte
}

// Pack reads a bundle directory or .tar.gz file (as `opa build` writes it)
// and returns it as a normalised gzipped tarball in OPA's bundle format: every
// regular file of the bundle, byte for byte (so a signature stays valid),
// sorted by path, with fixed modes and times. The same files give the same
// bytes, whether they come from a directory or a tarball. Symbolic links and
// other special files, paths with "..", more than MaxBundleFiles files, more
// than MaxBundleBytes of them or an archive larger than MaxArchiveBytes are
// refused. Pack does not parse the bundle: Check does.
func Pack(bundlePath string) ([]byte, error) {
	info, err := os.Stat(bundlePath)
	if err != nil {
		return nil, fmt.Errorf("policy: packing bundle: %w", err)
	}
	var files []bundleFile
	if info.IsDir() {
		// The directory itself may be a link (e.g. to the current
		// version); links inside it are refused.
		var root string
		if root, err = filepath.EvalSymlinks(bundlePath); err == nil {
			files, err = readDirFiles(root)
		}
	} else {
		var raw []byte
		if raw, err = readFileBounded(bundlePath, MaxArchiveBytes); err == nil {
			files, err = unpack(raw)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("policy: packing bundle %s: %w", bundlePath, err)
	}
	archive, err := pack(files)
	if err != nil {
		return nil, fmt.Errorf("policy: packing bundle %s: %w", bundlePath, err)
	}
	return archive, nil
}

// readFileBounded reads a file of at most limit bytes.
func readFileBounded(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("it is larger than %s", sizeString(limit))
	}
	return raw, nil
}

// readDirFiles reads every regular file under root, as OPA's directory
// loader sees the bundle.
func readDirFiles(root string) ([]bundleFile, error) {
	var (
		files []bundleFile
		total int64
	)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name, err := cleanPath(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file (symbolic links and special files are refused)", name)
		}
		if len(files) == MaxBundleFiles {
			return fmt.Errorf("the bundle has more than %d files", MaxBundleFiles)
		}
		data, err := readFileBounded(p, MaxBundleBytes-total)
		if err != nil {
			return fmt.Errorf("%s: %w (the bundle's files may hold %s together)", name, err, sizeString(MaxBundleBytes))
		}
		total += int64(len(data))
		files = append(files, bundleFile{path: name, data: data})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// unpack reads the regular files of a gzipped tarball, bounded.
func unpack(archive []byte) ([]bundleFile, error) {
	if len(archive) > MaxArchiveBytes {
		return nil, fmt.Errorf("the archive is %s, more than the %s accepted", sizeString(int64(len(archive))), sizeString(MaxArchiveBytes))
	}
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return nil, fmt.Errorf("not a directory or a .tar.gz bundle: %w", err)
	}
	lr := &io.LimitedReader{R: gz, N: maxUnpackedBytes}
	tr := tar.NewReader(lr)
	var (
		files []bundleFile
		seen  = map[string]bool{}
		total int64
	)
	tooLarge := func() error {
		return fmt.Errorf("the archive expands to more than the %s of files a bundle may hold", sizeString(MaxBundleBytes))
	}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if lr.N <= 0 {
				return nil, tooLarge()
			}
			return nil, fmt.Errorf("reading the tarball: %w", err)
		}
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		name, err := cleanPath(hdr.Name)
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%s is not a regular file (tar type %q): a bundle holds regular files only", name, hdr.Typeflag)
		}
		if seen[name] {
			return nil, fmt.Errorf("%s is in the archive twice", name)
		}
		seen[name] = true
		if len(files) == MaxBundleFiles {
			return nil, fmt.Errorf("the bundle has more than %d files", MaxBundleFiles)
		}
		if hdr.Size < 0 || hdr.Size > MaxBundleBytes-total {
			return nil, tooLarge()
		}
		data := make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			if lr.N <= 0 {
				return nil, tooLarge()
			}
			return nil, fmt.Errorf("reading %s from the tarball: %w", name, err)
		}
		total += hdr.Size
		files = append(files, bundleFile{path: name, data: data})
	}
	return files, nil
}

// cleanPath turns the path of a file of a bundle into its canonical form:
// relative to the root, slash-separated, without "." elements. A path with
// "..", a backslash or a NUL, or that is not UTF-8, is refused.
func cleanPath(name string) (string, error) {
	if len(name) > maxPathBytes || !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\\") {
		return "", fmt.Errorf("file %q has a path a bundle may not use", truncate(name, 80))
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("file %q has a path outside the bundle", truncate(name, 80))
		}
	}
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	if clean == "" {
		return "", fmt.Errorf("file %q has no name", truncate(name, 80))
	}
	return clean, nil
}

// pack writes files as a deterministic gzipped tarball: sorted by path, each
// as "/path" (the form `opa build` writes) with mode 0644, owner 0 and time 0.
func pack(files []bundleFile) ([]byte, error) {
	if len(files) == 0 {
		return nil, errors.New("the bundle has no files")
	}
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b bundleFile) int { return strings.Compare(a.path, b.path) })
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	for i, f := range sorted {
		if i > 0 && sorted[i-1].path == f.path {
			return nil, fmt.Errorf("%s is in the bundle twice", f.path)
		}
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     "/" + f.path,
			Mode:     0o644,
			Size:     int64(len(f.data)),
			ModTime:  time.Unix(0, 0),
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("writing %s: %w", f.path, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("writing %s: %w", f.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	if buf.Len() > MaxArchiveBytes {
		return nil, fmt.Errorf("the bundle archive is %s, more than the %s loopgate keeps", sizeString(int64(buf.Len())), sizeString(MaxArchiveBytes))
	}
	return buf.Bytes(), nil
}

// CheckOptions are how Check judges a bundle.
type CheckOptions struct {
	// VerificationKeys are the keys a bundle must be signed with, by key id
	// (OPA's key configuration: a PEM public key or certificate, or an HMAC
	// secret, with its algorithm, RS256 when empty). With none, signatures
	// are not checked (a signed bundle is read as if it were not) and
	// Checked.SignedBy stays empty; with some, only a bundle whose
	// .signatures.json verifies with one of them, covering every file
	// exactly, is accepted.
	VerificationKeys map[string]*bundle.KeyConfig
	// TestTimeout bounds running the bundle's tests; 0 means
	// DefaultTestTimeout.
	TestTimeout time.Duration
}

// DefaultTestTimeout bounds running a bundle's tests in Check.
const DefaultTestTimeout = 2 * time.Minute

// Checked is a bundle that Check accepted (or refused only because of its
// tests: see Check).
type Checked struct {
	// Bundle is the parsed bundle, ready for NewEngine or Engine.Swap.
	Bundle *bundle.Bundle `json:"-"`
	// Archive is the bundle in Pack's normalised form: what to store.
	Archive []byte `json:"-"`
	// Digest is the hex SHA-256 of Archive.
	Digest string `json:"digest"`
	// Revision is the .manifest revision.
	Revision string `json:"revision"`
	// Manifest is the bundle's manifest as JSON (with OPA's defaults).
	Manifest json.RawMessage `json:"manifest"`
	// Files are the paths of the bundle's files, sorted.
	Files []string `json:"files"`
	// SignedBy is the id of the key the bundle's signature verified with;
	// empty when CheckOptions had no keys.
	SignedBy string `json:"signedBy,omitempty"`
	// Tests are the results of the bundle's own Rego tests (RunTests).
	Tests []TestResult `json:"tests"`
}

// Reasons a bundle is refused (CheckError.Reason).
const (
	// ReasonInvalidArchive: not a readable bundle archive (not a gzipped
	// tarball, too large, special files, paths outside the bundle).
	ReasonInvalidArchive = "INVALID_ARCHIVE"
	// ReasonInvalidBundle: the files are not a bundle loopgate can use
	// (malformed manifest or data, delta or wasm bundles).
	ReasonInvalidBundle = "INVALID_BUNDLE"
	// ReasonUnsigned: keys are configured and the bundle has no signature.
	ReasonUnsigned = "UNSIGNED"
	// ReasonUnknownKey: the signature names no key, or a key that is not
	// one of the verification keys.
	ReasonUnknownKey = "UNKNOWN_KEY"
	// ReasonBadSignature: the signature does not verify with its key.
	ReasonBadSignature = "BAD_SIGNATURE"
	// ReasonModified: a file was changed, added or removed after signing.
	ReasonModified = "MODIFIED_AFTER_SIGNING"
	// ReasonNoRevision: the .manifest has no revision.
	ReasonNoRevision = "NO_REVISION"
	// ReasonInvalidRevision: the revision is not one loopgate can name.
	ReasonInvalidRevision = "INVALID_REVISION"
	// ReasonCompile: a file does not parse or the bundle does not compile
	// (CheckError.Problems says where).
	ReasonCompile = "COMPILE_ERROR"
	// ReasonNotLoopgatePolicy: the bundle defines no data.loopgate.loop.deny.
	ReasonNotLoopgatePolicy = "NOT_A_LOOPGATE_POLICY"
	// ReasonNoTests: the bundle has no test that runs.
	ReasonNoTests = "NO_TESTS"
	// ReasonTestsFailed: some of the bundle's tests fail or cannot run
	// (CheckError.FailedTests names them).
	ReasonTestsFailed = "TESTS_FAILED"
)

// CheckError says why Check refused a bundle.
type CheckError struct {
	Reason string // one of the Reason constants
	Msg    string // what is wrong and what to do
	// Problems are the places of ReasonCompile errors ("file:line: message")
	// and the files of ReasonModified.
	Problems []string
	// FailedTests are "package.test" of every failing or erroring test
	// (ReasonTestsFailed), sorted.
	FailedTests []string
	Err         error // the cause, if any
}

func (e *CheckError) Error() string {
	msg := fmt.Sprintf("policy bundle refused (%s): %s", e.Reason, e.Msg)
	if len(e.Problems) > 0 {
		msg += ": " + strings.Join(e.Problems, "; ")
	}
	if len(e.FailedTests) > 0 {
		msg += ": " + strings.Join(e.FailedTests, ", ")
	}
	return msg
}

func (e *CheckError) Unwrap() error { return e.Err }

// Check decides whether an archive is a bundle loopgate may activate, the
// way a security reviewer would ask: it unpacks it (bounded, as Pack),
// verifies its signature when opts has verification keys (OPA's bundle
// verification: an unsigned bundle, a signature by an unknown key, a bad
// signature and any file changed, added or removed after signing are
// refused, each with its reason), parses it (Rego v1 unless the manifest
// says otherwise), requires a .manifest revision, compiles it exactly as
// NewEngine prepares it, and runs its Rego tests with OPA's tester.
//
// Every refusal is a *CheckError. When the bundle is refused only because
// of its tests (ReasonTestsFailed, ReasonNoTests), Check also returns the
// Checked bundle with every test result, so that they can be shown;
// otherwise the Checked is nil on error.
func Check(ctx context.Context, archive []byte, opts CheckOptions) (*Checked, error) {
	files, canonical, b, signedBy, err := readArchive(archive, opts.VerificationKeys)
	if err != nil {
		return nil, err
	}
	rev := b.Manifest.Revision
	if rev == "" {
		return nil, &CheckError{Reason: ReasonNoRevision,
			Msg: `the .manifest has no revision: set one, e.g. {"revision": "acme-2026.11.1", "roots": ["loopgate"]}, or build with opa build --revision`}
	}
	if !revisionRE.MatchString(rev) {
		return nil, &CheckError{Reason: ReasonInvalidRevision,
			Msg: fmt.Sprintf("revision %q is not 1 to 128 letters, digits and . _ - : + @", truncate(rev, 140))}
	}
	if !definesDeny(b) {
		return nil, &CheckError{Reason: ReasonNotLoopgatePolicy,
			Msg: "the bundle defines no rule data.loopgate.loop.deny: every request would be refused; see docs/policy.md for the decision document"}
	}
	cp := b.Copy()
	if _, err := prepare(ctx, &cp); err != nil {
		return nil, compileError(err)
	}
	manifest, err := json.Marshal(b.Manifest)
	if err != nil {
		return nil, &CheckError{Reason: ReasonInvalidBundle, Msg: "encoding the manifest: " + err.Error(), Err: err}
	}
	sum := sha256.Sum256(canonical)
	c := &Checked{
		Bundle:   b,
		Archive:  canonical,
		Digest:   hex.EncodeToString(sum[:]),
		Revision: rev,
		Manifest: manifest,
		Files:    make([]string, len(files)),
		SignedBy: signedBy,
	}
	for i, f := range files {
		c.Files[i] = f.path
	}
	slices.Sort(c.Files)

	timeout := opts.TestTimeout
	if timeout <= 0 {
		timeout = DefaultTestTimeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	results, err := RunTests(tctx, b)
	if err != nil {
		if tctx.Err() != nil && ctx.Err() == nil {
			return nil, &CheckError{Reason: ReasonTestsFailed, Msg: fmt.Sprintf("the tests did not finish within %s", timeout), Err: err}
		}
		return nil, compileError(err)
	}
	c.Tests = results
	var failed []string
	ran := 0
	for _, r := range results {
		if r.Skip {
			continue
		}
		ran++
		if !r.Pass || r.Error != "" {
			failed = append(failed, r.Package+"."+r.Name)
		}
	}
	if tctx.Err() != nil && ctx.Err() == nil {
		return c, &CheckError{Reason: ReasonTestsFailed, Msg: fmt.Sprintf("the tests did not finish within %s", timeout), FailedTests: failed}
	}
	if len(failed) > 0 {
		return c, &CheckError{Reason: ReasonTestsFailed,
			Msg:         fmt.Sprintf("%d of %d tests fail; fix the policy or the tests (loopctl policy test shows each)", len(failed), ran),
			FailedTests: failed}
	}
	if ran == 0 {
		return c, &CheckError{Reason: ReasonNoTests,
			Msg: "the bundle has no test that runs: add *_test.rego files with test_ rules showing what each rule denies and allows"}
	}
	return c, nil
}

// ReadArchive parses a bundle archive (as Pack makes it, or as stored after
// Check) with the bounds and Rego version Check uses, verifying its
// signature when keys are given, without compiling it or running its tests.
// A server uses it to load a bundle it checked before; errors are
// *CheckError.
func ReadArchive(archive []byte, keys map[string]*bundle.KeyConfig) (*bundle.Bundle, error) {
	_, _, b, _, err := readArchive(archive, keys)
	return b, err
}

var revisionRE = regexp.MustCompile(`^[A-Za-z0-9._:+@-]{1,128}$`)

// readArchive unpacks and normalises the archive, verifies its signature
// when keys are given, and parses it.
func readArchive(archive []byte, keys map[string]*bundle.KeyConfig) (files []bundleFile, canonical []byte, b *bundle.Bundle, signedBy string, err error) {
	files, err = unpack(archive)
	if err == nil {
		canonical, err = pack(files)
	}
	if err != nil {
		return nil, nil, nil, "", &CheckError{Reason: ReasonInvalidArchive, Msg: err.Error(), Err: err}
	}
	reader := bundle.NewCustomReader(bundle.NewTarballLoaderWithBaseURL(bytes.NewReader(canonical), "")).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(MaxBundleBytes)
	if len(keys) > 0 {
		var vc *bundle.VerificationConfig
		if signedBy, vc, err = verifySignature(files, keys); err != nil {
			return nil, nil, nil, "", err
		}
		// OPA's reader verifies again, as it would when OPA loads the bundle.
		reader = reader.WithBundleVerificationConfig(vc)
	} else {
		reader = reader.WithSkipBundleVerification(true)
	}
	read, err := reader.Read()
	if err != nil {
		var astErrs ast.Errors
		if errors.As(err, &astErrs) {
			return nil, nil, nil, "", compileError(err)
		}
		if len(keys) > 0 && strings.Contains(err.Error(), "signature") {
			return nil, nil, nil, "", &CheckError{Reason: ReasonBadSignature, Msg: err.Error(), Err: err}
		}
		return nil, nil, nil, "", &CheckError{Reason: ReasonInvalidBundle, Msg: err.Error(), Err: err}
	}
	switch {
	case read.Type() == bundle.DeltaBundleType:
		err = errors.New("delta bundles are not supported: push the whole bundle (a snapshot)")
	case len(read.WasmModules) > 0 || len(read.PlanModules) > 0:
		err = errors.New("the bundle holds wasm or plan modules: loopgate evaluates Rego, build the bundle without -t wasm or -t plan")
	}
	if err != nil {
		return nil, nil, nil, "", &CheckError{Reason: ReasonInvalidBundle, Msg: err.Error()}
	}
	return files, canonical, &read, signedBy, nil
}

// verifySignature checks the bundle's .signatures.json against keys with
// OPA's verification functions, file by file, so that each kind of problem
// gets its own reason. It returns the id of the key that verified it and the
// verification config for OPA's reader.
func verifySignature(files []bundleFile, keys map[string]*bundle.KeyConfig) (string, *bundle.VerificationConfig, error) {
	ids := slices.Sorted(maps.Keys(keys))
	idx := slices.IndexFunc(files, func(f bundleFile) bool { return f.path == signaturesFile })
	if idx < 0 {
		return "", nil, &CheckError{Reason: ReasonUnsigned,
			Msg: "the bundle is not signed (it has no .signatures.json) but must be signed with one of the verification keys (" +
				strings.Join(ids, ", ") + "); sign it with opa build --signing-key or opa sign (docs/policy.md)"}
	}
	var sc bundle.SignaturesConfig
	if err := json.Unmarshal(files[idx].data, &sc); err != nil {
		return "", nil, &CheckError{Reason: ReasonBadSignature, Msg: ".signatures.json is not valid: " + err.Error(), Err: err}
	}
	if len(sc.Signatures) != 1 {
		return "", nil, &CheckError{Reason: ReasonBadSignature,
			Msg: fmt.Sprintf(".signatures.json holds %d signatures; OPA bundles carry exactly one", len(sc.Signatures))}
	}
	kid := tokenKeyID(sc.Signatures[0])
	if kid == "" {
		return "", nil, &CheckError{Reason: ReasonUnknownKey,
			Msg: "the signature names no key id: sign with opa build --verification-key-id ID, or opa sign --claims-file with {\"keyid\": \"ID\"}"}
	}
	if _, ok := keys[kid]; !ok {
		return "", nil, &CheckError{Reason: ReasonUnknownKey,
			Msg: fmt.Sprintf("the bundle is signed with key %q, which is not one of the verification keys (%s)", truncate(kid, 80), strings.Join(ids, ", "))}
	}
	withDefaults := make(map[string]*bundle.KeyConfig, len(keys))
	for id, k := range keys {
		if k == nil {
			continue
		}
		c := *k
		if c.Algorithm == "" {
			c.Algorithm = "RS256"
		}
		withDefaults[id] = &c
	}
	vc := bundle.NewVerificationConfig(withDefaults, "", "", nil)
	signed, err := bundle.VerifyBundleSignature(sc, vc)
	if err != nil {
		return "", nil, &CheckError{Reason: ReasonBadSignature,
			Msg: fmt.Sprintf("the signature does not verify with key %q: %v", kid, err), Err: err}
	}
	var (
		problems []string
		present  = make(map[string]bool, len(files))
	)
	for _, f := range files {
		present[f.path] = true
		if f.path == signaturesFile {
			continue
		}
		if _, ok := signed[f.path]; !ok {
			problems = append(problems, f.path+" is not covered by the signature (added after signing)")
			continue
		}
		if err := bundle.VerifyBundleFile(f.path, *bytes.NewBuffer(f.data), signed); err != nil {
			if strings.Contains(err.Error(), "digest mismatch") {
				problems = append(problems, f.path+" was modified after signing")
			} else {
				problems = append(problems, fmt.Sprintf("%s: %v", f.path, err))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(signed)) {
		if !present[name] {
			problems = append(problems, name+" is signed but missing from the bundle (removed after signing)")
		}
	}
	if len(problems) > 0 {
		return "", nil, &CheckError{Reason: ReasonModified,
			Msg:      fmt.Sprintf("the bundle does not match its signature by key %q; sign it again after the last change", kid),
			Problems: problems}
	}
	return kid, vc, nil
}

// tokenKeyID returns the key id a bundle signature names: the JWT header's
// "kid", else the payload's "keyid" claim (what OPA verifies with).
func tokenKeyID(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if raw, err := base64.RawURLEncoding.DecodeString(parts[0]); err == nil && json.Unmarshal(raw, &hdr) == nil && hdr.Kid != "" {
		return hdr.Kid
	}
	var payload struct {
		KeyID string `json:"keyid"`
	}
	if raw, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil && json.Unmarshal(raw, &payload) == nil {
		return payload.KeyID
	}
	return ""
}

// definesDeny reports whether a module of the bundle defines
// data.loopgate.loop.deny, the set every decision needs.
func definesDeny(b *bundle.Bundle) bool {
	want := ast.MustParseRef("data.loopgate.loop.deny")
	for _, m := range b.Modules {
		if m.Parsed == nil {
			continue
		}
		for _, r := range m.Parsed.Rules {
			if m.Parsed.Package.Path.Extend(r.Head.Ref()).Equal(want) {
				return true
			}
		}
	}
	return false
}

// compileError turns a parse or compile error into a CheckError naming
// file:line of each problem.
func compileError(err error) *CheckError {
	ce := &CheckError{Reason: ReasonCompile, Msg: "the bundle does not compile", Err: err}
	var astErrs ast.Errors
	if !errors.As(err, &astErrs) {
		ce.Msg += ": " + err.Error()
		return ce
	}
	for _, e := range astErrs {
		if e.Location == nil {
			ce.Problems = append(ce.Problems, fmt.Sprintf("%s: %s", e.Code, e.Message))
			continue
		}
		ce.Problems = append(ce.Problems, fmt.Sprintf("%s:%d: %s: %s", strings.TrimPrefix(e.Location.File, "/"), e.Location.Row, e.Code, e.Message))
	}
	return ce
}

// Unwaivable returns the rule ids a bundle's data lists as never waived
// (data.loopgate.config.unwaivable, as the default bundle does), sorted; nil
// when it lists none. The bundle applies them itself; a server may use them
// to refuse granting a waiver that would be ignored.
func Unwaivable(b *bundle.Bundle) []string {
	if b == nil {
		return nil
	}
	var cur any = b.Data
	for _, key := range []string{"loopgate", "config", "unwaivable"} {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[key]
	}
	list, ok := cur.([]any)
	if !ok {
		return nil
	}
	var out []string
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sizeString(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// truncate shortens s to at most n bytes (on a rune boundary) for messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
