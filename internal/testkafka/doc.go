// Package testkafka runs a real Apache Kafka broker for integration tests, as an independent
// check on what loopgate provisions (kfake is fast but lenient: it does not validate configs or
// enforce quotas).
//
// Start here: call [Start] in a test. It returns the package's shared [Broker], starting it on
// first use with scripts/kafka/start.sh: a single KRaft node on free 127.0.0.1 ports, SASL/SCRAM,
// ACLs enforced with deny-by-default, no topic auto-creation. Then connect with [Broker.Client] /
// [Broker.Admin], create non-super users with [Broker.CreateUser], and cross-check results with
// Kafka's own CLI tools: [Broker.TopicCommand], [Broker.AclCommand], [Broker.ConfigCommand].
//
// The Apache Kafka leg is opt-in because it needs a JDK (>= 17), Maven and, on first use, Maven
// Central (about 55 MB of jars, cached in ~/.cache/loopgate and ~/.m2 afterwards):
//
//	LOOPGATE_TEST_KAFKA=1 go test ./...   # enabled
//	CI=true go test ./...                 # enabled (LOOPGATE_TEST_KAFKA=0 opts out)
//	go test ./...                         # tests calling Start are skipped
//
// When enabled, failing to fetch or start the broker fails the test with an error that names the
// missing piece ([ErrJavaMissing], [ErrMavenMissing], [ErrFetch], [ErrNotReady] with the broker
// log tail); it never silently skips.
//
// Lifetime: one broker per test binary. Stop it deterministically from TestMain:
//
//	func TestMain(m *testing.M) {
//		_, stop, _ := testkafka.StartForMain() // errors resurface in Start(t)
//		code := m.Run()
//		stop()
//		os.Exit(code)
//	}
//
// Without TestMain the broker is stopped (and its directory removed) by a watchdog within about a
// second after the test binary exits, including when it crashes or times out. [StartFresh] gives
// a test its own broker, stopped at the end of that test.
//
// Security model: the admin user and User:ANONYMOUS are super users, so the PLAINTEXT listener
// ([Broker.PlaintextBootstrap]) bypasses ACLs. Authorization tests must log in through
// [Broker.SASLBootstrap] as a user created with [Broker.CreateUser].
package testkafka
