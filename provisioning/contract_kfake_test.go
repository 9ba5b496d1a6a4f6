package provisioning_test

import (
	"context"
	"testing"

	"github.com/loopgate/loopgate/embedded"
	"github.com/loopgate/loopgate/provisioning/provtest"
)

// TestContractKfake runs the provisioning contract suite against the
// in-process kfake cluster of the embedded mode (one broker, SASL/SCRAM and
// ACLs enforced). It always runs.
func TestContractKfake(t *testing.T) {
	c, err := embedded.Start(context.Background(), embedded.Options{Name: "contract"})
	if err != nil {
		t.Fatalf("embedded.Start: %v", err)
	}
	t.Cleanup(c.Close)
	provtest.Run(t, provtest.Cluster{Name: "kfake", Conn: c.Conn(), RF: 1})
}
