package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/loopgate/loopgate/admission"
	"github.com/loopgate/loopgate/config"
	"github.com/loopgate/loopgate/internal/utf8clip"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/reconciler"
	"github.com/loopgate/loopgate/server"
	"github.com/loopgate/loopgate/telemetry"
)

// ops is the operations side of a Server (docs/operations.md): metrics,
// readiness and gRPC health, request logs, reflection.
type ops struct {
	log         *slog.Logger
	metrics     *telemetry.Metrics
	ready       *telemetry.Readiness
	health      *health.Server
	metricsAuth *telemetry.BearerFile // the scrape token; nil when none is configured
	marker      string                // the REST gateway's per-process marker
	gatewayDial grpc.DialOption
}

// newOps builds the metrics registry and readiness checker of s. The
// callbacks read s lazily: the peer index and the reconciler exist later.
func newOps(s *Server, cfg *config.Config, log *slog.Logger) (*ops, error) {
	o := &ops{log: log}
	if cfg.Metrics.TokenFile != "" {
		var err error
		if o.metricsAuth, err = telemetry.NewBearerFile(cfg.Metrics.TokenFile); err != nil {
			return nil, fmt.Errorf("metrics.tokenFile: %w", err)
		}
	}
	o.metrics = telemetry.New(telemetry.Options{
		MaxLoopSeries: cfg.Metrics.MaxLoopSeries,
		LoopStates: func() map[string]int {
			if s.peers == nil {
				return nil
			}
			return s.peers.CountByState()
		},
		Queue: func() telemetry.QueueStats {
			if s.recon == nil {
				return telemetry.QueueStats{}
			}
			q := s.recon.Queue()
			return telemetry.QueueStats{Queued: q.Queued, InFlight: q.InFlight, RetriesPending: q.RetriesPending, Parked: q.Parked}
		},
	})
	o.ready = telemetry.NewReadiness(0, 0)
	o.metrics.Registry().MustRegister(o.ready)
	o.marker, o.gatewayDial = server.GatewayMarker()
	o.health = health.NewServer()
	o.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING) // until the first readiness check
	return o, nil
}

// addCluster adds the readiness check of one cluster: a metadata request
// for no topics over loopgate's own client (so: reachable, authenticated,
// answering), at most once per telemetry.DefaultReadyTTL.
func (o *ops) addCluster(name string, client *kgo.Client) {
	o.ready.Add(telemetry.Check{Name: "cluster/" + name, Probe: func(ctx context.Context) error {
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{} // none: the cheapest answer
		resp, err := req.RequestWith(ctx, client)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", name, err)
		}
		if len(resp.Brokers) == 0 {
			return fmt.Errorf("cluster %s: no brokers in the metadata answer", name)
		}
		return nil
	}})
}

// addCoreChecks adds the store and policy checks (once the core exists).
func (o *ops) addCoreChecks(s *Server) {
	st := s.Core.Store
	o.ready.Add(telemetry.Check{Name: "store", Probe: func(ctx context.Context) error {
		// A primary-key lookup of an id nobody uses: one round trip.
		_, _, err := st.GetRequest(ctx, "loopgate-readyz-probe")
		return err
	}})
	o.ready.Add(telemetry.Check{Name: "policy", Probe: func(context.Context) error {
		if s.Core.Policy == nil {
			return fmt.Errorf("no policy bundle loaded: %w", telemetry.ErrNotReady)
		}
		return nil
	}})
}

// reconcilerHooks feed the reconcile metrics.
func (o *ops) reconcilerHooks() reconciler.Hooks {
	return reconciler.Hooks{
		Pass: func(p reconciler.PassStats) {
			o.metrics.ObserveReconcile(p.Kind, p.Loops, p.Terminal, p.Retriable, p.Duration)
		},
		Action: func(kind provisioning.ActionKind, failed bool) { o.metrics.ObserveAction(string(kind), failed) },
	}
}

