// Package app wires a loopgate process: configuration → components (store,
// embedded and external clusters, admin clients, policy engine, the
// admission core, the reconciler) → listeners (gRPC with the one
// interceptor; REST through grpc-gateway dialing it) → lifecycle (Run until
// the context ends, graceful shutdown, Close releases in reverse order).
// The request path itself lives in package admission; the API adapters in
// package server.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/config"
	"github.com/loopgate/loopgate/embedded"
	"github.com/loopgate/loopgate/gen/openapi"
	"github.com/loopgate/loopgate/identity"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/server"
	"github.com/loopgate/loopgate/store"
	"github.com/loopgate/loopgate/store/postgres"
	"github.com/loopgate/loopgate/store/sqlite"
	"github.com/loopgate/loopgate/web"
)

// Server is a running loopgate: API listeners, store, clusters, reconciler.
type Server struct {
	GRPCAddr string // actual listen address
	HTTPAddr string
	Core     *admission.Core

	cfg     *config.Config
	log     *slog.Logger
	closers []func()
	grpcSrv *grpc.Server
	httpSrv *http.Server
	recon   *reconciler.Reconciler
	peers   *reconciler.PeerIndex
	// slo samples action topics and polls consumer lag (slo.go).
	slo *sloRunner
	// reevaluate is signalled when the active policy bundle changed here.
	reevaluate chan struct{}
	leading    atomic.Bool // this process runs the reconciler
	grpcLis    net.Listener
	httpLis    net.Listener
	clusters   []ClusterInfo
	// conflicts are the ownership conflicts found at start.
	conflicts []admission.OwnershipConflict
	// ops: metrics, readiness, gRPC health, request logs (ops.go).
	ops *ops
}

// ClusterInfo describes a connected cluster (printed at start).
type ClusterInfo struct {
	Name, Region     string
	BootstrapServers []string
	Embedded         bool
	SASL             *provisioning.SASL
}

