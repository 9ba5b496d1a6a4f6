package contract

import (
	"bytes"
	"errors"
	"fmt"
	"go/format"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Clients are the clients Render writes contracts for.
var Clients = []string{"franz-go", "java", "librdkafka"}

// ErrUnknownClient is returned (wrapped) by Render for a client not in
// Clients.
var ErrUnknownClient = errors.New("unknown client")

// Render writes contract c for client, one of Clients:
//
//   - "franz-go": a Go file with a function returning a kgo.Client built
//     from kgo options, each preceded by its setting and reason;
//   - "java": a client.properties file, reasons as comments;
//   - "librdkafka": a properties file in librdkafka names (kcat -F reads
//     it), reasons as comments.
//
// Without c.Password the output holds a placeholder, never a password.
func Render(w io.Writer, c Contract, client string) error {
	var (
		out []byte
		err error
	)
	switch client {
	case "franz-go":
		out, err = renderFranz(c)
	case "java":
		out = renderJava(c)
	case "librdkafka":
		out = renderLibrdkafka(c)
	default:
		return fmt.Errorf("contract: %w %q: use one of %s", ErrUnknownClient, client, strings.Join(Clients, ", "))
	}
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// placeholder stands for the password in outputs that carry none.
func placeholder(c Contract) string { return "<password of " + c.Principal + ">" }

// passwordNote explains where the password comes from when c has none.
func passwordNote(c Contract) string {
	return "Password: not part of this contract; use the one loopgate issued for " + c.Principal + " (shown once)."
}

func usesTLS(c Contract) bool { return c.SecurityProtocol == "SSL" || c.SecurityProtocol == "SASL_SSL" }

// header is the comment block every rendering opens with, without comment
// markers.
func header(c Contract, client string) []string {
	lines := []string{
		fmt.Sprintf("Loop contract of %s in loop %s, for %s.", c.Principal, c.Loop, client),
		"Settings follow from: " + c.Basis + ".",
	}
	if len(c.Produce) > 0 {
		lines = append(lines, "Writes: "+strings.Join(c.Produce, ", "))
	}
	if len(c.Consume) > 0 {
		r := "Reads: " + strings.Join(c.Consume, ", ")
		if c.Group != "" {
			r += " (group " + c.Group + ")"
		}
		lines = append(lines, r)
	}
	return append(lines, originLines(c)...)
}

// consumeHow says how the consumer gets its topics.
func consumeHow(c Contract) string {
	if c.Group == "" {
		return "assign the partitions of " + strings.Join(c.Consume, ", ") + " (no group: nothing is committed)"
	}
	return "subscribe to " + strings.Join(c.Consume, ", ")
}

func settingLine(s Setting) string { return s.Key + "=" + s.Value + ": " + s.Reason }

// --- franz-go ---

func renderFranz(c Contract) ([]byte, error) {
	var b bytes.Buffer
	imports := map[string]bool{"github.com/twmb/franz-go/pkg/kgo": true}
	var opts []string // lines inside kgo.NewClient(...)
	opt := func(format string, args ...any) { opts = append(opts, fmt.Sprintf(format, args...)) }
	dur := func(ms string) string {
		imports["time"] = true
		return goDuration(ms)
	}

	seeds := c.Bootstrap
	if len(seeds) == 0 {
		seeds = []string{"<bootstrap servers of the loop's cluster>"}
	}
	opt("kgo.SeedBrokers(%s),", goStrings(seeds))
	var sec []string
	if c.SecurityProtocol != "" {
		sec = append(sec, "security.protocol="+c.SecurityProtocol)
	}
	if c.Mechanism != "" {
		sec = append(sec, "sasl.mechanism="+c.Mechanism)
	}
	if len(sec) > 0 {
		opt("// %s", strings.Join(sec, ", "))
	}
	if usesTLS(c) {
		opt("kgo.DialTLS(),")
	}
	pass := strconv.Quote(c.Password)
	passNote := ""
	if c.Password == "" {
		imports["os"] = true
		pass = "os.Getenv(" + strconv.Quote(PasswordEnv) + ")"
		passNote = " // " + passwordNote(c)
	}
	switch c.Mechanism {
	case "SCRAM-SHA-512", "SCRAM-SHA-256":
		imports["github.com/twmb/franz-go/pkg/sasl/scram"] = true
		as := "AsSha512Mechanism"
		if c.Mechanism == "SCRAM-SHA-256" {
			as = "AsSha256Mechanism"
		}
		opt("kgo.SASL(scram.Auth{")
		opt("User: %s,", strconv.Quote(c.Username))
		opt("Pass: %s,%s", pass, passNote)
		opt("}.%s()),", as)
	case "PLAIN":
		imports["github.com/twmb/franz-go/pkg/sasl/plain"] = true
		opt("kgo.SASL(plain.Auth{")
		opt("User: %s,", strconv.Quote(c.Username))
		opt("Pass: %s,%s", pass, passNote)
		opt("}.AsMechanism()),")
	case "":
		opt("// No SASL: %s (user %s) authenticates outside SASL, e.g. with a TLS client certificate (kgo.DialTLSConfig).", c.Principal, c.Username)
	default:
		opt("// SASL %s for %s (user %s): add kgo.SASL with a franz-go mechanism for it.", c.Mechanism, c.Principal, c.Username)
	}

	if len(c.Produce) > 0 {
		opt("")
		opt("// Producer: writes %s.", strings.Join(c.Produce, ", "))
		if len(c.Produce) == 1 {
			opt("kgo.DefaultProduceTopic(%s),", strconv.Quote(c.Produce[0]))
		} else {
			opt("// Set Record.Topic to one of: %s.", strings.Join(c.Produce, ", "))
		}
		batchMax := ""
		if v, ok := c.Setting("batch.size"); ok {
			batchMax = v
			if m, ok := c.Setting("max.request.size"); ok && atoi(m) > atoi(v) {
				batchMax = m
			}
		}
		for _, s := range c.Producer {
			opt("// %s", settingLine(s))
			expr, note := franzProducer(s, batchMax, dur)
			if note != "" {
				opt("// franz-go: %s", note)
			}
			if expr != "" {
				opt("%s,", expr)
			}
		}
	}
	if len(c.Consume) > 0 {
		opt("")
		if c.Group != "" {
			opt("// Consumer: group %s reads %s.", c.Group, strings.Join(c.Consume, ", "))
			opt("kgo.ConsumerGroup(%s),", strconv.Quote(c.Group))
		} else {
			opt("// Consumer: reads %s (no group: offsets are not committed).", strings.Join(c.Consume, ", "))
		}
		opt("kgo.ConsumeTopics(%s),", goStrings(c.Consume))
		for _, s := range c.Consumer {
			opt("// %s", settingLine(s))
			expr, note := franzConsumer(s, dur)
			if note != "" {
				opt("// franz-go: %s", note)
			}
			if expr != "" {
				opt("%s,", expr)
			}
		}
	}

	for _, l := range header(c, "franz-go (github.com/twmb/franz-go/pkg/kgo)") {
		b.WriteString("// " + l + "\n")
	}
	if c.OriginHeader != nil {
		for _, l := range franzOriginSnippet(c) {
			b.WriteString(strings.TrimRight("// "+l, " ") + "\n")
		}
	}
	b.WriteString("package main\n\nimport (\n")
	for _, p := range []string{"os", "time", ""} {
		if p == "" {
			b.WriteString("\n")
		} else if imports[p] {
			fmt.Fprintf(&b, "%q\n", p)
		}
	}
	for _, p := range []string{"github.com/twmb/franz-go/pkg/kgo", "github.com/twmb/franz-go/pkg/sasl/plain", "github.com/twmb/franz-go/pkg/sasl/scram"} {
		if imports[p] {
			fmt.Fprintf(&b, "%q\n", p)
		}
	}
	b.WriteString(")\n\n")
	fmt.Fprintf(&b, "// newKafkaClient returns the Kafka client of %s.\n", c.Principal)
	b.WriteString("func newKafkaClient() (*kgo.Client, error) {\nreturn kgo.NewClient(\n")
	for _, o := range opts {
		b.WriteString(o + "\n")
	}
	b.WriteString(")\n}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("contract: franz-go rendering is not valid Go (a bug): %w", err)
	}
	return src, nil
}

func franzProducer(s Setting, batchMax string, dur func(string) string) (expr, note string) {
	switch s.Key {
	case "acks":
		switch s.Value {
		case "all", "-1":
			return "kgo.RequiredAcks(kgo.AllISRAcks())", ""
		case "1":
			return "kgo.RequiredAcks(kgo.LeaderAck())", ""
		case "0":
			return "kgo.RequiredAcks(kgo.NoAck())", ""
		}
	case "enable.idempotence":
		if s.Value == "false" {
			return "kgo.DisableIdempotentWrite()", ""
		}
		return "", "idempotent writes are the default"
	case "max.in.flight.requests.per.connection":
		return "", "with idempotent writes it keeps up to 5 produce requests in flight per broker by itself"
	case "linger.ms":
		return "kgo.ProducerLinger(" + dur(s.Value) + ")", ""
	case "batch.size":
		if batchMax != s.Value {
			note = "raised to max.request.size: a record must fit in one batch"
		}
		return "kgo.ProducerBatchMaxBytes(" + batchMax + ")", note
	case "compression.type":
		if codec, ok := franzCodecs[s.Value]; ok {
			return "kgo.ProducerBatchCompression(kgo." + codec + "())", ""
		}
	case "delivery.timeout.ms":
		return "kgo.RecordDeliveryTimeout(" + dur(s.Value) + ")", ""
	case "request.timeout.ms":
		return "kgo.ProduceRequestTimeout(" + dur(s.Value) + ")", ""
	case "max.request.size":
		return "", "set through ProducerBatchMaxBytes above"
	}
	return "", "no equivalent option"
}

var franzCodecs = map[string]string{
	"none": "NoCompression", "gzip": "GzipCompression", "snappy": "SnappyCompression",
	"lz4": "Lz4Compression", "zstd": "ZstdCompression",
}

var franzBalancers = map[string]string{
	"org.apache.kafka.clients.consumer.CooperativeStickyAssignor": "CooperativeStickyBalancer",
	"org.apache.kafka.clients.consumer.StickyAssignor":            "StickyBalancer",
	"org.apache.kafka.clients.consumer.RangeAssignor":             "RangeBalancer",
	"org.apache.kafka.clients.consumer.RoundRobinAssignor":        "RoundRobinBalancer",
}

func franzConsumer(s Setting, dur func(string) string) (expr, note string) {
	switch s.Key {
	case "fetch.min.bytes":
		return "kgo.FetchMinBytes(" + s.Value + ")", ""
	case "fetch.max.wait.ms":
		return "kgo.FetchMaxWait(" + dur(s.Value) + ")", ""
	case "max.poll.records":
		return "", "poll with cl.PollRecords(ctx, " + s.Value + ")"
	case "isolation.level":
		if s.Value == "read_committed" {
			return "kgo.FetchIsolationLevel(kgo.ReadCommitted())", ""
		}
		return "kgo.FetchIsolationLevel(kgo.ReadUncommitted())", ""
	case "auto.offset.reset":
		switch {
		case s.Value == "earliest":
			return "kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())", ""
		case s.Value == "latest":
			return "kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd())", ""
		case strings.HasPrefix(s.Value, "by_duration:"):
			if ms, ok := parseISOSeconds(strings.TrimPrefix(s.Value, "by_duration:")); ok {
				return "kgo.ConsumeResetOffset(kgo.LookbackOffset(" + dur(ms) + "))", ""
			}
		}
	case "enable.auto.commit":
		if s.Value == "false" {
			return "kgo.DisableAutoCommit()", "commit with cl.CommitRecords or cl.CommitUncommittedOffsets after acting"
		}
		return "", "auto-commit is the default"
	case "session.timeout.ms":
		return "kgo.SessionTimeout(" + dur(s.Value) + ")", ""
	case "partition.assignment.strategy":
		if bal, ok := franzBalancers[s.Value]; ok {
			return "kgo.Balancers(kgo." + bal + "())", ""
		}
	}
	return "", "no equivalent option"
}

// goDuration renders milliseconds as a Go duration expression.
func goDuration(ms string) string {
	v := atoi(ms)
	switch {
	case v == 0:
		return "0"
	case v%1000 == 0:
		return strconv.FormatInt(v/1000, 10) + " * time.Second"
	}
	return ms + " * time.Millisecond"
}

func goStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func atoi(s string) int64 {
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}

// parseISOSeconds reads "PT<seconds>S" (as isoDuration writes it) into
// milliseconds.
func parseISOSeconds(iso string) (string, bool) {
	num, ok := strings.CutPrefix(iso, "PT")
	if num, ok = strings.CutSuffix(num, "S"); !ok {
		return "", false
	}
	sec, err := strconv.ParseFloat(num, 64)
	if err != nil || sec < 0 {
		return "", false
	}
	return strconv.FormatInt(int64(sec*1000+0.5), 10), true
}

// --- Java ---

func renderJava(c Contract) []byte {
	var b bytes.Buffer
	comment := func(s string) { b.WriteString("# " + s + "\n") }
	prop := func(k, v string) { b.WriteString(k + "=" + javaEscape(v) + "\n") }

	for _, l := range header(c, "the Java client (client.properties)") {
		comment(l)
	}
	if c.OriginHeader != nil {
		for _, l := range javaOriginSnippet(c) {
			b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
		}
	}
	if len(c.Producer) > 0 && len(c.Consumer) > 0 {
		comment("Producer and consumer settings are both here: each client ignores the other's (with a warning).")
	}
	b.WriteString("\n")
	bootstrap := strings.Join(c.Bootstrap, ",")
	if bootstrap == "" {
		bootstrap = "<bootstrap servers of the loop's cluster>"
	}
	prop("bootstrap.servers", bootstrap)
	if c.SecurityProtocol != "" {
		prop("security.protocol", c.SecurityProtocol)
	}
	if c.Mechanism != "" {
		prop("sasl.mechanism", c.Mechanism)
	}
	pass := c.Password
	if pass == "" {
		pass = placeholder(c)
	}
	module := ""
	switch c.Mechanism {
	case "SCRAM-SHA-512", "SCRAM-SHA-256":
		module = "org.apache.kafka.common.security.scram.ScramLoginModule"
	case "PLAIN":
		module = "org.apache.kafka.common.security.plain.PlainLoginModule"
	case "":
		comment(fmt.Sprintf("No SASL: %s (user %s) authenticates outside SASL, e.g. with a TLS client certificate:", c.Principal, c.Username))
		if usesTLS(c) {
			comment("ssl.keystore.location=<keystore with the certificate of " + c.Principal + ">")
			comment("ssl.keystore.password=<keystore password>")
		}
	default:
		comment(fmt.Sprintf("sasl.jaas.config=<login module for %s, username %s>", c.Mechanism, c.Username))
	}
	if module != "" {
		if c.Password == "" {
			comment(passwordNote(c))
		}
		prop("sasl.jaas.config", module+" required username="+jaasQuote(c.Username)+" password="+jaasQuote(pass)+";")
	}

	if len(c.Producer) > 0 {
		b.WriteString("\n")
		comment("--- producer: writes " + strings.Join(c.Produce, ", ") + " (set the topic on each ProducerRecord)")
		for _, s := range c.Producer {
			comment(s.Key + ": " + s.Reason)
			prop(s.Key, s.Value)
		}
	}
	if len(c.Consumer) > 0 {
		b.WriteString("\n")
		comment("--- consumer: " + consumeHow(c))
		if c.Group != "" {
			comment("group.id: the group " + c.Principal + " may read as")
			prop("group.id", c.Group)
		}
		for _, s := range c.Consumer {
			reason := s.Reason
			if strings.HasPrefix(s.Value, "by_duration:") {
				reason += " (needs a Java client 4.0 or later; older ones: latest)"
			}
			comment(s.Key + ": " + reason)
			prop(s.Key, s.Value)
		}
	}
	return b.Bytes()
}

// javaEscape escapes a properties value so that java.util.Properties.load
// reads it back unchanged (from a Reader or an ISO-8859-1 stream).
func javaEscape(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == ' ' && i == 0:
			b.WriteString(`\ `)
		case r < 0x20 || r > 0x7e:
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, `\u%04X`, u)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// jaasQuote quotes a JAAS option value.
func jaasQuote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// --- librdkafka ---

func renderLibrdkafka(c Contract) []byte {
	var b bytes.Buffer
	comment := func(s string) { b.WriteString("# " + s + "\n") }
	prop := func(k, v string) { b.WriteString(k + "=" + v + "\n") }

	for _, l := range header(c, "librdkafka (kcat -F, confluent-kafka clients)") {
		comment(l)
	}
	b.WriteString("\n")
	bootstrap := strings.Join(c.Bootstrap, ",")
	if bootstrap == "" {
		bootstrap = "<bootstrap servers of the loop's cluster>"
	}
	prop("bootstrap.servers", bootstrap)
	if c.SecurityProtocol != "" {
		prop("security.protocol", strings.ToLower(c.SecurityProtocol))
	}
	if c.Mechanism != "" {
		prop("sasl.mechanisms", c.Mechanism)
		prop("sasl.username", c.Username)
		if c.Password == "" {
			comment(passwordNote(c))
			prop("sasl.password", placeholder(c))
		} else {
			prop("sasl.password", c.Password)
		}
	} else {
		comment(fmt.Sprintf("No SASL: %s (user %s) authenticates outside SASL, e.g. with a TLS client certificate:", c.Principal, c.Username))
		if usesTLS(c) {
			comment("ssl.certificate.location=<certificate of " + c.Principal + ">")
			comment("ssl.key.location=<its private key>")
		}
	}

	write := func(list []Setting) {
		for _, s := range list {
			k, v, note := librdkafkaSetting(s)
			if k == "" {
				comment(settingLine(s))
				comment("  librdkafka: " + note)
				continue
			}
			line := s.Key + ": " + s.Reason
			if k != s.Key || v != s.Value {
				line = settingLine(s)
			}
			comment(line)
			if note != "" {
				comment("  librdkafka: " + note)
			}
			prop(k, v)
		}
	}
	if len(c.Producer) > 0 {
		b.WriteString("\n")
		comment("--- producer: writes " + strings.Join(c.Produce, ", "))
		write(c.Producer)
	}
	if len(c.Consumer) > 0 {
		b.WriteString("\n")
		comment("--- consumer: " + consumeHow(c))
		if c.Group != "" {
			comment("group.id: the group " + c.Principal + " may read as")
			prop("group.id", c.Group)
		}
		write(c.Consumer)
	}
	return b.Bytes()
}

// librdkafkaSetting maps a Java-named setting to librdkafka; k is "" when
// librdkafka has no such property.
func librdkafkaSetting(s Setting) (k, v, note string) {
	switch s.Key {
	case "acks", "enable.idempotence", "max.in.flight.requests.per.connection", "linger.ms", "batch.size",
		"delivery.timeout.ms", "request.timeout.ms", "fetch.min.bytes", "isolation.level",
		"session.timeout.ms":
		return s.Key, s.Value, ""
	case "compression.type":
		return "compression.codec", s.Value, ""
	case "max.request.size":
		return "message.max.bytes", s.Value, ""
	case "fetch.max.wait.ms":
		return "fetch.wait.max.ms", s.Value, ""
	case "max.poll.records":
		return "", "", "no such property: consume at most " + s.Value + " messages per batch call (rd_kafka_consume_batch, consume(num_messages=" + s.Value + "))"
	case "auto.offset.reset":
		if strings.HasPrefix(s.Value, "by_duration:") {
			return s.Key, "latest", "has no by_duration: latest can skip records written to a partition added while the group runs"
		}
		return s.Key, s.Value, ""
	case "enable.auto.commit":
		if s.Value == "false" {
			return s.Key, s.Value, "commit with rd_kafka_commit (commit()) after acting"
		}
		return s.Key, s.Value, ""
	case "partition.assignment.strategy":
		switch s.Value {
		case "org.apache.kafka.clients.consumer.CooperativeStickyAssignor":
			return s.Key, "cooperative-sticky", ""
		case "org.apache.kafka.clients.consumer.RangeAssignor":
			return s.Key, "range", ""
		case "org.apache.kafka.clients.consumer.RoundRobinAssignor":
			return s.Key, "roundrobin", ""
		}
	}
	return "", "", "no equivalent property"
}