// interceptor goes outside server.Interceptor: every unary call, refused
// ones included, is counted and logged once.
func (o *ops) interceptor() grpc.UnaryServerInterceptor {
	return server.ObserveInterceptor(o.marker, func(_ context.Context, c server.ObservedCall) {
		o.metrics.ObserveAPICall(c.Method, c.Code.String(), c.Transport, c.Duration)
	}, o.logCall)
}

// logCall writes the request log line of one call: ids, actor, method,
// code, duration — never a body, a token or a header but x-request-id.
func (o *ops) logCall(ctx context.Context, c server.ObservedCall) {
	level := slog.LevelInfo
	switch {
	case server.Unauthenticated(c.Method):
		level = slog.LevelDebug // load balancers' health checks would drown the log
	case c.Code == codes.Internal || c.Code == codes.Unknown || c.Code == codes.DataLoss:
		level = slog.LevelError
	}
	if !o.log.Enabled(ctx, level) {
		return
	}
	actor := c.Actor
	if actor == "" {
		actor = "-"
		if c.Code == codes.Unauthenticated {
			actor = "anonymous"
		}
	}
	attrs := []slog.Attr{
		slog.String("call_id", c.CallID),
		slog.String("method", c.Method),
		slog.String("transport", c.Transport),
		slog.String("actor", actor),
		slog.String("code", c.Code.String()),
		slog.Float64("duration_ms", float64(c.Duration.Microseconds())/1000),
	}
	if c.RequestID != "" {
		attrs = append(attrs, slog.String("request_id", c.RequestID))
	}
	o.log.LogAttrs(ctx, level, "api call", attrs...)
}

// registerGRPC adds the health service (and reflection when enabled) to
// srv, after the API services.
func (o *ops) registerGRPC(srv *grpc.Server, withReflection bool) {
	healthpb.RegisterHealthServer(srv, o.health)
	if withReflection {
		reflection.Register(srv)
	}
}

// watchReadiness keeps the gRPC health service's statuses ("" and every
// service) in step with the readiness checks until ctx ends.
func (o *ops) watchReadiness(ctx context.Context, srv *grpc.Server) {
	var services []string
	for name := range srv.GetServiceInfo() {
		services = append(services, name)
	}
	last := -1
	o.ready.Watch(ctx, telemetry.DefaultReadyTTL, func(ready bool) {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		now := 0
		if ready {
			st, now = healthpb.HealthCheckResponse_SERVING, 1
		}
		o.health.SetServingStatus("", st)
		for _, name := range services {
			o.health.SetServingStatus(name, st)
		}
		if now != last {
			if last >= 0 || !ready {
				o.log.Info("readiness changed", "ready", ready)
			}
			last = now
		}
	})
}

// shutdown reports not ready everywhere: the drain has begun.
func (o *ops) shutdown() {
	o.ready.SetDraining()
	o.health.Shutdown()
}

// routes adds /metrics, /livez and /readyz to the HTTP listener's mux.
func (o *ops) routes(mux *http.ServeMux, gate telemetry.Gate) {
	mux.Handle("/metrics", o.metrics.Handler(gate))
	mux.Handle("/livez", telemetry.LivezHandler())
	mux.Handle("/readyz", o.ready.ReadyzHandler(gate))
}

// metricsGate decides who reads /metrics and /readyz's failure reasons:
// Prometheus with the scrape token of metrics.tokenFile, or an API caller
// the one Authorizer allows metrics.read (platform admin, auditor). The
// series name every team's loops, which a team member may not list, so
// anyone else is refused, and the refusal audited like an API refusal
// (floods collapsed). metrics.public lets everyone in.
type metricsGate struct {
	scrape *telemetry.BearerFile // nil: no scrape token configured
	authn  *server.Authenticator
	core   *admission.Core
	lim    *server.Limiters
}

const metricsAction = "metrics.read"

