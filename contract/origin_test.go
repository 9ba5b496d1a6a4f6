package contract

import (
	"bytes"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/loop"
)

// Only the principal that writes the action stream is told about the origin
// header, in every rendering, with a franz-go and a Java snippet.
func TestOriginHeaderForTheActionWriter(t *testing.T) {
	l := &loop.Loop{
		Metadata: loop.Metadata{Team: "growth", Name: "checkout-nudge"},
		Spec: loop.Spec{SLO: loop.SLO{LatencyP99Ms: 2000},
			Streams: []loop.Stream{{Name: "events"}, {Name: "actions"}},
			Action:  &loop.Action{Stream: "actions"}},
	}
	actor := Build(Input{Loop: l, Principal: "User:nudge-engine", Mechanism: "SCRAM-SHA-512",
		Produce: []string{"growth.checkout-nudge.actions"}, Consume: []string{"growth.checkout-nudge.events"}, Group: "nudge-engine"})
	if h := actor.OriginHeader; h == nil || h.Key != "loopgate-origin-ts" || h.Topic != "growth.checkout-nudge.actions" || !strings.Contains(h.Value, "milliseconds") {
		t.Fatalf("OriginHeader = %+v", actor.OriginHeader)
	}
	producer := Build(Input{Loop: l, Principal: "User:checkout-api", Produce: []string{"growth.checkout-nudge.events"}})
	if producer.OriginHeader != nil {
		t.Errorf("the events producer got an origin header: %+v", producer.OriginHeader)
	}
	for client, want := range map[string]string{
		"franz-go":   "strconv.FormatInt(ev.Timestamp.UnixMilli(), 10)",
		"java":       `act.headers().add("loopgate-origin-ts", Long.toString(event.timestamp())`,
		"librdkafka": "set the header loopgate-origin-ts",
	} {
		var b bytes.Buffer
		if err := Render(&b, actor, client); err != nil {
			t.Fatalf("%s: %v", client, err)
		}
		if !strings.Contains(b.String(), want) || !strings.Contains(b.String(), "set the header loopgate-origin-ts") {
			t.Errorf("%s rendering does not say how to set the header (%q):\n%s", client, want, b.String())
		}
		b.Reset()
		if err := Render(&b, producer, client); err != nil {
			t.Fatalf("%s producer: %v", client, err)
		}
		if strings.Contains(b.String(), "loopgate-origin-ts") {
			t.Errorf("%s rendering for the events producer mentions the origin header", client)
		}
	}
}