// New builds a server from cfg: opens the store, starts embedded clusters,
// connects admin clients, loads policy and binds the listeners. Call Run to
// serve and Close to release everything.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Server, err error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	s := &Server{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			s.Close() // release whatever was started before the failure
		}
	}()
	if s.ops, err = newOps(s, cfg, log); err != nil {
		return nil, err
	}
	privateFiles()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	if err := tightenDataDir(cfg.DataDir, log); err != nil {
		return nil, err
	}

	// Tokens: configured ones plus, for the embedded default, demo tokens.
	var tokens []identity.StaticToken
	var devNames map[string]string
	cfgTokens := cfg.Tokens
	if cfg.DevCredentials {
		names, demo, err := devTokens(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		devNames = names
		cfgTokens = append(append([]config.Token(nil), cfgTokens...), demo...)
	}
	for _, t := range cfgTokens {
		tok := t.Token
		if t.TokenEnv != "" {
			tok = os.Getenv(t.TokenEnv)
			if tok == "" {
				return nil, fmt.Errorf("token for %s: environment variable %s is empty", t.Subject, t.TokenEnv)
			}
		}
		tokens = append(tokens, identity.StaticToken{Token: tok, Identity: identity.Identity{Subject: t.Subject, Teams: t.Teams, Roles: t.Roles, Method: "token"}})
	}
	authn := &server.Authenticator{}
	if authn.Static, err = identity.NewStaticTokens(tokens); err != nil {
		return nil, err
	}
	if j := cfg.Auth.JWT; j != nil {
		// The issuer may be down at start: keys are fetched on first use.
		if authn.JWT, err = identity.NewJWTVerifier(ctx, *j, identity.WithLogger(log)); err != nil {
			return nil, fmt.Errorf("OIDC tokens: %w", err)
		}
	}
	var tlsCfg *tls.Config
	var certs *certReloader
	if t := cfg.TLS; t != nil {
		if tlsCfg, certs, err = serverTLS(t, log); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		if len(cfg.Auth.ClientCertificates) > 0 {
			if authn.Certs, err = identity.NewCertificateMapper(cfg.Auth.ClientCertificates); err != nil {
				return nil, fmt.Errorf("auth.clientCertificates: %w", err)
			}
		}
	}

	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = st.Close() })

	// Clusters: embedded ones start in-process; all get a read-write admin
	// (reconciler) and a read-only admin (plan).
	cat := cfg.Catalog()
	admins := map[string]provisioning.Admin{}
	planAdmins := map[string]provisioning.Admin{}
	credAdmins := map[string]provisioning.Credentials{}
	for i, cc := range cfg.Clusters {
		conn := provisioning.ClusterConn{BootstrapServers: cc.BootstrapServers}
		info := ClusterInfo{Name: cc.Name, Region: cc.Region, Embedded: cc.Embedded}
		if cc.Embedded {
			ec, err := embedded.Start(ctx, embedded.Options{
				Name: cc.Name, DataDir: filepath.Join(cfg.DataDir, "kafka", cc.Name), Port: cc.EmbeddedPort,
			})
			if err != nil {
				return nil, fmt.Errorf("starting embedded cluster %s: %w", cc.Name, err)
			}
			s.closers = append(s.closers, ec.Close)
			conn = ec.Conn()
			cat.Reserve(conn.SASL.Username, fmt.Sprintf("loopgate's admin principal on cluster %s", cc.Name))
		} else if cc.SASL != nil {
			pw := cc.SASL.Password
			if cc.SASL.PasswordEnv != "" {
				pw = os.Getenv(cc.SASL.PasswordEnv)
			}
			conn.SASL = &provisioning.SASL{Mechanism: cc.SASL.Mechanism, Username: cc.SASL.Username, Password: pw}
		}
		if cc.TLS != nil {
			conn.TLS = &provisioning.TLS{CAFile: cc.TLS.CAFile, CertFile: cc.TLS.CertFile, KeyFile: cc.TLS.KeyFile, InsecureSkipVerify: cc.TLS.InsecureSkipVerify}
		}
		cat.Clusters[i].BootstrapServers = conn.BootstrapServers
		info.BootstrapServers = conn.BootstrapServers
		info.SASL = conn.SASL
		s.clusters = append(s.clusters, info)
		client, err := provisioning.Connect(conn, kgo.ClientID("loopgate"))
		if err != nil {
			return nil, fmt.Errorf("connecting to cluster %s: %w", cc.Name, err)
		}
		s.closers = append(s.closers, client.Close)
		s.ops.addCluster(cc.Name, client)
		admin := provisioning.NewKafkaAdmin(client)
		admins[cc.Name] = admin
		credAdmins[cc.Name] = admin
		planAdmins[cc.Name] = provisioning.NewKafkaAdmin(client, provisioning.ReadOnly())
		s.addSLOCluster(cc, conn, client, admin)
	}

	b, err := loadBundle(cfg)
	if err != nil {
		return nil, err
	}
	engine, err := policy.NewEngine(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("preparing policy: %w", err)
	}

	// One peer index serves `:plan` and the reconciler (one code path
	// computes both); it starts from a complete listing and follows every
	// change (see changed and followChanges).
	s.newObserver(cfg, st)
	s.peers = reconciler.NewPeerIndex(cat)
	if _, err := s.peers.Load(ctx, st); err != nil {
		return nil, fmt.Errorf("loading the peer index: %w", err)
	}
	s.recon = reconciler.New(st, cat, admins, reconciler.Options{Resync: cfg.Resync, Logger: log, Peers: s.peers, Hooks: s.ops.reconcilerHooks()})
	notify := s.changed
	if n, shared := st.(store.Notifier); shared {
		// Tell every process: the reconciler in whichever leads, and the
		// peer index of each (followChanges).
		notify = func(key string) {
			s.changed(key)
			if err := n.Publish(context.Background(), key); err != nil {
				log.Warn("publishing a loop change failed; the next resync picks it up", "loop", key, "err", err)
			}
		}
	}
	check, err := policyCheckOptions(cfg)
	if err != nil {
		return nil, err
	}
	s.reevaluate = make(chan struct{}, 1)
	gov := &admission.PolicyGovernance{Builtin: b, Check: check, Changed: func(string) {
		select {
		case s.reevaluate <- struct{}{}:
		default: // one is pending already
		}
	}}
	s.Core = &admission.Core{Store: st, Policy: engine, Catalog: cat, PlanAdmins: planAdmins, Credentials: credAdmins,
		Notify: notify, Peers: s.peers, Drift: s.recon.DriftReports, Log: log, Governance: gov}
	s.Core.ObserveDecision = s.ops.metrics.ObserveDecision
	s.ops.addCoreChecks(s)
	// Per-loop series: latency, SLO state and lag (where this process
	// samples), and the cost forecast; capped at metrics.maxLoopSeries.
	if c := s.SLOCollector(); c != nil {
		if err := s.RegisterMetrics(c); err != nil {
			return nil, fmt.Errorf("registering the SLO metrics: %w", err)
		}
	}
	if err := s.RegisterMetrics(newCostCollector(s.peers, s.Core)); err != nil {
		return nil, fmt.Errorf("registering the cost metrics: %w", err)
	}
	// Judge by the bundle security activated, not the one built in. The
	// loops were judged by it before the restart: they are re-evaluated
	// only if no pass completed for it since its activation (or a new
	// built-in bundle came with an upgrade).
	if err := s.Core.LoadPolicy(ctx); err != nil {
		return nil, fmt.Errorf("loading the active policy bundle: %w", err)
	}
	if owed, err := s.Core.NeedsReevaluation(ctx); err != nil || owed {
		s.reevaluate <- struct{}{}
	}

	// Upgrade: principals and groups that loops of an older store name are
	// claimed by their teams; conflicts are reported, nothing on a cluster
	// changes.
	s.conflicts, err = s.Core.ClaimExisting(ctx)
	if err != nil {
		return nil, err
	}
	for _, cf := range s.conflicts {
		log.Warn("ownership conflict: loops of another team name a "+cf.Kind+" owned by "+cf.Owner+"; they cannot be updated until it is resolved (loopctl principals --conflicts)",
			"name", cf.Name, "owner", cf.Owner, "loops", cf.Loops)
	}

	// gRPC with the one auth interceptor; REST through grpc-gateway dialing
	// the gRPC listener, so both paths share authentication and errors.
	s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("gRPC listener on %s: %w", cfg.GRPCAddr, err)
	}
	s.GRPCAddr = s.grpcLis.Addr().String()
	s.closers = append(s.closers, s.Core.Close) // flush collapsed refusals
	limits := server.NewLimiters(rateLimits(cfg))
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(s.ops.interceptor(), server.Interceptor(authn, s.Core, limits)),
		grpc.ChainStreamInterceptor(server.StreamInterceptor())}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	s.grpcSrv = grpc.NewServer(opts...)
	server.Register(s.grpcSrv, s.Core)
	s.ops.registerGRPC(s.grpcSrv, cfg.Reflection)

	s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("HTTP listener on %s: %w", cfg.HTTPAddr, err)
	}
	s.HTTPAddr = s.httpLis.Addr().String()
	gw := runtime.NewServeMux(
		runtime.WithErrorHandler(server.GatewayErrorHandler),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithIncomingHeaderMatcher(func(h string) (string, bool) {
			if strings.EqualFold(h, "X-Request-Id") {
				return "x-request-id", true
			}
			return runtime.DefaultHeaderMatcher(h)
		}),
	)
	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if tlsCfg != nil {
		// The gateway dials this process: it pins the server's own
		// certificate rather than trusting a CA.
		dial = []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(pinnedTo(certs)))}
	}
	dial = append(dial, s.ops.gatewayDial) // marks REST calls for the metrics' transport label
	for _, reg := range server.GatewayHandlers {
		if err := reg(ctx, gw, s.GRPCAddr, dial); err != nil {
			return nil, fmt.Errorf("registering REST gateway: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", s.ops.countREST(guardREST(s.ops.forwarded(gw), authn, s.Core, limits)))
	s.ops.routes(mux, s.ops.gate(cfg, authn, s.Core, limits)) // /metrics, /livez, /readyz
	mux.HandleFunc("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Spec)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	// The portal (docs/portal.md) under "/": it calls the gRPC API as the gateway does, with each person's token.
	portalOIDC, err := portalOIDCOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	portal, err := web.New(web.Options{Target: s.GRPCAddr, Dial: dial, Secure: tlsCfg != nil, Log: log,
		CheckToken: checkPortalToken(authn, s.Core, limits), Refused: auditPortalRefusal(s.Core), OIDC: portalOIDC})
	if err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	s.closers = append(s.closers, portal.Close)
	mux.Handle("/", portal)
	s.httpSrv = newHTTPServer(mux)
	if tlsCfg != nil {
		s.httpSrv.TLSConfig = tlsCfg.Clone() // served with ServeTLS by Run
	}

	if cfg.DevCredentials {
		path, err := writeDevCredentials(s.GRPCAddr, devNames)
		if err != nil {
			return nil, err
		}
		s.log.Debug("dev credentials written", "path", path)
	}
	return s, nil
}

func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	switch cfg.Store.Driver {
	case "postgres":
		dsn := cfg.Store.DSN
		if cfg.Store.DSNEnv != "" {
			dsn = os.Getenv(cfg.Store.DSNEnv)
		}
		st, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("opening PostgreSQL store: %w", err)
		}
		return st, nil
	default:
		path := cfg.Store.Path
		if path == "" {
			path = filepath.Join(cfg.DataDir, "loopgate.db")
		}
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("opening SQLite store %s: %w", path, err)
		}
		return st, nil
	}
}

