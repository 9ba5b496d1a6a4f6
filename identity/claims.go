package identity

import (
	"fmt"
	"strings"
)

// claimPath names a claim, possibly nested: "realm_access.roles" is the
// "roles" member of the "realm_access" object.
type claimPath struct {
	full  string
	parts []string
}

// checkClaimPath rejects paths with empty segments ("a..b", ".a", "a.").
func checkClaimPath(path string) error {
	for _, p := range strings.Split(path, ".") {
		if p == "" {
			return fmt.Errorf("%q has an empty path segment", path)
		}
	}
	return nil
}

func newClaimPath(path string) claimPath {
	return claimPath{full: path, parts: strings.Split(path, ".")}
}

// lookup finds the claim in claims. A top-level claim named by the whole
// path wins, so namespaced claims like "https://acme.example/teams" work;
// otherwise the path is followed through nested objects.
func (p claimPath) lookup(claims map[string]any) (any, bool) {
	if v, ok := claims[p.full]; ok {
		return v, true
	}
	if len(p.parts) == 1 {
		return nil, false
	}
	var cur any = claims
	for _, part := range p.parts {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// stringClaim returns the claim at p as a string: a missing claim is "",
// anything but a string is an error.
func stringClaim(claims map[string]any, p claimPath) (string, error) {
	v, ok := p.lookup(claims)
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("claim %q must be a string", p.full)
	}
	return s, nil
}

// listClaim returns the claim at p as a list of names: an array of strings
// or a single string. A missing or null claim is an empty list. Empty
// strings and duplicates are dropped; the list and each entry are bounded.
func listClaim(claims map[string]any, p claimPath) ([]string, error) {
	v, ok := p.lookup(claims)
	if !ok || v == nil {
		return nil, nil
	}
	var raw []any
	switch v := v.(type) {
	case string:
		raw = []any{v}
	case []any:
		raw = v
	default:
		return nil, fmt.Errorf("claim %q must be a string or an array of strings", p.full)
	}
	if len(raw) > maxGroupEntries {
		return nil, fmt.Errorf("claim %q has %d entries, more than %d", p.full, len(raw), maxGroupEntries)
	}
	out := make([]string, 0, len(raw))
	seen := make(map[string]bool, len(raw))
	for _, e := range raw {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("claim %q must be a string or an array of strings", p.full)
		}
		if s == "" || seen[s] {
			continue
		}
		if err := checkName(s, maxGroupBytes); err != nil {
			return nil, fmt.Errorf("claim %q: an entry %v", p.full, err)
		}
		seen[s] = true
		out = append(out, s)
	}
	return out, nil
}
