package config

import (
	"strings"
	"testing"
)

// The embedded default has an observer on both clusters; the observer's
// name is reserved; an external cluster's observer needs a password file.
func TestObserverConfig(t *testing.T) {
	c := Embedded(t.TempDir())
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	cat := c.Catalog()
	for _, cl := range cat.Clusters {
		if cl.Observer != DefaultObserver {
			t.Errorf("cluster %s observer = %q, want %q", cl.Name, cl.Observer, DefaultObserver)
		}
	}
	if why, ok := cat.ReservedPrincipal(DefaultObserver); !ok || !strings.Contains(why, "observer") {
		t.Errorf("the observer principal is not reserved (%q)", why)
	}

	ext := Embedded(t.TempDir())
	ext.Clusters = []Cluster{{Name: "msk", Region: "eu", ReplicationFactor: 3, BootstrapServers: []string{"127.0.0.1:9092"},
		SASL: &SASL{Mechanism: "SCRAM-SHA-512", Username: "loopgate", Password: "x"}, Observer: &Observer{Username: "loopgate-observer"}}}
	ext.SetDefaults()
	err := ext.Validate()
	if err == nil || !strings.Contains(err.Error(), "observer.passwordFile") {
		t.Errorf("external cluster without observer password file: %v", err)
	}
	ext.Clusters[0].Observer = &Observer{Username: "loopgate"}
	if err := ext.Validate(); err == nil || !strings.Contains(err.Error(), "must differ from loopgate's admin principal") {
		t.Errorf("observer = admin: %v", err)
	}
	ext.Clusters[0].Observer = &Observer{Username: "User:loopgate-observer", PasswordFile: "/run/secrets/observer"}
	if err := ext.Validate(); err == nil || !strings.Contains(err.Error(), `without "User:"`) {
		t.Errorf("observer named with User: %v, want it refused (SCRAM user names have no prefix)", err)
	}
	ext.Clusters[0].Observer = &Observer{Username: "loopgate-observer", PasswordFile: "/run/secrets/observer"}
	if err := ext.Validate(); err != nil && strings.Contains(err.Error(), "observer") {
		t.Errorf("valid observer refused: %v", err)
	}
}