func loadBundle(cfg *config.Config) (*bundle.Bundle, error) {
	if cfg.Policy.Bundle == "" {
		return policy.DefaultBundle()
	}
	b, err := policy.LoadBundle(cfg.Policy.Bundle)
	if err != nil {
		return nil, fmt.Errorf("loading policy bundle %s: %w", cfg.Policy.Bundle, err)
	}
	return b, nil
}

// Banner prints where everything listens.
func (s *Server) Banner(w io.Writer) {
	fmt.Fprintf(w, "loopgate is ready\n")
	fmt.Fprintf(w, "  gRPC:      %s\n", s.GRPCAddr)
	scheme := "http"
	if s.httpSrv.TLSConfig != nil {
		scheme = "https"
	}
	fmt.Fprintf(w, "  REST:      %s://%s/v1/  (OpenAPI: %s://%s/openapi.json)\n", scheme, s.HTTPAddr, scheme, s.HTTPAddr)
	fmt.Fprintf(w, "  ops:       %s://%s/metrics, /readyz, /livez; gRPC health%s\n", scheme, s.HTTPAddr, map[bool]string{true: " and reflection"}[s.cfg.Reflection])
	fmt.Fprintf(w, "  data dir:  %s (store: %s)\n", s.cfg.DataDir, s.cfg.Store.Driver)
	fmt.Fprintf(w, "  policy:    bundle revision %s\n", s.Core.Policy.Revision())
	for _, c := range s.clusters {
		kind := "external"
		if c.Embedded {
			kind = "embedded"
		}
		fmt.Fprintf(w, "  cluster:   %s (region %s, %s) bootstrap %s", c.Name, c.Region, kind, strings.Join(c.BootstrapServers, ","))
		if c.SASL != nil {
			if c.Embedded {
				fmt.Fprintf(w, " SASL %s user %s password %s", c.SASL.Mechanism, c.SASL.Username, c.SASL.Password)
			} else {
				fmt.Fprintf(w, " SASL %s user %s", c.SASL.Mechanism, c.SASL.Username)
			}
		}
		fmt.Fprintln(w)
	}
	if n := len(s.conflicts); n > 0 {
		fmt.Fprintf(w, "  WARNING:   %d ownership conflict(s): loops of several teams name the same principal or group; see `loopctl principals --conflicts`\n", n)
	}
	if s.cfg.DevCredentials {
		path, _ := DevCredentialsPath()
		fmt.Fprintf(w, "  dev credentials (admin token; loopctl finds them): %s\n", path)
		fmt.Fprintf(w, "  demo tokens (loopctl --as NAME): %s\n", strings.Join(demoNames(), ", "))
	}
	fmt.Fprintf(w, "Press Ctrl+C to stop.\n")
}

