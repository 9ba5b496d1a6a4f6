package server

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/loopgate/loopgate/admission"
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// FuzzRESTBodyToDomain feeds REST request bodies through what the gateway
// and the adapters do with them: JSON → API message (as grpc-gateway
// decodes it) → domain loop → validation → back to the API. Nothing may
// panic; a refused body is an InvalidError naming fields; what maps to the
// domain maps back to an API loop with the same name and spec.
func FuzzRESTBodyToDomain(f *testing.F) {
	for _, seed := range []string{
		`{"name":"teams/growth/loops/checkout-nudge","spec":{"owners":["a@example.com"],"classification":"pii","residency":"eu","retentionMs":"259200000"}}`,
		`{"name":"teams/growth/loops/x","labels":{"domain":"checkout"},"spec":{"streams":[{"name":"events","partitions":12,"schema":{"format":"avro","definition":"{\"type\":\"record\",\"name\":\"E\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}"}}],"producers":[{"principal":"User:api","streams":["events"]}]}}`,
		`{"name":"teams//loops/"}`,
		`{"spec":{"throughput":{"bytesPerSecond":"9223372036854775807","peakFactor":1e308}}}`,
		`{"name":"teams/a/loops/b","spec":{"slo":{"latencyP99Ms":"-1"}}}`,
		`{}`, `[]`, `null`, `{"name":1}`,
	} {
		f.Add([]byte(seed))
	}
	u := protojson.UnmarshalOptions{DiscardUnknown: false}
	f.Fuzz(func(t *testing.T, body []byte) {
		var p lgv1.Loop
		if err := u.Unmarshal(body, &p); err != nil {
			return // the gateway answers 400 with the decoding error
		}
		l, err := loopFromProto(&p)
		if err != nil {
			var invalid *admission.InvalidError
			if !errors.As(err, &invalid) || len(invalid.Problems) == 0 || invalid.Problems[0].Field == "" {
				t.Fatalf("refusal is not a field-level InvalidError: %v", err)
			}
			return
		}
		loop.Default(l)
		for _, fe := range loop.Validate(l) {
			if fe.Field == "" || fe.Message == "" {
				t.Fatalf("a validation problem without field or message: %+v", fe)
			}
		}
		back := loopToProto(l)
		if back.GetName() != p.GetName() {
			t.Fatalf("name %q came back as %q", p.GetName(), back.GetName())
		}
		if _, err := protojson.Marshal(back); err != nil {
			t.Fatalf("the mapped loop does not encode: %v", err)
		}
	})
}
