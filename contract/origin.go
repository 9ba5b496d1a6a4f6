package contract

import (
	"strconv"
)

// OriginHeaderKey is the record header an acting service puts on every
// action record: the timestamp of the record that triggered the action, in
// milliseconds since the Unix epoch, as decimal ASCII. loopgate samples the
// action topic and measures producer-to-action latency as the action
// record's timestamp minus this value (docs/slo.md).
const OriginHeaderKey = "loopgate-origin-ts"

// OriginHeaderValue describes the header's value.
const OriginHeaderValue = "the triggering record's timestamp in milliseconds since the Unix epoch, as decimal ASCII"

// OriginHeader tells the principal that writes a loop's action stream how
// to mark each action record.
type OriginHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Topic string `json:"topic"`
}

func originHeaderOf(f figures) *OriginHeader {
	if f.actionTopic == "" {
		return nil
	}
	return &OriginHeader{Key: OriginHeaderKey, Value: OriginHeaderValue, Topic: f.actionTopic}
}

// originLines are the lines every rendering says about the origin header.
func originLines(c Contract) []string {
	h := c.OriginHeader
	if h == nil {
		return nil
	}
	return []string{
		"Action records: on every record written to " + h.Topic + ", set the header " + h.Key + " to " + h.Value + ".",
		"loopgate samples " + h.Topic + " and measures producer-to-action latency as the action record's timestamp minus it; records without it are counted, never guessed.",
	}
}

// franzOriginSnippet is Go code marking an action record.
func franzOriginSnippet(c Contract) []string {
	h := c.OriginHeader
	return []string{
		"Marking an action record (ev is the record that triggered it):",
		"",
		"  act := &kgo.Record{Topic: " + strconv.Quote(h.Topic) + ", Key: ev.Key, Value: action,",
		"      Headers: []kgo.RecordHeader{{Key: " + strconv.Quote(h.Key) + ", Value: []byte(strconv.FormatInt(ev.Timestamp.UnixMilli(), 10))}}}",
		"  cl.Produce(ctx, act, nil)",
	}
}

// javaOriginSnippet is Java code marking an action record.
func javaOriginSnippet(c Contract) []string {
	h := c.OriginHeader
	return []string{
		"Marking an action record (event is the ConsumerRecord that triggered it):",
		"",
		"  ProducerRecord<String, byte[]> act = new ProducerRecord<>(\"" + h.Topic + "\", event.key(), action);",
		"  act.headers().add(\"" + h.Key + "\", Long.toString(event.timestamp()).getBytes(StandardCharsets.US_ASCII));",
		"  producer.send(act);",
	}
}
