package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ClientCertificate maps a client certificate subject to an identity.
type ClientCertificate struct {
	// Subject is the verified client certificate's subject as
	// crypto/x509's pkix.Name.String() prints it (RFC 2253 order, most
	// specific first), e.g. "CN=ci-deployer,O=Acme". It must match exactly.
	Subject string `yaml:"subject"`
	// Name is the identity's subject; default the certificate's common name.
	Name  string   `yaml:"name"`
	Teams []string `yaml:"teams"`
	Roles []string `yaml:"roles"`
}

// CertificateMapper identifies callers by the client certificate the TLS
// handshake verified.
type CertificateMapper struct {
	bySubject map[string]ClientCertificate
}

// NewCertificateMapper indexes certs by subject. Subjects must be unique
// and well-formed; a certificate without Name needs a CN in its subject.
func NewCertificateMapper(certs []ClientCertificate) (*CertificateMapper, error) {
	m := &CertificateMapper{bySubject: make(map[string]ClientCertificate, len(certs))}
	var errs []error
	bad := func(i int, field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("clientCertificates[%d].%s: %s", i, field, fmt.Sprintf(format, args...)))
	}
	for i, c := range certs {
		attrs, err := splitDN(c.Subject)
		switch {
		case c.Subject == "":
			bad(i, "subject", "required")
			continue
		case err != nil:
			bad(i, "subject", "%v", err)
			continue
		}
		if _, dup := m.bySubject[c.Subject]; dup {
			bad(i, "subject", "%q is listed twice", c.Subject)
			continue
		}
		if c.Name == "" && !hasAttr(attrs, "CN") {
			bad(i, "name", "required when the subject has no CN")
		}
		c.Teams = append([]string(nil), c.Teams...)
		c.Roles = append([]string(nil), c.Roles...)
		m.bySubject[c.Subject] = c
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// Identify maps the client certificate of a TLS connection to an identity.
// Only the leaf of the first chain the handshake verified counts
// (state.VerifiedChains[0][0]); certificates the peer merely presented
// (state.PeerCertificates) are never trusted. It reports false when there
// is no verified certificate or its subject is not configured.
func (m *CertificateMapper) Identify(state *tls.ConnectionState) (Identity, bool) {
	if m == nil || state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return Identity{}, false
	}
	leaf := state.VerifiedChains[0][0]
	c, ok := m.bySubject[leaf.Subject.String()]
	if !ok {
		return Identity{}, false
	}
	name := c.Name
	if name == "" {
		name = leaf.Subject.CommonName
	}
	if name == "" {
		return Identity{}, false
	}
	id := Identity{Subject: name, Teams: c.Teams, Roles: c.Roles, Method: MethodMTLS}
	return id.clone(), true
}

// ServerTLSConfig builds the TLS configuration of a listener that serves
// certFile/keyFile (PEM) with TLS 1.2 or later. Client certificates are
// verified against the CAs in clientCAFile (PEM): with requireClientCert a
// client without a valid certificate cannot connect, otherwise a client
// may connect without one (and authenticate with a bearer token), but a
// certificate it does present must verify. With no clientCAFile client
// certificates are not requested, which requireClientCert forbids.
//
// NextProtos is left empty: grpc-go and net/http add "h2" themselves.
func ServerTLSConfig(certFile, keyFile, clientCAFile string, requireClientCert bool) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: certificate and key files are required")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: loading server certificate: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.NoClientCert,
	}
	if clientCAFile == "" {
		if requireClientCert {
			return nil, errors.New("tls: requiring client certificates needs a client CA file")
		}
		return cfg, nil
	}
	pem, err := os.ReadFile(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("tls: reading client CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: no PEM certificates in client CA file %s", clientCAFile)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	if requireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// dnAttr is one type=value pair of a distinguished name.
type dnAttr struct{ typ, value string }

// splitDN splits an RFC 2253 distinguished name into its attributes,
// honouring backslash escapes. It checks the syntax only.
func splitDN(dn string) ([]dnAttr, error) {
	var attrs []dnAttr
	var cur strings.Builder
	flush := func() error {
		typ, value, ok := strings.Cut(cur.String(), "=")
		cur.Reset()
		if !ok || strings.TrimSpace(typ) == "" {
			return fmt.Errorf("%q is not an RFC 2253 distinguished name like \"CN=ci-deployer,O=Acme\"", dn)
		}
		if strings.TrimSpace(typ) != typ {
			return fmt.Errorf("%q: no spaces around \",\" or \"=\"; write the subject as Go prints it, like \"CN=ci-deployer,O=Acme\"", dn)
		}
		attrs = append(attrs, dnAttr{typ: typ, value: value})
		return nil
	}
	for i := 0; i < len(dn); i++ {
		switch c := dn[i]; c {
		case '\\':
			if i+1 == len(dn) {
				return nil, fmt.Errorf("%q ends with a lone backslash", dn)
			}
			cur.WriteByte(c)
			cur.WriteByte(dn[i+1])
			i++
		case ',', '+':
			if err := flush(); err != nil {
				return nil, err
			}
		default:
			cur.WriteByte(c)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return attrs, nil
}

func hasAttr(attrs []dnAttr, typ string) bool {
	for _, a := range attrs {
		if strings.EqualFold(a.typ, typ) && a.value != "" {
			return true
		}
	}
	return false
}