// Check lets in Prometheus's scrape token, or an API credential whose
// identity may read metrics (metrics.read): otherwise 401, with the reason
// (no valid credential; too many failures from this address, with
// Retry-After; or an identity that may not read metrics).
func (g *metricsGate) Check(r *http.Request) error {
	if g.scrape != nil && g.scrape.Check(r) == nil {
		return nil
	}
	method := "HTTP " + r.Method + " " + r.URL.Path
	id, aerr := authenticateHTTP(r, method, r.Header.Get("Authorization"), g.authn, g.core, g.lim)
	if aerr != nil {
		if aerr.retryAfter > 0 {
			return &telemetry.Refusal{Status: http.StatusUnauthorized, Message: "unauthorized: " + aerr.msg, RetryAfter: aerr.retryAfter}
		}
		return &telemetry.Refusal{Status: http.StatusUnauthorized,
			Message: "unauthorized: " + r.URL.Path + " needs the scrape token of metrics.tokenFile or an API token of an admin or auditor (" + aerr.msg + ")"}
	}
	ctx := admission.WithCall(r.Context(), admission.Call{Method: method, Source: clientHost(r)})
	if err := g.core.Authorize(ctx, id, metricsAction, admission.Resource{Name: strings.TrimPrefix(r.URL.Path, "/")}); err != nil {
		return &telemetry.Refusal{Status: http.StatusUnauthorized, Message: "unauthorized: " + err.Error()}
	}
	return nil
}

// gate is the Gate of /metrics and /readyz for cfg (nil: open).
func (o *ops) gate(cfg *config.Config, authn *server.Authenticator, core *admission.Core, lim *server.Limiters) telemetry.Gate {
	if cfg.Metrics.Public {
		return nil
	}
	return &metricsGate{scrape: o.metricsAuth, authn: authn, core: core, lim: lim}
}

type forwardedKey struct{}

// forwarded marks a REST request as handed to the gateway (so the gRPC
// interceptor counts it); wrap the gateway with it, inside guardREST.
func (o *ops) forwarded(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f, ok := r.Context().Value(forwardedKey{}).(*bool); ok {
			*f = true
		}
		next.ServeHTTP(w, r)
	})
}

// countREST wraps guardREST: a REST request it refuses before the gateway
// (too large, unauthenticated, rate limited) never reaches the gRPC
// interceptor, so it is counted and logged here, as method "REST".
func (o *ops) countREST(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		fwd := new(bool)
		r = r.WithContext(context.WithValue(r.Context(), forwardedKey{}, fwd))
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		if *fwd {
			return
		}
		code := map[int]codes.Code{
			http.StatusUnauthorized: codes.Unauthenticated, http.StatusRequestEntityTooLarge: codes.ResourceExhausted,
			http.StatusTooManyRequests: codes.ResourceExhausted, http.StatusBadRequest: codes.InvalidArgument,
		}[sw.code]
		if code == codes.OK && sw.code >= 400 {
			code = codes.Unknown
		}
		took := time.Since(start)
		o.metrics.ObserveAPICall("REST", code.String(), server.TransportREST, took)
		o.logCall(r.Context(), server.ObservedCall{
			Method: "REST " + r.Method + " " + r.URL.Path, Transport: server.TransportREST, Code: code, CallID: server.NewCallID(),
			RequestID: clip(r.Header.Get("X-Request-Id"), 128), Duration: took,
		})
	})
}

type statusWriter struct {
	http.ResponseWriter
	code    int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.code, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func clip(s string, n int) string { return utf8clip.Bytes(s, n) }

// RegisterMetrics adds a collector to the registry /metrics serves: the
// hook for per-loop collectors (latency, lag, SLO state, cost). Their
// series with a "loop" label are capped at metrics.maxLoopSeries loops
// (see telemetry.Metrics.Register).
func (s *Server) RegisterMetrics(c prometheus.Collector) error { return s.ops.metrics.Register(c) }

// Metrics is the server's metrics registry and its own metrics.
func (s *Server) Metrics() *telemetry.Metrics { return s.ops.metrics }

// Ready reports whether every readiness check passes now (cached for a few
// seconds; see /readyz).
func (s *Server) Ready(ctx context.Context) bool { return s.ops.ready.Ready(ctx) }
