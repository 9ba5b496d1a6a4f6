// Package config loads loopgate's server configuration: where it listens,
// where it keeps state, which Kafka clusters serve which regions, the team
// catalog and the API tokens.
//
// With no file, Embedded returns the embedded default (SQLite, two
// in-process Kafka clusters, demo teams). Load reads a YAML file strictly:
// unknown keys are errors, and Validate reports every problem at once.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/identity"
)

// Config is the whole server configuration.
type Config struct {
	GRPCAddr string `yaml:"grpcAddr"`
	HTTPAddr string `yaml:"httpAddr"`
	DataDir  string `yaml:"dataDir"`

	Store    Store          `yaml:"store"`
	Policy   Policy         `yaml:"policy"`
	Clusters []Cluster      `yaml:"clusters"`
	Teams    []catalog.Team `yaml:"teams"`
	// PriceLists are named price lists clusters refer to (cluster
	// priceList) for the cost forecast (docs/cost.md). The list
	// catalog.DefaultPriceListName (AWS us-east-1, USD) is built in; a list
	// of that name here replaces it.
	PriceLists []catalog.PriceList `yaml:"priceLists"`
	Tokens     []Token             `yaml:"tokens"`
	// Auth configures identities beyond static tokens: OIDC tokens and
	// client certificates.
	Auth Auth `yaml:"auth"`
	// Limits are the abuse limits (rate limits) of the API.
	Limits RateLimits `yaml:"rateLimits"`
	// TLS serves the gRPC and REST APIs over TLS; certificates are
	// reloaded when their files change.
	TLS *ServerTLS `yaml:"tls"`
	// InsecureListen allows listening on a non-loopback address without
	// TLS (behind a TLS-terminating proxy on the same host, say). Off, such
	// a configuration is refused.
	InsecureListen bool `yaml:"insecureListen"`
	// LoopLimits bound what one loop may hold: streams, producers,
	// consumers, grants, labels, owners, description, schema size, fields
	// and depth, and the whole spec's size (see catalog.Limits for each key,
	// its default and its ceiling). The block is optional and so is every
	// key: what is absent or 0 takes its default; a value must not be
	// negative or above its ceiling. Validation checks every loop against
	// these before policy runs. Example:
	//
	//	limits:
	//	  maxProducersPerLoop: 128
	//	  maxSchemaBytes: 262144
	LoopLimits catalog.Limits `yaml:"limits"`
	// Resync is how often every loop is re-checked for drift.
	Resync time.Duration `yaml:"resync"`
	// DevCredentials writes an admin token where loopctl finds it
	// ($HOME/.loopgate/dev-credentials.json). On for the embedded default.
	DevCredentials bool `yaml:"devCredentials"`
	// SLO tunes SLO sampling and consumer lag polling (docs/slo.md).
	SLO SLO `yaml:"slo"`
	// Metrics, Log and Reflection are the operations settings
	// (operations.go, docs/operations.md): /metrics, the log format, and
	// gRPC server reflection (off by default; `serve --reflection`).
	Metrics    Metrics `yaml:"metrics"`
	Log        Log     `yaml:"log"`
	Reflection bool    `yaml:"reflection"`
	// Portal configures the portal's sign-in (portal.go, docs/portal.md).
	Portal Portal `yaml:"portal"`
}

// SLO tunes the SLO observer; zero fields take the defaults of package slo.
type SLO struct {
	// Disabled turns sampling and lag polling off.
	Disabled bool `yaml:"disabled"`
	// SampleRate caps sampled action records per loop per second (200).
	SampleRate int `yaml:"sampleRate"`
	// TotalSampleRate caps sampled action records per second over all
	// loops (10000): each loop gets at most an equal share.
	TotalSampleRate int `yaml:"totalSampleRate"`
	// LagInterval is how often consumer lag is polled (5s).
	LagInterval time.Duration `yaml:"lagInterval"`
	// FlushInterval is how often observations are evaluated and stored (10s).
	FlushInterval time.Duration `yaml:"flushInterval"`
	// ShortWindow is the length of the "1m" latency window (1m; tests
	// shorten it).
	ShortWindow time.Duration `yaml:"shortWindow"`
	// MaxExportedLoops caps the loops exported as metrics (2000).
	MaxExportedLoops int `yaml:"maxExportedLoops"`
}

