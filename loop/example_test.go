package loop_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/loopgate/loopgate/loop"
)

func ExampleParse() {
	const spec = `apiVersion: loopgate.dev/v1
kind: Loop
metadata: {name: checkout-nudge, team: growth}
spec:
  owners: [ana@example.com]
  classification: pii
  residency: eu
  retention: 72h
  slo: {latencyP99: 2s}
  throughput: {bytesPerSecond: 2MiB, peakFactor: 3}
  streams:
    - name: events
      external: true   # written by something outside the loop
      schema:
        definition: '{"type":"record","name":"E","fields":[{"name":"user_id","type":"string"}]}'
`
	loops, err := loop.Parse(strings.NewReader(spec))
	if err != nil {
		fmt.Println(err)
		return
	}
	l := loops[0]
	fmt.Println(l.Metadata.ResourceName())
	fmt.Println("retention ms:", l.Spec.RetentionMs)
	fmt.Println("latency p99 ms:", l.Spec.SLO.LatencyP99Ms)
	fmt.Println("bytes/s:", l.Spec.Throughput.BytesPerSecond)
	fmt.Println("compatibility:", l.Spec.Streams[0].Schema.Compatibility)
	fmt.Println("problems:", len(loop.Validate(l)))
	// Output:
	// teams/growth/loops/checkout-nudge
	// retention ms: 259200000
	// latency p99 ms: 2000
	// bytes/s: 2097152
	// compatibility: BACKWARD
	// problems: 0
}

func ExampleParse_errors() {
	const spec = `apiVersion: loopgate.dev/v1
kind: Loop
metadata: {name: checkout-nudge, team: growth}
spec:
  retention: 72x
  stream: []
`
	_, err := loop.Parse(strings.NewReader(spec))
	var problems loop.FieldErrors
	if errors.As(err, &problems) {
		for _, p := range problems {
			fmt.Println(p)
		}
	}
	// Output:
	// document 1 line 5: spec.retention: "72x" has an unknown unit "x" (use ms, s, m, h, d or w)
	// document 1 line 6: spec.stream: unknown field (did you mean "streams"?)
}

func ExampleValidate() {
	l := &loop.Loop{Metadata: loop.Metadata{Name: "x", Team: "growth"}}
	loop.Default(l)
	for _, p := range loop.Validate(l) {
		fmt.Println(p.Field)
	}
	// Output:
	// metadata.name
	// spec.owners
	// spec.classification
	// spec.residency
	// spec.retention
	// spec.slo.latencyP99
	// spec.throughput.bytesPerSecond
	// spec.streams
}
