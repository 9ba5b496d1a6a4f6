package app

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/loopgate/loopgate/config"
	"github.com/loopgate/loopgate/internal/devcreds"
)

// DevCredentialsPath is where the embedded server writes the dev
// credentials for loopctl: $HOME/.loopgate/dev-credentials.json.
func DevCredentialsPath() (string, error) { return devcreds.Path() }

// demoIdentities are the embedded default's identities, by token name.
var demoIdentities = []struct {
	name string
	tok  config.Token
}{
	{"admin", config.Token{Subject: "dev-admin@loopgate.local", Roles: []string{"admin"}}},
	{"reviewer", config.Token{Subject: "security-reviewer@loopgate.local", Roles: []string{"security-reviewer"}}},
	{"reviewer2", config.Token{Subject: "second-reviewer@loopgate.local", Roles: []string{"security-reviewer"}}},
	{"auditor", config.Token{Subject: "auditor@loopgate.local", Roles: []string{"auditor"}}},
	{"growth", config.Token{Subject: "growth-dev@example.com", Teams: []string{"growth"}}},
	{"growth-lead", config.Token{Subject: "growth-lead@example.com", Teams: []string{"growth"}, Roles: []string{"team-admin"}}},
	{"risk", config.Token{Subject: "risk-dev@example.com", Teams: []string{"risk"}}},
}

// devTokens loads the demo tokens from dataDir/dev-tokens.json, generating
// them on first start, so that tokens survive restarts with the data.
func devTokens(dataDir string) (map[string]string, []config.Token, error) {
	path := filepath.Join(dataDir, "dev-tokens.json")
	byName := map[string]string{}
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &byName); err != nil {
			return nil, nil, fmt.Errorf("reading %s: %w", path, err)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, nil, err
	}
	changed := false
	var tokens []config.Token
	for _, d := range demoIdentities {
		if byName[d.name] == "" {
			var b [20]byte
			if _, err := rand.Read(b[:]); err != nil {
				return nil, nil, err
			}
			byName[d.name] = "lg_dev_" + d.name + "_" + hex.EncodeToString(b[:])
			changed = true
		}
		t := d.tok
		t.Token = byName[d.name]
		tokens = append(tokens, t)
	}
	if changed {
		out, _ := json.MarshalIndent(byName, "", "  ")
		if err := os.WriteFile(path, out, 0o600); err != nil {
			return nil, nil, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return byName, tokens, nil
}

// writeDevCredentials writes the credentials file for loopctl.
func writeDevCredentials(server string, byName map[string]string) (string, error) {
	path, err := devcreds.Path()
	if err != nil {
		return "", err
	}
	return path, devcreds.Write(path, devcreds.Credentials{Server: server, Token: byName["admin"], Tokens: byName})
}

// demoNames lists the demo identities, for the banner.
func demoNames() []string {
	names := make([]string, len(demoIdentities))
	for i, d := range demoIdentities {
		names[i] = d.name
	}
	return names
}
