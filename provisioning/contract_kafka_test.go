package provisioning_test

import (
	"os"
	"testing"

	"github.com/loopgate/loopgate/internal/testkafka"
	"github.com/loopgate/loopgate/provisioning"
	"github.com/loopgate/loopgate/provisioning/provtest"
)

// TestMain stops the shared Apache Kafka broker (when the leg is enabled)
// once every test of the package has run.
func TestMain(m *testing.M) {
	stop := func() {}
	if testkafka.Enabled() {
		_, stop, _ = testkafka.StartForMain() // a start failure is reported again by testkafka.Start(t)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// TestContractApacheKafka runs the provisioning contract suite against a
// real Apache Kafka broker (KRaft, SASL/SCRAM, StandardAuthorizer with
// deny-by-default). It runs with LOOPGATE_TEST_KAFKA=1 or CI=true and is
// skipped otherwise.
func TestContractApacheKafka(t *testing.T) {
	b := testkafka.Start(t)
	provtest.Run(t, provtest.Cluster{
		Name: "apache-kafka-" + b.Version,
		Conn: provisioning.ClusterConn{
			BootstrapServers: b.SASLBootstrap,
			SASL:             &provisioning.SASL{Mechanism: b.Mechanism, Username: b.AdminUser, Password: b.AdminPassword},
		},
		RF: 1,
		NewUser: func(t testing.TB, name, password string) provisioning.ClusterConn {
			if err := b.CreateUser(t.Context(), name, password); err != nil {
				t.Fatal(err)
			}
			return provisioning.ClusterConn{
				BootstrapServers: b.SASLBootstrap,
				SASL:             &provisioning.SASL{Mechanism: b.Mechanism, Username: name, Password: password},
			}
		},
		Real: true,
	})
}