// DrainTimeout bounds a graceful shutdown: in-flight requests and the
// current reconcile get this long to finish before they are cut.
const DrainTimeout = 10 * time.Second

// Run serves until ctx ends or a listener fails, then shuts everything
// down in order, and returns only when everything it started has stopped:
// the listeners stop accepting, in-flight requests drain (DrainTimeout,
// then they are cut), then the reconciler is stopped and waited for. Close
// releases the store and clients afterwards, so nothing is still using
// them. The error is the first failure, nil after ctx ended.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, 5)
	start := func(name string, run func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	start("gRPC listener", func() error { return s.grpcSrv.Serve(s.grpcLis) })
	start("REST listener", func() error {
		serve := s.httpSrv.Serve
		if s.httpSrv.TLSConfig != nil {
			serve = func(l net.Listener) error { return s.httpSrv.ServeTLS(l, "", "") }
		}
		if err := serve(s.httpLis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	// The reconciler has its own context: it is stopped after the API has
	// drained, so that requests admitted during the drain are not left
	// unreconciled by a reconciler already gone.
	rctx, stopReconciler := context.WithCancel(context.Background())
	defer stopReconciler()
	start("reconciler", func() error { return s.reconcile(rctx) })
	start("change feed", func() error { return s.followChanges(rctx) })
	start("policy", func() error { return s.followPolicy(rctx) })
	start("waivers", func() error { return s.followWaivers(rctx) })
	start("health", func() error { s.ops.watchReadiness(rctx, s.grpcSrv); return nil })

	var failed error
	select {
	case <-ctx.Done():
	case failed = <-errc:
		s.log.Error("stopping: a component failed", "err", failed)
	}
	s.ops.shutdown() // not ready any more: load balancers stop sending

	drain, done := context.WithTimeout(context.Background(), DrainTimeout)
	defer done()
	if err := s.httpSrv.Shutdown(drain); err != nil {
		s.log.Warn("REST requests cut at the drain deadline", "err", err)
		_ = s.httpSrv.Close()
	}
	stopped := make(chan struct{})
	go func() { s.grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-drain.Done():
		s.log.Warn("gRPC requests cut at the drain deadline")
		s.grpcSrv.Stop()
		<-stopped
	}
	stopReconciler()
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(DrainTimeout):
		s.log.Error("the reconciler did not stop within the drain deadline; closing anyway")
	}
	return failed
}

// reconcile runs the reconciler; with a shared store (PostgreSQL) only while
// this process holds the reconciler lease, so exactly one process
// reconciles at a time. It returns when ctx ends and everything it started
// has stopped.
func (s *Server) reconcile(ctx context.Context) error {
	el, shared := s.Core.Store.(store.Elector)
	if !shared {
		return s.lead(ctx)
	}
	for ctx.Err() == nil {
		lease, err := el.Lead(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("reconciler lease not acquired; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		s.log.Info("this process now runs the reconciler")
		s.leading.Store(true)
		_ = s.lead(lease)
		s.leading.Store(false)
		if ctx.Err() == nil {
			s.log.Warn("reconciler lease lost; waiting to lead again")
		}
	}
	return nil
}

// changed records that the loop key changed: the peer index reads it
// again (so that a `:plan` right after a write sees it) and the reconciler,
// if it runs here, is woken.
func (s *Server) changed(key string) {
	if err := s.peers.Refresh(context.Background(), s.Core.Store, key); err != nil {
		s.log.Warn("refreshing the peer index failed; the next resync corrects it", "loop", key, "err", err)
	}
	s.recon.Enqueue(key)
	s.sloChanged(key)
}

// followChanges keeps this process's peer index current with a store that
// several processes share: every change another process publishes is read
// again, and while another process runs the reconciler (whose resyncs
// reload the index) the index is reloaded here at the same interval. It
// returns when ctx ends.
func (s *Server) followChanges(ctx context.Context) error {
	n, shared := s.Core.Store.(store.Notifier)
	if !shared {
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.Subscribe(ctx, s.changed) })
	defer wg.Wait()
	every := s.cfg.Resync
	if every <= 0 {
		every = reconciler.DefaultResync
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if s.leading.Load() {
				continue
			}
			if _, err := s.peers.Load(ctx, s.Core.Store); err != nil && ctx.Err() == nil {
				s.log.Warn("reloading the peer index failed; retrying at the next interval", "err", err)
			}
		}
	}
}

// PolicySyncInterval is how often a process checks which policy bundle is
// active (another replica may have activated one).
var PolicySyncInterval = 2 * time.Second

// followPolicy keeps this process judging by the active bundle and, when
// it changed here, re-evaluates every loop — in the process that runs the
// reconciler, or the only one (SQLite) — so that each loop's
// PolicyCompliant condition says whether it complies with it. It returns
// when ctx ends.
func (s *Server) followPolicy(ctx context.Context) error {
	t := time.NewTicker(PolicySyncInterval)
	defer t.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	_, shared := s.Core.Store.(store.Elector)
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.Core.SyncPolicy(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("checking the active policy bundle failed; retrying", "err", err)
			}
		case <-s.reevaluate:
			pending = true
		case <-prune.C:
			if !shared || s.leading.Load() {
				s.pruneDecisions(ctx)
			}
		}
		if !pending || (shared && !s.leading.Load()) {
			continue
		}
		res, err := s.Core.ReevaluateAll(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("re-evaluating loops against the active policy bundle failed; retrying", "err", err)
			}
			continue
		}
		pending = false
		s.log.Info("loops re-evaluated against the active policy bundle", "bundle", res.BundleVersion,
			"loops", res.Loops, "non_compliant", res.NonCompliant, "changed", res.Changed)
	}
}

