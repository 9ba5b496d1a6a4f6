package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "loopgate.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEmbeddedDefaultIsValid(t *testing.T) {
	c := Embedded("data")
	if err := c.Validate(); err != nil {
		t.Fatalf("embedded default does not validate: %v", err)
	}
	if regions := c.Catalog().Regions(); strings.Join(regions, ",") != "eu,us" {
		t.Errorf("embedded regions = %v, want eu,us", regions)
	}
	for _, team := range []string{"growth", "risk"} {
		if _, ok := c.Catalog().Team(team); !ok {
			t.Errorf("embedded catalog lacks team %s", team)
		}
	}
}

func TestLoadProductionConfig(t *testing.T) {
	c, err := Load(write(t, `
grpcAddr: 0.0.0.0:7070
tls: {certFile: /etc/loopgate/tls/server.crt, keyFile: /etc/loopgate/tls/server.key}
store: {driver: postgres, dsnEnv: LOOPGATE_DSN}
clusters:
  - name: eu-1
    region: eu
    bootstrapServers: [kafka-1:9092]
    sasl: {mechanism: SCRAM-SHA-512, username: loopgate, passwordEnv: KAFKA_PASSWORD}
teams:
  - {name: growth, allowedRegions: [eu], maxPartitionsPerLoop: 64, maxPartitions: 512, maxBytesPerSecond: 52428800}
tokens:
  - {tokenEnv: GROWTH_TOKEN, subject: ci@growth, teams: [growth], roles: [developer]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.Clusters[0].ReplicationFactor != 3 || c.Store.Driver != "postgres" {
		t.Errorf("defaults not applied: %+v", c)
	}
}

// Every problem of a config is reported at once, with its field path.
func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := Load(write(t, `
grpcAddr: nonsense
store: {driver: mysql}
clusters:
  - {name: Bad_Name, region: eu, embedded: true, bootstrapServers: [x:1]}
  - {name: eu-2, region: eu, bootstrapServers: [x:1], sasl: {mechanism: GSSAPI}}
teams:
  - {name: growth, allowedRegions: [mars]}
tokens:
  - {subject: "", teams: [nobody], roles: [root]}
`))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"grpcAddr", "store.driver", "clusters[0].name", "clusters[0]: set either", "clusters[1].sasl.mechanism",
		"clusters[1].sasl.username", "teams[0].allowedRegions[0]", "tokens[0].token", "tokens[0].subject", "tokens[0].teams", "tokens[0].roles"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestUnknownKeyRefused(t *testing.T) {
	_, err := Load(write(t, "grpcAddr: 127.0.0.1:1\nlisten: x\nclusters: [{name: a, region: eu, embedded: true}]\n"))
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("unknown key not refused by name: %v", err)
	}
}

func TestRedactedHidesSecrets(t *testing.T) {
	c := &Config{
		Store:    Store{DSN: "postgres://loopgate:s3cret@db:5432/lg"},
		Clusters: []Cluster{{Name: "a", SASL: &SASL{Password: "kafka-secret"}}},
		Tokens:   []Token{{Token: "tok-secret"}},
	}
	r := c.Redacted()
	all := r.Store.DSN + r.Clusters[0].SASL.Password + r.Tokens[0].Token
	for _, secret := range []string{"s3cret", "kafka-secret", "tok-secret"} {
		if strings.Contains(all, secret) {
			t.Errorf("redacted config leaks %q", secret)
		}
	}
	if c.Clusters[0].SASL.Password != "kafka-secret" {
		t.Error("Redacted modified the original")
	}
}

// A non-loopback listener without TLS is refused unless insecureListen
// says a TLS-terminating proxy is the only way in.
func TestNonLoopbackListenNeedsTLS(t *testing.T) {
	for _, tc := range []struct {
		grpc, http string
		tls        bool
		insecure   bool
		wantErr    []string
	}{
		{grpc: "127.0.0.1:7070", http: "127.0.0.1:8080"},
		{grpc: "localhost:7070", http: "[::1]:8080"},
		{grpc: "0.0.0.0:7070", http: "127.0.0.1:8080", wantErr: []string{"grpcAddr: 0.0.0.0:7070 is not a loopback address"}},
		{grpc: "127.0.0.1:7070", http: ":8080", wantErr: []string{"httpAddr: :8080 is not a loopback address"}},
		{grpc: "10.0.0.5:7070", http: "0.0.0.0:8080", wantErr: []string{"grpcAddr", "httpAddr"}},
		{grpc: "0.0.0.0:7070", http: "0.0.0.0:8080", tls: true},
		{grpc: "0.0.0.0:7070", http: "0.0.0.0:8080", insecure: true},
	} {
		c := Embedded(t.TempDir())
		c.GRPCAddr, c.HTTPAddr, c.InsecureListen = tc.grpc, tc.http, tc.insecure
		if tc.tls {
			c.TLS = &ServerTLS{CertFile: "server.crt", KeyFile: "server.key"}
		}
		err := c.Validate()
		if len(tc.wantErr) == 0 && err != nil {
			t.Errorf("%s %s: %v", tc.grpc, tc.http, err)
		}
		for _, want := range tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s %s: %v, want %q", tc.grpc, tc.http, err, want)
			}
		}
	}
}
