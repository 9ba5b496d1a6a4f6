package identity

import (
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestJWTConfigValidate(t *testing.T) {
	valid := JWTConfig{Issuer: testIssuer, Audience: testAudience, JWKSURL: "https://issuer.test/jwks.json"}
	if errs := valid.Validate(); len(errs) != 0 {
		t.Fatalf("valid config: %v", errs)
	}

	tests := []struct {
		name   string
		modify func(*JWTConfig)
		want   []string // one per expected error, in order
	}{
		{"empty", func(c *JWTConfig) { *c = JWTConfig{} }, []string{
			"jwt.issuer: required",
			"jwt.audience: required",
			"jwt.jwksURL: required (or jwksFile)",
		}},
		{"everything wrong at once", func(c *JWTConfig) {
			*c = JWTConfig{
				Issuer:       " https://issuer.test",
				Audience:     "loopgate ",
				JWKSURL:      "https://issuer.test/jwks.json",
				JWKSFile:     "/etc/jwks.json",
				Algorithms:   []string{"RS256", "none", "HS256", "hs512", "RSA-OAEP", "ES256"},
				Leeway:       -time.Second,
				Refresh:      10 * time.Second,
				SubjectClaim: "a..b",
				TeamsClaim:   ".teams",
				RolesClaim:   "roles.",
			}
		}, []string{
			"jwt.issuer:",
			"jwt.audience:",
			"jwt.jwksFile: set jwksURL or jwksFile, not both",
			`jwt.algorithms[1]: "none" is never allowed`,
			`jwt.algorithms[2]: "HS256" is a symmetric (HMAC) algorithm`,
			`jwt.algorithms[3]: "hs512" is a symmetric (HMAC) algorithm`,
			`jwt.algorithms[4]: "RSA-OAEP" is not a supported algorithm`,
			"jwt.leeway: must not be negative",
			"jwt.refresh: 10s is below the minimum of 1m0s",
			`jwt.subjectClaim: "a..b" has an empty path segment`,
			`jwt.teamsClaim: ".teams" has an empty path segment`,
			`jwt.rolesClaim: "roles." has an empty path segment`,
		}},
		{"leeway too large", func(c *JWTConfig) { c.Leeway = 6 * time.Minute }, []string{"jwt.leeway: 6m0s exceeds the maximum of 5m0s"}},
		{"negative refresh", func(c *JWTConfig) { c.Refresh = -time.Minute }, []string{"jwt.refresh: must not be negative"}},
		{"URL scheme", func(c *JWTConfig) { c.JWKSURL = "file:///etc/jwks.json" }, []string{"jwt.jwksURL:", "scheme must be https or http"}},
		{"URL without host", func(c *JWTConfig) { c.JWKSURL = "https:///jwks.json" }, []string{"jwt.jwksURL:", "has no host"}},
		{"URL with credentials", func(c *JWTConfig) { c.JWKSURL = "https://user:pw@issuer.test/jwks.json" }, []string{"jwt.jwksURL: must not contain credentials"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.modify(&cfg)
			errs := cfg.Validate()
			var got []string
			for _, err := range errs {
				got = append(got, err.Error())
			}
			// Each expected fragment must appear; "everything wrong"
			// expects exactly one error per fragment.
			for _, want := range tt.want {
				if !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, want) }) {
					t.Errorf("no error contains %q; got:\n%s", want, strings.Join(got, "\n"))
				}
			}
			if tt.name != "URL scheme" && tt.name != "URL without host" && len(got) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			if strings.Contains(strings.Join(got, "\n"), "user:pw") {
				t.Errorf("error echoes URL credentials")
			}
		})
	}
}

func TestJWTConfigDefaults(t *testing.T) {
	c := JWTConfig{}.withDefaults()
	if !slices.Equal(c.Algorithms, []string{"RS256", "ES256"}) || c.Leeway != time.Minute || c.Refresh != 15*time.Minute ||
		c.SubjectClaim != "sub" || c.TeamsClaim != "teams" || c.RolesClaim != "roles" {
		t.Errorf("defaults = %+v", c)
	}
	c.Algorithms[0] = "PS256"
	if DefaultAlgorithms[0] != "RS256" {
		t.Error("withDefaults shares DefaultAlgorithms")
	}
}

func TestJWTConfigYAML(t *testing.T) {
	doc := `
issuer: https://login.acme.example/realms/acme
audience: loopgate
jwksURL: https://login.acme.example/realms/acme/protocol/openid-connect/certs
algorithms: [RS256, PS256]
leeway: 30s
refresh: 5m
subjectClaim: preferred_username
teamsClaim: groups
rolesClaim: realm_access.roles
`
	var c JWTConfig
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := JWTConfig{
		Issuer:       "https://login.acme.example/realms/acme",
		Audience:     "loopgate",
		JWKSURL:      "https://login.acme.example/realms/acme/protocol/openid-connect/certs",
		Algorithms:   []string{"RS256", "PS256"},
		Leeway:       30 * time.Second,
		Refresh:      5 * time.Minute,
		SubjectClaim: "preferred_username",
		TeamsClaim:   "groups",
		RolesClaim:   "realm_access.roles",
	}
	if c.Issuer != want.Issuer || c.Audience != want.Audience || c.JWKSURL != want.JWKSURL ||
		!slices.Equal(c.Algorithms, want.Algorithms) || c.Leeway != want.Leeway || c.Refresh != want.Refresh ||
		c.SubjectClaim != want.SubjectClaim || c.TeamsClaim != want.TeamsClaim || c.RolesClaim != want.RolesClaim {
		t.Errorf("decoded %+v, want %+v", c, want)
	}
	if errs := c.Validate(); len(errs) != 0 {
		t.Errorf("Validate: %v", errs)
	}
}
