package testkafka

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SCRAMIterations is the iteration count CreateUser uses: Kafka's minimum, which kfake also
// requires (it always advertises 4096), so the same credentials work against both.
const SCRAMIterations = 4096

// ClientOpts returns franz-go options that connect to the SASL listener as user with
// SCRAM-SHA-512.
func (b *Broker) ClientOpts(user, password string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(b.SASLBootstrap...),
		kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism()),
	}
}

// Client returns a franz-go client logged in as user over the SASL listener; extra opts are
// appended. The caller closes it.
func (b *Broker) Client(user, password string, opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(b.ClientOpts(user, password), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("testkafka: new client for %s: %w", user, err)
	}
	return cl, nil
}

// Admin returns a kadm client logged in as the super user, closed when the test ends.
func (b *Broker) Admin(t testing.TB, opts ...kgo.Opt) *kadm.Client {
	t.Helper()
	cl, err := b.Client(b.AdminUser, b.AdminPassword, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// CreateUser creates (or resets) SCRAM-SHA-512 credentials for name, so tests can log in as a
// principal (User:name) that is not a super user. It returns once the broker serves the new
// credentials: the controller commits them before answering, the broker applies them a moment
// later.
func (b *Broker) CreateUser(ctx context.Context, name, password string) error {
	cl, err := b.Client(b.AdminUser, b.AdminPassword)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
		User:       name,
		Mechanism:  kadm.ScramSha512,
		Iterations: SCRAMIterations,
		Password:   password,
	}})
	if err != nil {
		return fmt.Errorf("testkafka: creating SCRAM user %q: %w", name, err)
	}
	if err := res.Error(); err != nil {
		return fmt.Errorf("testkafka: creating SCRAM user %q: %w", name, err)
	}

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		described, err := adm.DescribeUserSCRAMs(ctx, name)
		if err == nil {
			if u, ok := described[name]; ok && u.Err == nil && slices.ContainsFunc(u.CredInfos,
				func(c kadm.CredInfo) bool { return c.Mechanism == kadm.ScramSha512 }) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testkafka: SCRAM user %q not visible on the broker (last error: %v): %w", name, err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
