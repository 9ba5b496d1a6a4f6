package app_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The embedded default observes loops; its collector registers in a
// Prometheus registry and gathers (no loop yet: only the dropped-loops
// gauge, 0).
func TestSLOCollectorRegisters(t *testing.T) {
	srv, cancel, ran := startApp(t)
	defer func() { cancel(); <-ran; srv.Close() }()
	c := srv.SLOCollector()
	if c == nil {
		t.Fatal("the embedded default has no SLO collector")
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "loopgate_loop_metrics_dropped_loops" || mfs[0].GetMetric()[0].GetGauge().GetValue() != 0 {
		t.Errorf("gathered %v", mfs)
	}
}
