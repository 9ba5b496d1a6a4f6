package contract_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/loopgate/loopgate/contract"
	"github.com/loopgate/loopgate/loop"
)

// The loop of examples/checkout-nudge.yaml: checkout events in, nudges out, p99 2s.
const checkoutNudge = `
apiVersion: loopgate.dev/v1
kind: Loop
metadata: {name: checkout-nudge, team: growth}
spec:
  owners: [ana@example.com]
  classification: pii
  residency: eu
  retention: 72h
  slo: {latencyP99: 2s, freshness: 30s}
  throughput: {bytesPerSecond: 2MiB, peakFactor: 3, recordBytes: 600}
  streams:
    - name: events
      partitions: 12
      schema: {format: avro, definition: '{"type":"record","name":"CheckoutEvent","fields":[{"name":"user_id","type":"string"}]}'}
    - name: actions
      schema: {format: avro, definition: '{"type":"record","name":"Nudge","fields":[{"name":"user_id","type":"string"}]}'}
  producers:
    - {principal: User:checkout-api, streams: [events]}
    - {principal: User:nudge-engine, streams: [actions]}
  consumers:
    - {principal: User:nudge-engine, group: nudge-engine, streams: [events]}
  action: {stream: actions}
`

// The nudge engine reads the loop's events and writes its actions.
func ExampleBuild() {
	loops, err := loop.Load(strings.NewReader(checkoutNudge))
	if err != nil {
		panic(err)
	}
	c := contract.Build(contract.Input{
		Loop:             loops[0],
		Principal:        "User:nudge-engine",
		Bootstrap:        []string{"kafka-1.eu.example.com:9093"},
		SecurityProtocol: "SASL_SSL",
		Mechanism:        "SCRAM-SHA-512",
		Produce:          []string{"growth.checkout-nudge.actions"},
		Consume:          []string{"growth.checkout-nudge.events"},
		Group:            "nudge-engine",
	})
	fmt.Println(c.Basis)
	for _, s := range append(c.Producer, c.Consumer...) {
		fmt.Printf("%s=%s\n", s.Key, s.Value)
	}
	// Output:
	// p99 2s, freshness 30s, peak 6 MiB/s (2 MiB/s × 3), records ~600 B
	// acks=all
	// enable.idempotence=true
	// max.in.flight.requests.per.connection=5
	// linger.ms=20
	// batch.size=65536
	// compression.type=lz4
	// delivery.timeout.ms=60000
	// request.timeout.ms=30000
	// fetch.min.bytes=1
	// fetch.max.wait.ms=100
	// max.poll.records=500
	// isolation.level=read_committed
	// auto.offset.reset=by_duration:PT30S
	// enable.auto.commit=false
	// session.timeout.ms=15000
	// partition.assignment.strategy=org.apache.kafka.clients.consumer.CooperativeStickyAssignor
}

// The checkout API only writes events; its librdkafka configuration.
func ExampleRender() {
	loops, err := loop.Load(strings.NewReader(checkoutNudge))
	if err != nil {
		panic(err)
	}
	c := contract.Build(contract.Input{
		Loop:             loops[0],
		Principal:        "User:checkout-api",
		Bootstrap:        []string{"kafka-1.eu.example.com:9093"},
		SecurityProtocol: "SASL_SSL",
		Mechanism:        "SCRAM-SHA-512",
		Produce:          []string{"growth.checkout-nudge.events"},
	})
	if err := contract.Render(os.Stdout, c, "librdkafka"); err != nil {
		panic(err)
	}
	// Output:
	// # Loop contract of User:checkout-api in loop growth/checkout-nudge, for librdkafka (kcat -F, confluent-kafka clients).
	// # Settings follow from: p99 2s, freshness 30s, peak 6 MiB/s (2 MiB/s × 3), records ~600 B.
	// # Writes: growth.checkout-nudge.events
	//
	// bootstrap.servers=kafka-1.eu.example.com:9093
	// security.protocol=sasl_ssl
	// sasl.mechanisms=SCRAM-SHA-512
	// sasl.username=checkout-api
	// # Password: not part of this contract; use the one loopgate issued for User:checkout-api (shown once).
	// sasl.password=<password of User:checkout-api>
	//
	// # --- producer: writes growth.checkout-nudge.events
	// # acks: no acknowledged record may be lost: the loop acts on these records
	// acks=all
	// # enable.idempotence: retries after a timeout or leader change must not duplicate records
	// enable.idempotence=true
	// # max.in.flight.requests.per.connection: the most requests in flight that idempotence keeps in order; fewer would cap throughput
	// max.in.flight.requests.per.connection=5
	// # linger.ms: 1% of the 2s p99 budget: batches fill a little without spending the budget
	// linger.ms=20
	// # batch.size: twice what fills in one linger, rounded up to a power of two: a partition fills ~10.2 KiB in 20 ms at 512 KiB/s peak per partition (12 partitions)
	// batch.size=32768
	// # compression.type=lz4: cheap and fast; at 6 MiB/s peak zstd's better ratio is not worth its CPU
	// compression.codec=lz4
	// # delivery.timeout.ms: 30× the 2s p99 within [30s, 120s]: fail an undeliverable record while it still matters, after riding out a leader election
	// delivery.timeout.ms=60000
	// # request.timeout.ms: half the delivery timeout, so a stalled request is retried at least once before the record fails
	// request.timeout.ms=30000
}