// Store selects the state store.
type Store struct {
	Driver string `yaml:"driver"` // sqlite (default) | postgres
	// Path is the SQLite file; default <dataDir>/loopgate.db.
	Path string `yaml:"path"`
	// DSN is the PostgreSQL connection string (or DSNEnv names an env var).
	DSN    string `yaml:"dsn"`
	DSNEnv string `yaml:"dsnEnv"`
}

// Policy selects the policy bundle.
type Policy struct {
	// Bundle is a bundle directory or .tar.gz; empty = the embedded default.
	// It is revision zero ("builtin"): active until security activates a
	// pushed bundle (loopctl policy).
	Bundle string `yaml:"bundle"`
	// VerificationKeys, when set, make loopgate accept only pushed bundles
	// signed (OPA's .signatures.json) by one of these keys.
	VerificationKeys []VerificationKey `yaml:"verificationKeys"`
	// DecisionRetention is how long recorded decisions (with their inputs)
	// are kept; 0 = 30 days. DecisionKeep is how many of the newest are
	// kept whatever their age; 0 = 100,000. Pruned hourly.
	DecisionRetention time.Duration `yaml:"decisionRetention"`
	DecisionKeep      int           `yaml:"decisionKeep"`
}

// VerificationKey is a public key that may sign policy bundles.
type VerificationKey struct {
	// KeyID is the key id the bundle's signature names (opa build
	// --signing-key ... --claims-file, or the default "default").
	KeyID string `yaml:"keyId"`
	// Algorithm is the JWS algorithm, e.g. RS256 (the default) or ES256.
	Algorithm string `yaml:"algorithm"`
	// File is a PEM file holding the public key (or, for HS256, the secret).
	File string `yaml:"file"`
}

// Cluster is a catalog cluster plus how to reach it.
type Cluster struct {
	Name              string   `yaml:"name"`
	Region            string   `yaml:"region"`
	Zones             []string `yaml:"zones"`
	ReplicationFactor int16    `yaml:"replicationFactor"`
	// Embedded runs an in-process Kafka (kfake) persisted under the data dir.
	Embedded bool `yaml:"embedded"`
	// EmbeddedPort fixes the embedded cluster's port (0 = a free port).
	EmbeddedPort     int      `yaml:"embeddedPort"`
	BootstrapServers []string `yaml:"bootstrapServers"`
	SASL             *SASL    `yaml:"sasl"`
	TLS              *TLS     `yaml:"tls"`
	// Credentials says who manages the credentials of principals on this
	// cluster: "scram-sha-512" or "scram-sha-256" (loopgate issues and
	// rotates them with `loopctl principal credentials`), or "external"
	// (an identity provider outside loopgate; credentials are skipped).
	// Embedded clusters are always "scram-sha-512"; external ones default
	// to "external".
	Credentials string `yaml:"credentials"`
	// SuperUsers are the cluster's super users (its super.users setting).
	// They and loopgate's own principal are reserved: no loop may name them
	// and no team may own them.
	SuperUsers []string `yaml:"superUsers"`
	// Storage is the cluster's storage model for the cost forecast
	// (broker-local when absent) and PriceList names its price list in
	// priceLists (catalog.DefaultPriceListName when empty). docs/cost.md.
	Storage   catalog.Storage `yaml:"storage"`
	PriceList string          `yaml:"priceList"`
	// Observer is loopgate's read-only principal on this cluster, which
	// samples loops' action topics for their latency SLO (docs/slo.md).
	// Loops on the cluster get READ and DESCRIBE on their action topic for
	// it. Unset: action topics are not sampled (SLO status NotSampled).
	Observer *Observer `yaml:"observer"`
}

