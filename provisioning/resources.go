package provisioning

// Resources is a set of Kafka resources: what a loop needs (derived from its
// spec) or what a cluster has (observed). Slices are kept sorted by Derive
// and Observe so that equal sets compare and print equally.
type Resources struct {
	Topics []Topic `json:"topics"`
	ACLs   []ACL   `json:"acls"`
	Quotas []Quota `json:"quotas"`
}

// Topic is a Kafka topic with its partition count, replication factor and
// the topic configs loopgate manages (retention.ms, cleanup.policy,
// min.insync.replicas, ...). Configs loopgate does not manage are ignored
// when comparing.
type Topic struct {
	Name              string            `json:"name"`
	Partitions        int32             `json:"partitions"`
	ReplicationFactor int16             `json:"replicationFactor"`
	Configs           map[string]string `json:"configs"`
}

// ACL resource types, operations and pattern types, in Kafka's words.
const (
	ResourceTopic = "TOPIC"
	ResourceGroup = "GROUP"

	OpRead     = "READ"
	OpWrite    = "WRITE"
	OpDescribe = "DESCRIBE"

	PatternLiteral  = "LITERAL"
	PermissionAllow = "ALLOW"
)

// ACL is one Kafka ACL binding. loopgate only creates ALLOW bindings with a
// LITERAL pattern and host "*".
type ACL struct {
	Principal    string `json:"principal"`    // "User:checkout-api"
	Host         string `json:"host"`         // "*"
	ResourceType string `json:"resourceType"` // TOPIC | GROUP
	ResourceName string `json:"resourceName"`
	PatternType  string `json:"patternType"` // LITERAL
	Operation    string `json:"operation"`   // READ | WRITE | DESCRIBE
	Permission   string `json:"permission"`  // ALLOW
}

// Quota is the client quota of one principal (Kafka entity type "user").
// A zero rate means "no quota of that kind".
type Quota struct {
	Principal        string `json:"principal"` // "User:checkout-api"
	ProducerByteRate int64  `json:"producerByteRate,omitempty"`
	ConsumerByteRate int64  `json:"consumerByteRate,omitempty"`
}
