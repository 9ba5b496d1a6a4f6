package app

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/loopgate/loopgate/config"
	"github.com/loopgate/loopgate/identity"
)

// certReloader serves the certificate in certFile/keyFile and reloads it
// when either file changes (checked at most once a second, on a handshake),
// so a rotated certificate is picked up without a restart. A pair that does
// not load is logged and the previous one is kept.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // modification times and sizes of both files
	lastCheck time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) fileStamp() string {
	var b bytes.Buffer
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%d:%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return b.String()
}

func (r *certReloader) load() error {
	stamp := r.fileStamp()
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: loading %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// current returns the certificate to serve, reloading it if its files changed.
func (r *certReloader) current() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.lastCheck) >= time.Second {
		r.lastCheck = now
		if r.fileStamp() != r.stamp {
			if err := r.load(); err != nil {
				r.log.Error("a changed TLS certificate does not load; still serving the previous one", "err", err)
			} else {
				r.log.Info("TLS certificate reloaded", "file", r.certFile)
			}
		}
	}
	return r.cert
}

// serverTLS is the API listeners' TLS configuration: the reloading
// certificate and, with a client CA, optional client certificates.
func serverTLS(t *config.ServerTLS, log *slog.Logger) (*tls.Config, *certReloader, error) {
	base, err := identity.ServerTLSConfig(t.CertFile, t.KeyFile, t.ClientCAFile, false)
	if err != nil {
		return nil, nil, err
	}
	reloader, err := newCertReloader(t.CertFile, t.KeyFile, log)
	if err != nil {
		return nil, nil, err
	}
	base.Certificates = nil
	base.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return reloader.current(), nil }
	return base, reloader, nil
}

// pinnedTo is a client TLS config that accepts exactly the certificate r
// serves at the time of the handshake: how the REST gateway dials the gRPC
// listener of its own process.
func pinnedTo(r *certReloader) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			want := r.current()
			if len(raw) == 0 || want == nil || len(want.Certificate) == 0 || !bytes.Equal(raw[0], want.Certificate[0]) {
				return errors.New("the gRPC listener does not serve loopgate's own certificate")
			}
			return nil
		},
	}
}
