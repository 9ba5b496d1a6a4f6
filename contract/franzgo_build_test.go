package contract_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loopgate/loopgate/contract"
)

// TestFranzGoSnippetsCompile builds the franz-go renderings of a range of
// contracts against the franz-go version in go.mod and runs them, so that
// kgo.NewClient accepts every option value (it refuses, for example, a
// fetch wait under 10ms). It needs the go command and franz-go in the
// module cache (it never downloads) and is skipped in -short mode.
func TestFranzGoSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go programs")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Skip("no ../go.mod")
	}
	franz := regexp.MustCompile(`(?m)^\s*github\.com/twmb/franz-go (v\S+)`).FindSubmatch(mod)
	goLine := regexp.MustCompile(`(?m)^go \S+$`).Find(mod)
	if franz == nil || goLine == nil {
		t.Skip("go.mod names no franz-go")
	}
	cache, err := exec.Command(goBin, "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skip("go env GOMODCACHE: ", err)
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(cache)), "github.com/twmb/franz-go@"+string(franz[1]))); err != nil {
		t.Skip("franz-go ", string(franz[1]), " is not in the module cache")
	}

	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", fmt.Sprintf("module snippets\n\n%s\n\nrequire github.com/twmb/franz-go %s\n", goLine, franz[1]))
	sum, err := os.ReadFile("../go.sum")
	if err != nil {
		t.Skip("no ../go.sum")
	}
	write("go.sum", string(sum))

	actions, events := "growth.checkout-nudge.actions", "growth.checkout-nudge.events"
	type variant struct {
		name  string
		in    contract.Input
		setup func(*contract.Input)
	}
	variants := []variant{
		{name: "both-scram512", in: input([]string{actions}, []string{events}, "nudge-engine", "")},
		{name: "producer-scram256-password", in: input([]string{events}, nil, "", `pa"ss\word`),
			setup: func(in *contract.Input) { in.Mechanism = "SCRAM-SHA-256" }},
		{name: "consumer-plain", in: input(nil, []string{events}, "nudge-engine", ""),
			setup: func(in *contract.Input) { in.Mechanism, in.SecurityProtocol = "PLAIN", "SASL_PLAINTEXT" }},
		{name: "consumer-nogroup-mtls", in: input(nil, []string{events}, "", ""),
			setup: func(in *contract.Input) { in.Mechanism, in.SecurityProtocol = "", "SSL" }},
		{name: "two-topics-oauth", in: input([]string{actions, events}, []string{actions, events}, "nudge-engine", ""),
			setup: func(in *contract.Input) { in.Mechanism = "OAUTHBEARER" }},
		{name: "p99-50ms", in: input([]string{actions}, []string{events}, "nudge-engine", ""),
			setup: func(in *contract.Input) { in.Loop.Spec.SLO = loopSLO(50, 0) }},
		{name: "large-records-no-freshness", in: input([]string{actions}, []string{events}, "nudge-engine", ""),
			setup: func(in *contract.Input) {
				in.Loop.Spec.SLO = loopSLO(5000, 0)
				in.Loop.Spec.Throughput.RecordBytes = 3 << 20
			}},
	}
	for _, v := range variants {
		if v.setup != nil {
			v.setup(&v.in)
		}
		out := render(t, contract.Build(v.in), "franz-go")
		write(v.name+"/client.go", out+`
func main() {
	cl, err := newKafkaClient()
	if err != nil {
		println(err.Error())
		os.Exit(1)
	}
	cl.Close()
}
`)
		if !strings.Contains(out, `"os"`) { // the main above needs os
			src, _ := os.ReadFile(filepath.Join(dir, v.name, "client.go"))
			write(v.name+"/client.go", strings.Replace(string(src), "import (", "import (\n\t\"os\"", 1))
		}
	}

	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	bin := filepath.Join(dir, "bin") + string(filepath.Separator)
	build := exec.Command(goBin, "build", "-o", bin, "./...")
	build.Dir, build.Env = dir, env
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	vet := exec.Command(goBin, "vet", "./...")
	vet.Dir, vet.Env = dir, env
	if out, err := vet.CombinedOutput(); err != nil {
		t.Fatalf("go vet: %v\n%s", err, out)
	}
	for _, v := range variants {
		run := exec.Command(filepath.Join(bin, v.name))
		if out, err := run.CombinedOutput(); err != nil {
			t.Errorf("%s: kgo.NewClient refuses the options: %v\n%s", v.name, err, out)
		}
	}
}
