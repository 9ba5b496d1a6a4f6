package app

// slo.go wires package slo: one observer per process, run only where the
// reconciler runs (every SQLite process; the lease holder with PostgreSQL),
// sampling the action topics of every cluster with an observer principal
// and polling consumer lag with loopgate's admin connections.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/config"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/slo"
	"github.com/loopgate/loopgate/store"
)

type sloRunner struct {
	clusters []slo.Cluster
	observer *slo.Observer
}

// addSLOCluster records how the observer reaches cluster cc: base is
// loopgate's own connection (the observer's differs only in its SASL
// identity), client and admin loopgate's admin client.
func (s *Server) addSLOCluster(cc config.Cluster, base provisioning.ClusterConn, client *kgo.Client, admin *provisioning.KafkaAdmin) {
	if s.slo == nil {
		s.slo = &sloRunner{}
	}
	c := slo.Cluster{Name: cc.Name, Admin: client}
	switch ob := cc.Observer; {
	case ob == nil:
		c.NotSampled = fmt.Sprintf("cluster %s has no observer principal configured (clusters[].observer)", cc.Name)
	case cc.Credentials == config.CredentialsExternal:
		mech := provisioning.MechanismScramSHA512
		if base.SASL != nil {
			mech = base.SASL.Mechanism
		}
		user, file := ob.Username, ob.PasswordFile
		c.Sampler = func(context.Context) (provisioning.ClusterConn, error) {
			pw, err := os.ReadFile(file)
			if err != nil {
				return provisioning.ClusterConn{}, fmt.Errorf("reading the observer's password file: %w", err)
			}
			conn := base
			conn.SASL = &provisioning.SASL{Mechanism: mech, Username: user, Password: strings.TrimSpace(string(pw))}
			return conn, nil
		}
	default:
		// loopgate manages credentials here: a fresh random password each
		// time sampling starts, kept in memory only.
		mech := cc.CredentialMechanism()
		user := ob.Username
		resource := "clusters/" + cc.Name + "/principals/" + user
		c.Sampler = func(ctx context.Context) (provisioning.ClusterConn, error) {
			// Setting a principal's credential is audited like
			// IssuePrincipalCredentials (never the password).
			pw := randomPassword()
			if err := admin.SetSCRAM(ctx, user, mech, pw); err != nil {
				if aerr := s.Core.AuditSystem(ctx, observerActor, "observer.credentials", resource, audit.OutcomeFailed,
					map[string]any{"mechanism": mech, "error": err.Error()}); aerr != nil {
					err = errors.Join(err, aerr)
				}
				return provisioning.ClusterConn{}, fmt.Errorf("issuing the observer's credential: %w", err)
			}
			if err := s.Core.AuditSystem(ctx, observerActor, "observer.credentials", resource, audit.OutcomeOK,
				map[string]any{"mechanism": mech, "password": "random, held in this process's memory only"}); err != nil {
				return provisioning.ClusterConn{}, fmt.Errorf("auditing the observer's credential: %w", err)
			}
			conn := base
			conn.SASL = &provisioning.SASL{Mechanism: mech, Username: user, Password: pw}
			return conn, nil
		}
	}
	s.slo.clusters = append(s.slo.clusters, c)
}

// observerActor is the audit actor of what the SLO observer does itself.
const observerActor = "loopgate/observer"

func randomPassword() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newObserver builds the observer once every cluster is known.
func (s *Server) newObserver(cfg *config.Config, st store.Store) {
	if s.slo == nil {
		s.slo = &sloRunner{}
	}
	if cfg.SLO.Disabled {
		return
	}
	s.slo.observer = slo.New(slo.Config{
		SampleRate: cfg.SLO.SampleRate, TotalSampleRate: cfg.SLO.TotalSampleRate, LagInterval: cfg.SLO.LagInterval, FlushInterval: cfg.SLO.FlushInterval,
		ShortWindow: cfg.SLO.ShortWindow, MaxExportedLoops: cfg.SLO.MaxExportedLoops,
	}, st, st, s.slo.clusters, s.log.With("component", "slo"))
}

// SLOCollector is the Prometheus collector of per-loop latency, SLO state,
// error budget and consumer lag (package slo), or nil when SLO observation
// is disabled (config slo.disabled). It exports what this process
// observes: nothing unless it runs the reconciler.
func (s *Server) SLOCollector() prometheus.Collector {
	if s.slo == nil || s.slo.observer == nil {
		return nil
	}
	return s.slo.observer.Collector()
}

// lead runs what only the process that runs the reconciler runs: the
// reconciler and the SLO observer, until ctx ends.
func (s *Server) lead(ctx context.Context) error {
	if s.slo == nil || s.slo.observer == nil {
		return s.recon.Run(ctx)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.slo.observer.Run(ctx) })
	err := s.recon.Run(ctx)
	wg.Wait()
	return err
}

// sloChanged tells the observer a loop changed.
func (s *Server) sloChanged(key string) {
	if s.slo != nil && s.slo.observer != nil {
		s.slo.observer.Changed(key)
	}
}