// Observer names loopgate's read-only observer principal on a cluster.
// Where loopgate manages credentials (scram-sha-*), it sets a random
// password when it starts observing and keeps it in memory only; where
// identities are managed outside loopgate (external), PasswordFile holds
// its password.
type Observer struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"passwordFile"`
}

// DefaultObserver is the observer principal of the embedded default.
const DefaultObserver = "loopgate-observer"

// Values of Cluster.Credentials.
const (
	CredentialsSCRAMSHA512 = "scram-sha-512"
	CredentialsSCRAMSHA256 = "scram-sha-256"
	CredentialsExternal    = "external"
)

// CredentialMechanism is the SASL mechanism loopgate issues credentials
// with on the cluster, or "" when it does not manage them.
func (c Cluster) CredentialMechanism() string {
	switch c.Credentials {
	case CredentialsSCRAMSHA512:
		return "SCRAM-SHA-512"
	case CredentialsSCRAMSHA256:
		return "SCRAM-SHA-256"
	}
	return ""
}

// ClientSecurityProtocol is the security.protocol clients of the cluster use.
func (c Cluster) ClientSecurityProtocol() string {
	sasl := c.Embedded || c.SASL != nil || c.CredentialMechanism() != ""
	switch {
	case c.TLS != nil && sasl:
		return "SASL_SSL"
	case c.TLS != nil:
		return "SSL"
	case sasl:
		return "SASL_PLAINTEXT"
	}
	return "PLAINTEXT"
}

// SASL are the credentials loopgate's own principal uses.
type SASL struct {
	Mechanism   string `yaml:"mechanism"` // PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
	Username    string `yaml:"username"`
	Password    string `yaml:"password"`
	PasswordEnv string `yaml:"passwordEnv"` // read the password from this env var
}

// TLS configures a TLS connection to the brokers.
type TLS struct {
	CAFile             string `yaml:"caFile"`
	CertFile           string `yaml:"certFile"`
	KeyFile            string `yaml:"keyFile"`
	InsecureSkipVerify bool   `yaml:"insecureSkipVerify"`
}

// RateLimits are the API's abuse limits; zero fields take the defaults of
// package server (DefaultRateLimits); a negative rate disables that limit.
type RateLimits struct {
	// MutationsPerSecond and MutationBurst: per identity, for every call
	// that changes something and for plans.
	MutationsPerSecond float64 `yaml:"mutationsPerSecond"`
	MutationBurst      int     `yaml:"mutationBurst"`
	// AuthFailuresPerMinute and AuthFailureBurst: failed authentications
	// per client address before its requests are refused unchecked.
	AuthFailuresPerMinute float64 `yaml:"authFailuresPerMinute"`
	AuthFailureBurst      int     `yaml:"authFailureBurst"`
}

// Auth configures how callers are identified besides static tokens.
type Auth struct {
	// JWT accepts OIDC bearer tokens of one issuer; nil = none.
	JWT *identity.JWTConfig `yaml:"jwt"`
	// ClientCertificates map verified client certificate subjects to
	// identities (mTLS on the gRPC listener). Needs tls with a
	// clientCAFile.
	ClientCertificates []identity.ClientCertificate `yaml:"clientCertificates"`
}

// ServerTLS is the API's TLS: its certificate and the CA that signs client
// certificates. A client certificate is optional (clients without one use
// bearer tokens); over REST, callers use bearer tokens.
type ServerTLS struct {
	CertFile     string `yaml:"certFile"`
	KeyFile      string `yaml:"keyFile"`
	ClientCAFile string `yaml:"clientCAFile"`
}

// Roles a token, OIDC identity or client certificate may carry. "developer"
// is accepted for older configurations and means a plain team member.
var Roles = []string{"admin", "team-admin", "security-reviewer", "auditor", "developer"}

// Token is an API bearer token and the identity it stands for.
type Token struct {
	Token    string   `yaml:"token"`
	TokenEnv string   `yaml:"tokenEnv"`
	Subject  string   `yaml:"subject"`
	Teams    []string `yaml:"teams"`
	Roles    []string `yaml:"roles"`
}

// Load reads a YAML config file strictly and applies defaults.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// Embedded is the configuration `loopgate serve` runs with no file: SQLite
// and two in-process Kafka clusters (regions eu and us) under dataDir, the
// demo teams, and dev tokens generated on first start.
func Embedded(dataDir string) *Config {
	c := &Config{
		DataDir: dataDir,
		Clusters: []Cluster{
			{Name: "eu-embedded", Region: "eu", Zones: []string{"eu-a"}, ReplicationFactor: 1, Embedded: true, Observer: &Observer{Username: DefaultObserver}},
			{Name: "us-embedded", Region: "us", Zones: []string{"us-a"}, ReplicationFactor: 1, Embedded: true, Observer: &Observer{Username: DefaultObserver}},
		},
		Teams: []catalog.Team{
			{Name: "growth", AllowedRegions: []string{"eu", "us"}, MaxPartitionsPerLoop: 64, MaxPartitions: 256, MaxBytesPerSecond: 50 << 20},
			{Name: "risk", AllowedRegions: []string{"eu"}, MaxPartitionsPerLoop: 48, MaxPartitions: 192, MaxBytesPerSecond: 20 << 20},
			{Name: "search", AllowedRegions: []string{"us"}, MaxPartitionsPerLoop: 32, MaxPartitions: 128, MaxBytesPerSecond: 10 << 20},
		},
		DevCredentials: true,
	}
	c.SetDefaults()
	return c
}

// SetDefaults fills what was left empty.
func (c *Config) SetDefaults() {
	if c.GRPCAddr == "" {
		c.GRPCAddr = "127.0.0.1:7070"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = "loopgate-data"
	}
	if c.Store.Driver == "" {
		c.Store.Driver = "sqlite"
	}
	if c.Resync == 0 {
		c.Resync = 30 * time.Second
	}
	c.Portal.setDefaults()
	if len(c.LoopLimits.Validate()) == 0 {
		c.LoopLimits = c.LoopLimits.WithDefaults() // invalid values stay for Validate to report
	}
	for i := range c.Clusters {
		if c.Clusters[i].Credentials == "" {
			c.Clusters[i].Credentials = CredentialsExternal
			if c.Clusters[i].Embedded {
				c.Clusters[i].Credentials = CredentialsSCRAMSHA512
			}
		}
		if c.Clusters[i].ReplicationFactor == 0 {
			c.Clusters[i].ReplicationFactor = 3
			if c.Clusters[i].Embedded {
				c.Clusters[i].ReplicationFactor = 1
			}
		}
	}
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	checkRoles := func(field string, roles []string) {
		for _, r := range roles {
			if !slices.Contains(Roles, r) {
				bad(field, "unknown role %q (%s)", r, strings.Join(Roles, ", "))
			}
		}
	}
	for _, a := range []struct{ field, addr string }{{"grpcAddr", c.GRPCAddr}, {"httpAddr", c.HTTPAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			bad(a.field, "%q is not host:port", a.addr)
		}
	}
	switch c.Store.Driver {
	case "sqlite":
	case "postgres":
		if c.Store.DSN == "" && c.Store.DSNEnv == "" {
			bad("store.dsn", "postgres needs dsn or dsnEnv")
		}
	default:
		bad("store.driver", "%q is not sqlite or postgres", c.Store.Driver)
	}
	if len(c.Clusters) == 0 {
		bad("clusters", "at least one cluster is needed")
	}
	if c.Policy.DecisionRetention < 0 {
		bad("policy.decisionRetention", "%s: want a positive duration (0 = 30 days)", c.Policy.DecisionRetention)
	}
	if c.Policy.DecisionKeep < 0 {
		bad("policy.decisionKeep", "%d: want a positive count (0 = 100000)", c.Policy.DecisionKeep)
	}
	keyIDs := map[string]bool{}
	for i, k := range c.Policy.VerificationKeys {
		field := fmt.Sprintf("policy.verificationKeys[%d]", i)
		switch {
		case k.KeyID == "":
			bad(field+".keyId", "required: the key id bundle signatures name")
		case keyIDs[k.KeyID]:
			bad(field+".keyId", "%q is listed twice", k.KeyID)
		}
		keyIDs[k.KeyID] = true
		if k.File == "" {
			bad(field+".file", "required: a PEM file with the public key")
		}
		switch k.Algorithm {
		case "", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512":
		default:
			bad(field+".algorithm", "%q is not a JWS algorithm OPA verifies bundles with (RS256, ES256, ...)", k.Algorithm)
		}
	}
	seen := map[string]bool{}
	regions := map[string]bool{}
	for i, cl := range c.Clusters {
		f := fmt.Sprintf("clusters[%d]", i)
		if !nameRE.MatchString(cl.Name) {
			bad(f+".name", "%q must match %s", cl.Name, nameRE)
		}
		if seen[cl.Name] {
			bad(f+".name", "duplicate cluster %q", cl.Name)
		}
		seen[cl.Name] = true
		if !nameRE.MatchString(cl.Region) {
			bad(f+".region", "%q must match %s", cl.Region, nameRE)
		}
		regions[cl.Region] = true
		if cl.ReplicationFactor < 1 {
			bad(f+".replicationFactor", "must be at least 1")
		}
		if cl.Embedded == (len(cl.BootstrapServers) > 0) {
			bad(f, "set either embedded: true or bootstrapServers")
		}
		if ob := cl.Observer; ob != nil {
			switch {
			case ob.Username == "" || strings.ContainsAny(ob.Username, "*?,=: "):
				bad(f+".observer.username", "%q is not a SASL user name: give the name without \"User:\" and without *?,=: or spaces", ob.Username)
			case cl.SASL != nil && ob.Username == cl.SASL.Username:
				bad(f+".observer.username", "must differ from loopgate's admin principal (sasl.username)")
			case cl.Credentials == CredentialsExternal && ob.PasswordFile == "":
				bad(f+".observer.passwordFile", "required when the cluster's credentials are external: loopgate cannot set the observer's password")
			}
		}
		switch cl.Credentials {
		case CredentialsSCRAMSHA512, CredentialsSCRAMSHA256:
		case CredentialsExternal:
			if cl.Embedded {
				bad(f+".credentials", "an embedded cluster's credentials are always managed by loopgate (scram-sha-512)")
			}
		default:
			bad(f+".credentials", "%q is not scram-sha-512, scram-sha-256 or external", cl.Credentials)
		}
		for j, u := range cl.SuperUsers {
			if strings.TrimPrefix(u, "User:") == "" {
				bad(fmt.Sprintf("%s.superUsers[%d]", f, j), "empty principal")
			}
		}
		if cl.SASL != nil {
			switch cl.SASL.Mechanism {
			case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			default:
				bad(f+".sasl.mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", cl.SASL.Mechanism)
			}
			if cl.SASL.Username == "" {
				bad(f+".sasl.username", "required")
			}
		}
	}
	teamSeen := map[string]bool{}
	for i, t := range c.Teams {
		f := fmt.Sprintf("teams[%d]", i)
		if !nameRE.MatchString(t.Name) {
			bad(f+".name", "%q must match %s", t.Name, nameRE)
		}
		if teamSeen[t.Name] {
			bad(f+".name", "duplicate team %q", t.Name)
		}
		teamSeen[t.Name] = true
		for j, r := range t.AllowedRegions {
			if !regions[r] {
				bad(fmt.Sprintf("%s.allowedRegions[%d]", f, j), "no cluster serves region %q", r)
			}
		}
	}
	for i, t := range c.Tokens {
		f := fmt.Sprintf("tokens[%d]", i)
		if t.Token == "" && t.TokenEnv == "" {
			bad(f+".token", "token or tokenEnv required")
		}
		if t.Subject == "" {
			bad(f+".subject", "required")
		}
		for _, team := range t.Teams {
			if !teamSeen[team] {
				bad(f+".teams", "unknown team %q", team)
			}
		}
		checkRoles(f+".roles", t.Roles)
	}
	if j := c.Auth.JWT; j != nil {
		errs = append(errs, prefixed("auth.", j.Validate())...)
	}
	errs = append(errs, c.LoopLimits.Validate()...)
	errs = append(errs, c.validateOperations()...)
	errs = append(errs, c.validateCost()...)
	errs = append(errs, c.validatePortal()...)
	if t := c.TLS; t != nil {
		if t.CertFile == "" || t.KeyFile == "" {
			bad("tls", "certFile and keyFile are required")
		}
	} else if !c.InsecureListen {
		for _, a := range []struct{ field, addr string }{{"grpcAddr", c.GRPCAddr}, {"httpAddr", c.HTTPAddr}} {
			if host, _, err := net.SplitHostPort(a.addr); err == nil && !isLoopbackHost(host) {
				bad(a.field, "%s is not a loopback address and tls is not configured: configure tls (certFile, keyFile), or set insecureListen: true if a TLS-terminating proxy on this host is the only way in", a.addr)
			}
		}
	}
	for i, cc := range c.Auth.ClientCertificates {
		f := fmt.Sprintf("auth.clientCertificates[%d]", i)
		if c.TLS == nil || c.TLS.ClientCAFile == "" {
			bad(f, "needs tls with a clientCAFile to verify client certificates")
			break
		}
		for _, team := range cc.Teams {
			if !teamSeen[team] {
				bad(f+".teams", "unknown team %q", team)
			}
		}
		checkRoles(f+".roles", cc.Roles)
	}
	return errors.Join(errs...)
}

// isLoopbackHost reports whether host (an IP or a name) only reaches this
// machine. An empty host or an unspecified address (0.0.0.0, ::) listens on
// every interface.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func prefixed(prefix string, errs []error) []error {
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return out
}

// Catalog returns the team and cluster catalog.
func (c *Config) Catalog() *catalog.Catalog {
	cat := &catalog.Catalog{Teams: map[string]catalog.Team{}, Limits: c.LoopLimits.WithDefaults()}
	for _, t := range c.Teams {
		cat.Teams[t.Name] = t
	}
	for _, cl := range c.Clusters {
		cat.Clusters = append(cat.Clusters, catalog.Cluster{
			Name: cl.Name, Region: cl.Region, Zones: cl.Zones,
			ReplicationFactor: cl.ReplicationFactor, BootstrapServers: cl.BootstrapServers,
			SecurityProtocol: cl.ClientSecurityProtocol(), Credentials: cl.CredentialMechanism(),
			Storage: cl.Storage, Prices: c.priceList(cl.PriceList),
		})
		if cl.Observer != nil {
			cat.Clusters[len(cat.Clusters)-1].Observer = cl.Observer.Username
			cat.Reserve(cl.Observer.Username, fmt.Sprintf("loopgate's observer principal on cluster %s", cl.Name))
		}
		if cl.SASL != nil {
			cat.Reserve(cl.SASL.Username, fmt.Sprintf("loopgate's admin principal on cluster %s", cl.Name))
		}
		for _, u := range cl.SuperUsers {
			cat.Reserve(u, fmt.Sprintf("a super user of cluster %s", cl.Name))
		}
	}
	// Kafka's principal for unauthenticated connections.
	cat.Reserve("ANONYMOUS", "Kafka's principal for unauthenticated connections")
	return cat
}

// Redacted returns a copy safe to log: secrets replaced.
func (c *Config) Redacted() Config {
	r := *c
	if r.Store.DSN != "" {
		r.Store.DSN = redactDSN(r.Store.DSN)
	}
	r.Clusters = slices.Clone(c.Clusters)
	for i := range r.Clusters {
		if s := r.Clusters[i].SASL; s != nil {
			cp := *s
			if cp.Password != "" {
				cp.Password = "REDACTED"
			}
			r.Clusters[i].SASL = &cp
		}
	}
	r.Tokens = slices.Clone(c.Tokens)
	for i := range r.Tokens {
		if r.Tokens[i].Token != "" {
			r.Tokens[i].Token = "REDACTED"
		}
	}
	return r
}

func redactDSN(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return dsn
	}
	creds := dsn[scheme+3 : at]
	if user, _, ok := strings.Cut(creds, ":"); ok {
		return dsn[:scheme+3] + user + ":REDACTED" + dsn[at:]
	}
	return dsn
}
