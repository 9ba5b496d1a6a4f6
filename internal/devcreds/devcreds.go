// Package devcreds is the dev credentials file that `loopgate serve` writes
// in its embedded default mode (as `vault server -dev` writes
// ~/.vault-token) and that loopctl reads, so that loopctl on the same
// machine works without flags.
package devcreds

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Credentials is the file's content. Token is the admin token; Tokens holds
// every demo identity's token by name, for `loopctl --as NAME`.
type Credentials struct {
	Server string            `json:"server"`
	Token  string            `json:"token"`
	Tokens map[string]string `json:"tokens,omitempty"`
}

// Path returns $HOME/.loopgate/dev-credentials.json.
func Path() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locating the home directory for dev credentials: %w", err)
	}
	return filepath.Join(home, ".loopgate", "dev-credentials.json"), nil
}

// Read reads the file at path. A missing file is not an error: it returns
// nil, nil.
func Read(path string) (*Credentials, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading dev credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("reading dev credentials %s: %w (delete the file and restart `loopgate serve` to rewrite it)", path, err)
	}
	return &c, nil
}

// Write writes c to path (mode 0600, directory 0700).
func Write(path string, c Credentials) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing dev credentials: %w", err)
	}
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing dev credentials: %w", err)
	}
	return nil
}
