package provisioning_test

import (
	"fmt"

	"github.com/loopgate/loopgate/provisioning"
)

// Plan compares what a loop needs with what the cluster has. Here the spec
// asked for a longer retention and one more consumer ACL.
func ExamplePlan() {
	observed := provisioning.Resources{
		Topics: []provisioning.Topic{{Name: "growth.nudge.events", Partitions: 6, ReplicationFactor: 3,
			Configs: map[string]string{"retention.ms": "86400000"}}},
	}
	desired := provisioning.Resources{
		Topics: []provisioning.Topic{{Name: "growth.nudge.events", Partitions: 6, ReplicationFactor: 3,
			Configs: map[string]string{"retention.ms": "259200000"}}},
		ACLs: []provisioning.ACL{{Principal: "User:nudge-engine", Host: "*", ResourceType: provisioning.ResourceGroup,
			ResourceName: "nudge-engine", PatternType: provisioning.PatternLiteral, Operation: provisioning.OpRead,
			Permission: provisioning.PermissionAllow}},
	}
	for _, a := range provisioning.Plan(desired, observed).Actions {
		fmt.Printf("%-17s | %-37s | %-22s | %s\n", a.Kind, a.Resource, a.Current, a.Desired)
	}
	// Output:
	// AlterTopicConfigs | topic growth.nudge.events             | retention.ms=86400000  | retention.ms=259200000
	// CreateACL         | acl User:nudge-engine READ GROUP nudge-engine | absent                 | present
}
