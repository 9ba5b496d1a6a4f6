package testkafka

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// toolTimeout bounds one CLI tool run (a JVM start is 1–3 s; the admin calls inside are quick).
const toolTimeout = 2 * time.Minute

// TopicCommand runs Kafka's kafka-topics tool (org.apache.kafka.tools.TopicCommand) as the admin
// user over the SASL listener and returns its standard output. Example:
//
//	out, err := b.TopicCommand("--describe", "--topic", "orders")
func (b *Broker) TopicCommand(args ...string) (string, error) {
	return b.RunTool("org.apache.kafka.tools.TopicCommand", args...)
}

// AclCommand runs Kafka's kafka-acls tool (org.apache.kafka.tools.AclCommand), e.g.
// b.AclCommand("--list", "--topic", "orders").
func (b *Broker) AclCommand(args ...string) (string, error) {
	return b.RunTool("org.apache.kafka.tools.AclCommand", args...)
}

// ConfigCommand runs Kafka's kafka-configs tool, e.g.
// b.ConfigCommand("--describe", "--entity-type", "users", "--entity-name", "alice").
// The class moved from kafka.admin (Scala, in kafka_2.13) to org.apache.kafka.tools in later 4.x
// releases; whichever the fetched jars hold is used.
func (b *Broker) ConfigCommand(args ...string) (string, error) {
	b.configCmdOnce.Do(func() {
		b.configCmdClass = "kafka.admin.ConfigCommand"
		const moved = "org/apache/kafka/tools/ConfigCommand.class"
		if jarHas(filepath.Join(b.Lib, "kafka-tools-"+b.Version+".jar"), moved) {
			b.configCmdClass = "org.apache.kafka.tools.ConfigCommand"
		}
	})
	return b.RunTool(b.configCmdClass, args...)
}

// jarHas reports whether the jar (a zip file) has an entry named name.
func jarHas(jar, name string) bool {
	zr, err := zip.OpenReader(jar)
	if err != nil {
		return false
	}
	defer zr.Close()
	f, err := zr.Open(name)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// RunTool runs a Kafka command-line class that takes --bootstrap-server and --command-config
// (both are supplied: the SASL listener and the admin's client properties) and returns its
// standard output. A non-zero exit is an error carrying the tool's standard error.
func (b *Broker) RunTool(class string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	jvm := []string{
		"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", // short-lived: start fast
		"-Dlog4j2.configurationFile=" + b.toolsLog4j,
		"-cp", filepath.Join(b.Lib, "*"),
		class,
		"--bootstrap-server", strings.Join(b.SASLBootstrap, ","),
		"--command-config", b.ClientProperties,
	}
	cmd := exec.CommandContext(ctx, javaCommand(), append(jvm, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		short := class[strings.LastIndexByte(class, '.')+1:]
		return stdout.String(), fmt.Errorf("testkafka: %s %s: %w\nstdout:\n%s\nstderr:\n%s",
			short, strings.Join(args, " "), err, tail(stdout.String(), 30), tail(stderr.String(), 30))
	}
	return stdout.String(), nil
}
