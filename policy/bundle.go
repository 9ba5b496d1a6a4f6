package policy

import (
	"compress/gzip"
	"embed"
	"fmt"
	"io/fs"
	"os"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// defaultFS holds the default bundle. "all:" keeps .manifest, which go:embed
// would otherwise skip as a dot file.
//
//go:embed all:bundles/default
var defaultFS embed.FS

// DefaultBundle returns the bundle shipped in the binary, freshly parsed, so
// callers may keep or modify it.
func DefaultBundle() (*bundle.Bundle, error) {
	sub, err := fs.Sub(defaultFS, "bundles/default")
	if err != nil {
		return nil, fmt.Errorf("policy: opening the embedded default bundle: %w", err)
	}
	loader, err := bundle.NewFSLoader(sub)
	if err != nil {
		return nil, fmt.Errorf("policy: opening the embedded default bundle: %w", err)
	}
	b, err := readBundle(loader)
	if err != nil {
		return nil, fmt.Errorf("policy: reading the embedded default bundle: %w", err)
	}
	return b, nil
}

// LoadBundle reads an OPA bundle from a directory or a .tar.gz file (as
// built by `opa build`). Rego files are parsed as Rego v1 unless the
// manifest says otherwise.
func LoadBundle(path string) (*bundle.Bundle, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("policy: loading bundle: %w", err)
	}
	if info.IsDir() {
		b, err := readBundle(bundle.NewDirectoryLoader(path))
		if err != nil {
			return nil, fmt.Errorf("policy: loading bundle directory %s: %w", path, err)
		}
		return b, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: loading bundle: %w", err)
	}
	defer f.Close()
	// NewTarballLoader gunzips itself; checking the header first gives a
	// clearer error for a file that is not a bundle at all.
	if _, err := gzip.NewReader(f); err != nil {
		return nil, fmt.Errorf("policy: loading bundle %s: not a directory or a .tar.gz bundle: %w", path, err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, fmt.Errorf("policy: loading bundle %s: %w", path, err)
	}
	b, err := readBundle(bundle.NewTarballLoader(f))
	if err != nil {
		return nil, fmt.Errorf("policy: loading bundle %s: %w", path, err)
	}
	return b, nil
}

func readBundle(loader bundle.DirectoryLoader) (*bundle.Bundle, error) {
	b, err := bundle.NewCustomReader(loader).
		WithRegoVersion(ast.RegoV1).
		Read()
	if err != nil {
		return nil, err
	}
	return &b, nil
}
