package app_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/loopgate/loopgate/config"
)

// Whatever the mode of an existing data dir, what loopgate writes in it
// (the SQLite store, the embedded clusters' data and credentials, dev
// tokens) is private to its user; files an older version left readable are
// made private at start.
func TestDataDirFilesArePrivate(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "left-by-an-older-version.json")
	if err := os.WriteFile(old, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(old, 0o644)
	r := runServer(t, config.Embedded(dir), 0)
	r.Stop()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files++
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %s: readable by others", path, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Errorf("only %d files in the data dir: did the server write anything?", files)
	}
}
