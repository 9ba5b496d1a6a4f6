package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/loopgate/loopgate/loop"
)

// fileFlags are the -f and -R flags of apply, plan, diff and delete.
type fileFlags struct {
	files     []string
	recursive bool
}

// register adds -f (required) and -R to cmd.
func (f *fileFlags) register(cmd *cobra.Command, verb string) {
	f.registerOptional(cmd, verb)
	_ = cmd.MarkFlagRequired("filename")
}

// registerOptional adds -f and -R to a command that may also be given its
// loops otherwise (delete: by name).
func (f *fileFlags) registerOptional(cmd *cobra.Command, verb string) {
	cmd.Flags().StringArrayVarP(&f.files, "filename", "f", nil,
		"loop file or directory to "+verb+" (- for standard input); may be repeated")
	cmd.Flags().BoolVarP(&f.recursive, "recursive", "R", false, "with a directory, also read its subdirectories")
}

// read expands the flags (expandFiles) and reads every file
// (readLoopFiles).
func (f *fileFlags) read(stdin io.Reader, stderr io.Writer) ([]*loop.Loop, error) {
	paths, err := expandFiles(f.files, f.recursive)
	if err != nil {
		return nil, err
	}
	return readLoopFiles(stdin, stderr, paths)
}

// readNames expands the flags (expandFiles) and reads the loop names of
// every file (readLoopNames).
func (f *fileFlags) readNames(stdin io.Reader, stderr io.Writer) ([]string, error) {
	paths, err := expandFiles(f.files, f.recursive)
	if err != nil {
		return nil, err
	}
	return readLoopNames(stdin, stderr, paths)
}

// isLoopFile reports whether a file name is a loop file of a directory.
func isLoopFile(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// expandFiles turns the -f values into the files to read, in order: "-"
// (standard input, at most once) and files stay as they are; a directory
// becomes its *.yaml and *.yml files (with recursive, those of its
// subdirectories too), sorted by path. A directory without any is an
// error naming it.
func expandFiles(args []string, recursive bool) ([]string, error) {
	var (
		out   []string
		stdin bool
	)
	for _, arg := range args {
		if arg == "-" {
			if stdin {
				return nil, errors.New("-f - (standard input) may be given only once")
			}
			stdin = true
			out = append(out, arg)
			continue
		}
		info, err := os.Stat(arg)
		if err != nil {
			return nil, fmt.Errorf("reading loop file: %w", err)
		}
		if !info.IsDir() {
			out = append(out, arg)
			continue
		}
		var found []string
		err = filepath.WalkDir(arg, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("reading loop directory: %w", err)
			}
			if d.IsDir() {
				if path != arg && !recursive {
					return filepath.SkipDir
				}
				return nil
			}
			if !isLoopFile(path) {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				if st, err := os.Stat(path); err != nil || st.IsDir() {
					return nil // a dangling link or a link to a directory is not a loop file
				}
			}
			found = append(found, path)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			hint := ""
			if !recursive {
				hint = " (use -R to read its subdirectories)"
			}
			return nil, fmt.Errorf("directory %s has no *.yaml or *.yml files%s", termSafe(arg), hint)
		}
		slices.Sort(found)
		out = append(out, found...)
	}
	return out, nil
}

// readLoopFiles reads every file with readLoopFile, in order. Every file is
// checked before anything is sent: the problems of all of them are printed
// (each naming its file) and then an ExitError is returned. An unreadable
// file stops at once with an error naming it.
func readLoopFiles(stdin io.Reader, stderr io.Writer, paths []string) ([]*loop.Loop, error) {
	if len(paths) == 1 {
		return readLoopFile(stdin, stderr, paths[0])
	}
	var (
		all []*loop.Loop
		bad []string
	)
	for _, p := range paths {
		loops, err := readLoopFile(stdin, stderr, p)
		var exit *ExitError
		switch {
		case errors.As(err, &exit):
			bad = append(bad, termSafe(p))
		case err != nil:
			return nil, err
		}
		all = append(all, loops...)
	}
	if len(bad) > 0 {
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("%d of %d file(s) have problems (%s); nothing was sent",
			len(bad), len(paths), strings.Join(bad, ", "))}
	}
	return all, nil
}
