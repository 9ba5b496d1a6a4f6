package provisioning

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// ClusterConn says how to reach and authenticate to a cluster.
type ClusterConn struct {
	BootstrapServers []string `json:"bootstrapServers" yaml:"bootstrapServers"`
	SASL             *SASL    `json:"sasl,omitempty" yaml:"sasl"`
	TLS              *TLS     `json:"tls,omitempty" yaml:"tls"`
}

// SASL mechanisms Connect supports.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// SASL holds SASL credentials.
type SASL struct {
	Mechanism string `json:"mechanism" yaml:"mechanism"` // PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
	Username  string `json:"username" yaml:"username"`
	Password  string `json:"password" yaml:"password"`
}

// String redacts the password, so a SASL can be logged.
func (s SASL) String() string {
	return fmt.Sprintf("SASL{%s %s password=<redacted>}", s.Mechanism, s.Username)
}

// TLS configures TLS to the brokers. All file fields are optional: with
// none set, the system roots verify the brokers.
type TLS struct {
	CAFile             string `json:"caFile,omitempty" yaml:"caFile"`
	CertFile           string `json:"certFile,omitempty" yaml:"certFile"`
	KeyFile            string `json:"keyFile,omitempty" yaml:"keyFile"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty" yaml:"insecureSkipVerify"`
}

// MetadataMinAge is the metadata cache age Connect sets: low, because
// loopgate reads topics right after creating or deleting them.
const MetadataMinAge = 100 * time.Millisecond

// RetryTimeout bounds how long one admin request is retried on retriable
// errors, and DialTimeout one connection attempt, for clients Connect makes.
const (
	RetryTimeout = 5 * time.Second
	DialTimeout  = 3 * time.Second
)

// Connect builds a franz-go client for conn. It does not dial: the first
// request reports unreachable brokers or bad credentials. extra options are
// applied last (tests use them, e.g. for a client id).
func Connect(conn ClusterConn, extra ...kgo.Opt) (*kgo.Client, error) {
	if len(conn.BootstrapServers) == 0 {
		return nil, fmt.Errorf("%w: bootstrapServers is empty; list at least one host:port", ErrInvalidConn)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(conn.BootstrapServers...),
		kgo.MetadataMinAge(MetadataMinAge),
		kgo.ClientID("loopgate"),
		// An unreachable cluster must fail a reconcile quickly, with the
		// cause on the loops' conditions, rather than hold the cluster's
		// queue in franz-go's retries (30 s by default); the reconciler
		// retries with its own backoff.
		kgo.RetryTimeout(RetryTimeout),
		kgo.DialTimeout(DialTimeout),
	}
	if s := conn.SASL; s != nil {
		if s.Username == "" {
			return nil, fmt.Errorf("%w: sasl.username is empty", ErrInvalidConn)
		}
		switch s.Mechanism {
		case MechanismPlain:
			opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
		case MechanismScramSHA256:
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
		case MechanismScramSHA512:
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("%w: sasl.mechanism %q is not supported; use %s, %s or %s",
				ErrInvalidConn, s.Mechanism, MechanismPlain, MechanismScramSHA256, MechanismScramSHA512)
		}
	}
	if t := conn.TLS; t != nil {
		cfg, err := t.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	opts = append(opts, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConn, err)
	}
	return cl, nil
}

func (t *TLS) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in for test clusters
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls.caFile: %w", ErrInvalidConn, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: tls.caFile %s holds no PEM certificate", ErrInvalidConn, t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("%w: tls.certFile and tls.keyFile must be set together", ErrInvalidConn)
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tls client certificate: %w", ErrInvalidConn, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
