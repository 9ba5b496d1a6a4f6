package identity

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestStaticTokens(t *testing.T) {
	const aliceToken, botToken = "lg_alice_0123456789abcdef", "lg_bot_fedcba9876543210"
	s, err := NewStaticTokens([]StaticToken{
		{Token: aliceToken, Identity: Identity{Subject: "alice", Teams: []string{"payments"}, Roles: []string{"admin"}}},
		{Token: botToken, Identity: Identity{Subject: "ci-bot", Method: "jwt", Issuer: "x", Expiry: time.Now()}},
	})
	if err != nil {
		t.Fatal(err)
	}

	id, ok := s.Lookup(aliceToken)
	if !ok || id.Subject != "alice" || id.Method != MethodToken || id.Teams[0] != "payments" || id.Roles[0] != "admin" {
		t.Fatalf("Lookup(alice) = %+v, %v", id, ok)
	}
	// The caller cannot change the configured identity through the result.
	id.Teams[0] = "everything"
	if again, _ := s.Lookup(aliceToken); again.Teams[0] != "payments" {
		t.Errorf("Lookup result shares memory with the configuration")
	}

	bot, ok := s.Lookup(botToken)
	if !ok || bot.Method != MethodToken || bot.Issuer != "" || !bot.Expiry.IsZero() {
		t.Errorf("Lookup(bot) = %+v, %v; want method token, no issuer, no expiry", bot, ok)
	}

	for _, unknown := range []string{"", "lg_alice", aliceToken + "x", strings.ToUpper(aliceToken)} {
		if id, ok := s.Lookup(unknown); ok {
			t.Errorf("Lookup(%q) = %+v, want not found", unknown, id)
		}
	}

	// The raw tokens are not kept.
	if dump := fmt.Sprintf("%#v", s); strings.Contains(dump, aliceToken) || strings.Contains(dump, botToken) {
		t.Errorf("StaticTokens holds a raw token: %s", dump)
	}

	var nilTokens *StaticTokens
	if _, ok := nilTokens.Lookup(aliceToken); ok {
		t.Error("nil StaticTokens found a token")
	}
}

func TestNewStaticTokensErrors(t *testing.T) {
	alice := Identity{Subject: "alice"}
	tests := []struct {
		name   string
		tokens []StaticToken
		want   string
	}{
		{"empty token", []StaticToken{{Token: "", Identity: alice}}, "tokens[0]: token must be"},
		{"token with a space", []StaticToken{{Token: "abc def", Identity: alice}}, "tokens[0]: token must be"},
		{"no subject", []StaticToken{{Token: "abc"}}, "tokens[0]: identity.subject: required"},
		{"duplicate", []StaticToken{{Token: "abc", Identity: alice}, {Token: "abc", Identity: Identity{Subject: "bob"}}}, `tokens[1]: same token as the one of "alice"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewStaticTokens(tt.tokens)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "abc") {
				t.Errorf("error echoes the token: %v", err)
			}
		})
	}
}