// Decision log retention defaults (config policy.decisionRetention,
// policy.decisionKeep).
const (
	DefaultDecisionRetention = 30 * 24 * time.Hour
	DefaultDecisionKeep      = 100_000
)

// pruneDecisions deletes the decisions older than the retention, keeping
// the newest DecisionKeep whatever their age.
func (s *Server) pruneDecisions(ctx context.Context) {
	retention, keep := s.cfg.Policy.DecisionRetention, s.cfg.Policy.DecisionKeep
	if retention <= 0 {
		retention = DefaultDecisionRetention
	}
	if keep <= 0 {
		keep = DefaultDecisionKeep
	}
	var n int64
	err := s.Core.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		n, err = tx.PruneDecisions(ctx, time.Now().Add(-retention), keep)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("pruning the decision log failed; retrying in an hour", "err", err)
		}
		return
	}
	if n > 0 {
		s.log.Info("decision log pruned", "deleted", n, "retention", retention, "keep", keep)
	}
}

// policyCheckOptions are how pushed bundles are checked: the signature keys
// of the config.
func policyCheckOptions(cfg *config.Config) (policy.CheckOptions, error) {
	opts := policy.CheckOptions{}
	for _, k := range cfg.Policy.VerificationKeys {
		raw, err := os.ReadFile(k.File)
		if err != nil {
			return opts, fmt.Errorf("policy.verificationKeys: key %s: %w", k.KeyID, err)
		}
		alg := k.Algorithm
		if alg == "" {
			alg = "RS256"
		}
		if opts.VerificationKeys == nil {
			opts.VerificationKeys = map[string]*bundle.KeyConfig{}
		}
		opts.VerificationKeys[k.KeyID] = &bundle.KeyConfig{Key: string(raw), Algorithm: alg}
	}
	return opts, nil
}

