package loopgate.loop

# Every stream carries a schema with a definition: consumers must know what
# they read.
findings.deny contains violation(
	"SCHEMA_REQUIRED",
	sprintf("stream %q has no schema definition; add spec.streams[%d].schema with format avro and the record schema", [stream.name, i]),
	sprintf("spec.streams[%d].schema", [i]),
) if {
	changes_spec
	some i, stream in list(spec, "streams")
	not has_definition(stream)
}

has_definition(stream) if trim_space(stream.schema.definition) != ""

# Partitions only grow (Kafka cannot shrink a topic without recreating it and
# losing its data). A stream keeps its name across updates, so streams are
# matched by name. The new count is the spec's when set, else the one
# provisioning derived for the stream's topic; the old count is the previous
# spec's explicit one (a previously derived count is protected by provisioning,
# which never lowers partitions).
findings.deny contains violation(
	"PARTITIONS_SHRINK",
	sprintf("stream %q would go from %d to %d partitions; partitions can only grow: keep spec.streams[%d].partitions at %d or more", [stream.name, old, new, i, old]),
	sprintf("spec.streams[%d].partitions", [i]),
) if {
	is_update
	some i, stream in list(spec, "streams")
	some prev in list(input.previous.spec, "streams")
	prev.name == stream.name
	old := number(prev, "partitions")
	new := stream_partitions(stream)
	new < old
}

stream_partitions(stream) := stream.partitions if stream.partitions > 0

else := t.partitions if {
	some t in list(input.derived, "topics")
	t.name == topic_name(stream.name)
}
