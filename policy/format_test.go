package policy_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
)

// The default bundle's Rego is kept as `opa fmt` writes it, so reviews of
// policy changes show only real changes. LOOPGATE_FMT=1 rewrites the files.
func TestDefaultBundleIsFormatted(t *testing.T) {
	err := filepath.WalkDir("bundles/default", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		want, err := format.SourceWithOpts(path, src, format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		if !bytes.Equal(src, want) {
			if os.Getenv("LOOPGATE_FMT") == "1" {
				return os.WriteFile(path, want, 0o644)
			}
			t.Errorf("%s is not formatted as opa fmt would; run LOOPGATE_FMT=1 go test ./policy -run Formatted", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