// Close releases the store, clients and embedded clusters.
func (s *Server) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// rateLimits are cfg's rate limits over the defaults.
func rateLimits(cfg *config.Config) server.RateLimits {
	rl := server.DefaultRateLimits
	l := cfg.Limits
	pick := func(dst *float64, v float64) {
		switch {
		case v < 0:
			*dst = 0 // disabled
		case v > 0:
			*dst = v
		}
	}
	pick(&rl.MutationsPerSecond, l.MutationsPerSecond)
	pick(&rl.AuthFailuresPerMinute, l.AuthFailuresPerMinute)
	if l.MutationBurst > 0 {
		rl.MutationBurst = l.MutationBurst
	}
	if l.AuthFailureBurst > 0 {
		rl.AuthFailureBurst = l.AuthFailureBurst
	}
	return rl
}

// tightenDataDir makes files an older loopgate (or a wider umask) left
// readable by others private, and warns when the data dir itself is open
// to others.
func tightenDataDir(dir string, log *slog.Logger) error {
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the data dir is accessible to other users; its files are kept private (mode 0600), but consider chmod 700", "dir", dir, "mode", fi.Mode().Perm().String())
	}
	// Walk the tree (tens of thousands of files at scale) only when a
	// top-level entry shows a version that wrote readable files.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	legacy := false
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().Perm()&0o077 != 0 {
			legacy = true
			break
		}
	}
	if !legacy {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable entries are the store's problem to report
		}
		info, err := d.Info()
		if err != nil || path == dir {
			return nil
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			want := perm &^ 0o077
			if err := os.Chmod(path, want); err != nil {
				return fmt.Errorf("making %s private: %w", path, err)
			}
		}
		return nil
	})
}
