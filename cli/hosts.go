package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// The hosts file keeps the tokens of `loopctl login`, one per server
// address, at $HOME/.loopgate/hosts.json (next to the dev credentials file):
//
//	{
//	  "servers": {
//	    "127.0.0.1:7070": {"token": "...", "subject": "alice@example.com", "expiry": "2026-11-30T10:42:00Z"}
//	  }
//	}
//
// The key is the server address exactly as loopctl resolved it (--server,
// $LOOPGATE_SERVER, ...): localhost:7070 and 127.0.0.1:7070 are two entries.
// expiry is RFC 3339 in UTC, empty when the token does not expire; subject
// and expiry are what GetCaller said at login, for people and messages; the
// server alone decides whether the token is still good. The file is mode
// 0600 in a directory of mode 0700 and is replaced atomically (a temporary
// file renamed over it).

// hostsFileMode and hostsDirMode are the permissions of the hosts file and
// its directory.
const (
	hostsFileMode os.FileMode = 0o600
	hostsDirMode  os.FileMode = 0o700
)

// Hosts is the content of the hosts file.
type Hosts struct {
	Servers map[string]HostEntry `json:"servers"`
}

// HostEntry is the stored login for one server.
type HostEntry struct {
	Token   string `json:"token"`
	Subject string `json:"subject,omitempty"`
	Expiry  string `json:"expiry,omitempty"` // RFC 3339; empty: does not expire
}

// Entry returns the entry of server; false when there is none (also on a
// nil Hosts).
func (h *Hosts) Entry(server string) (HostEntry, bool) {
	if h == nil {
		return HostEntry{}, false
	}
	e, ok := h.Servers[server]
	return e, ok
}

// ExpiryTime parses Expiry; the zero time when it is empty or malformed.
func (e HostEntry) ExpiryTime() time.Time {
	t, err := time.Parse(time.RFC3339, e.Expiry)
	if err != nil {
		return time.Time{}
	}
	return t
}

// HostsPath returns $HOME/.loopgate/hosts.json.
func HostsPath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locating the home directory for the hosts file: %w", err)
	}
	return filepath.Join(home, ".loopgate", "hosts.json"), nil
}

// ReadHosts reads the hosts file at path. A missing file is not an error: it
// returns nil, nil. A file that others may read or write is narrowed to 0600
// first, with a warning to warn; if that fails, ReadHosts refuses the file.
func ReadHosts(path string, warn io.Writer) (*Hosts, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the hosts file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("the hosts file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&^hostsFileMode != 0 {
		if err := os.Chmod(path, hostsFileMode); err != nil {
			return nil, fmt.Errorf("refusing the hosts file %s: its mode %04o lets others read the tokens in it, and narrowing it failed: %w (run `chmod 600 %s`)", path, perm, err, path)
		}
		fmt.Fprintf(warn, "warning: the hosts file %s had mode %04o, so others could read the tokens in it; changed it to %04o (consider those tokens exposed: log in again with fresh ones)\n",
			path, perm, hostsFileMode)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the hosts file: %w", err)
	}
	var h Hosts
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("reading the hosts file %s: %w (delete it and run `loopctl login` again)", path, err)
	}
	return &h, nil
}

// WriteHosts replaces the hosts file at path with h: it writes a temporary
// file of mode 0600 in the same directory and renames it over path, so that
// a crash leaves either the old or the new file, never half of one. The
// directory is created with mode 0700, or narrowed to it, with a warning to
// warn.
func WriteHosts(path string, h *Hosts, warn io.Writer) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, hostsDirMode); err != nil {
		return fmt.Errorf("writing the hosts file: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("writing the hosts file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&^hostsDirMode != 0 {
		if err := os.Chmod(dir, hostsDirMode); err != nil {
			return fmt.Errorf("writing the hosts file: directory %s has mode %04o and narrowing it failed: %w", dir, perm, err)
		}
		fmt.Fprintf(warn, "warning: %s had mode %04o; changed it to %04o\n", dir, perm, hostsDirMode)
	}
	if h.Servers == nil {
		h.Servers = map[string]HostEntry{}
	}
	raw, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the hosts file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".hosts-*.json") // mode 0600
	if err != nil {
		return fmt.Errorf("writing the hosts file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(hostsFileMode); err != nil {
		return fmt.Errorf("writing the hosts file: %w", err)
	}
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		return fmt.Errorf("writing the hosts file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing the hosts file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the hosts file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the hosts file: %w", err)
	}
	// Make the rename itself durable; not every system can sync a directory.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
