// Package embedded runs an in-process Kafka cluster (franz-go's kfake) for
// loopgate's embedded mode: `loopgate serve` with no configuration starts
// one per region, so a newcomer needs nothing but the binary.
//
// Start is the whole API: it returns a Cluster with SASL/SCRAM-SHA-512
// authentication and ACL enforcement on, listening on 127.0.0.1. Conn gives
// the provisioning.ClusterConn (bootstrap servers and superuser
// credentials) that loopgate connects with.
//
// Persistence: with Options.DataDir set, the cluster keeps its topics,
// configs, ACLs, quotas, SCRAM users and offsets under DataDir/kafka, and a
// restart with the same DataDir finds them again. kfake reloads its
// persisted SCRAM credentials and ignores the ones given on a restart, so
// the superuser password must stay the same for the life of the data dir:
// Start stores the credentials in DataDir/credentials.json (mode 0600) on
// the first start (generating a random password when Options.Password is
// empty) and reuses them afterwards. A Password that contradicts the stored
// one is an error rather than a cluster nobody can log in to.
package embedded

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/loopgate/loopgate/provisioning"
)

// Mechanism is the SASL mechanism of the embedded cluster's superuser.
const Mechanism = provisioning.MechanismScramSHA512

// DefaultSuperUser is the superuser name when Options.SuperUser is empty.
const DefaultSuperUser = "loopgate"

// CredentialsFile is the name of the credentials file inside DataDir.
const CredentialsFile = "credentials.json"

// Options configure Start.
type Options struct {
	// Name identifies the cluster (its Kafka cluster id), e.g. "eu".
	Name string
	// DataDir persists the cluster; "" keeps everything in memory.
	DataDir string
	// Port is the broker's port on 127.0.0.1; 0 picks a free one.
	Port int
	// SuperUser and Password are the SCRAM-SHA-512 superuser loopgate
	// connects as. SuperUser defaults to DefaultSuperUser; an empty Password
	// is generated on the first start and then read from DataDir.
	SuperUser, Password string
}

// Cluster is a running in-process Kafka cluster with one broker
// (replication factor 1).
type Cluster struct {
	name  string
	kf    *kfake.Cluster
	creds credentials
}

type credentials struct {
	Mechanism string `json:"mechanism"`
	Username  string `json:"username"`
	Password  string `json:"password"`
}

// ErrCredentials means the stored credentials of a data dir and the ones
// asked for disagree, or the cluster refused them.
var ErrCredentials = errors.New("embedded cluster credentials")

// Start starts a cluster and waits, within ctx, until its superuser can
// authenticate.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	creds, err := resolveCredentials(opts)
	if err != nil {
		return nil, err
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.EnableSASL(),
		kfake.Superuser(creds.Mechanism, creds.Username, creds.Password),
		kfake.EnableACLs(),
		kfake.DefaultNumPartitions(1),
	}
	if opts.Name != "" {
		kopts = append(kopts, kfake.ClusterID(opts.Name))
	}
	if opts.Port != 0 {
		kopts = append(kopts, kfake.Ports(opts.Port))
	}
	if opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(filepath.Join(opts.DataDir, "kafka")))
	}
	kf, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("starting embedded Kafka %q: %w", opts.Name, err)
	}
	c := &Cluster{name: opts.Name, kf: kf, creds: creds}
	if err := c.ping(ctx); err != nil {
		kf.Close()
		return nil, err
	}
	if opts.DataDir != "" {
		if err := writeCredentials(opts.DataDir, creds); err != nil {
			kf.Close()
			return nil, err
		}
	}
	return c, nil
}

// resolveCredentials returns the stored credentials of the data dir, or new
// ones from opts (generating a password when none is given).
func resolveCredentials(opts Options) (credentials, error) {
	want := credentials{Mechanism: Mechanism, Username: opts.SuperUser, Password: opts.Password}
	if want.Username == "" {
		want.Username = DefaultSuperUser
	}
	if opts.DataDir != "" {
		path := filepath.Join(opts.DataDir, CredentialsFile)
		raw, err := os.ReadFile(path)
		switch {
		case err == nil:
			var stored credentials
			if err := json.Unmarshal(raw, &stored); err != nil {
				return credentials{}, fmt.Errorf("%w: %s is not valid JSON (%w); restore it or start with a new data dir",
					ErrCredentials, path, err)
			}
			if (opts.SuperUser != "" && stored.Username != opts.SuperUser) || (want.Password != "" && want.Password != stored.Password) {
				return credentials{}, fmt.Errorf("%w: data dir %s was created for superuser %q with another password "+
					"(see %s); start with the same superuser and password, or leave the password empty to reuse the stored one",
					ErrCredentials, opts.DataDir, stored.Username, path)
			}
			return stored, nil
		case !errors.Is(err, fs.ErrNotExist):
			return credentials{}, fmt.Errorf("%w: reading %s: %w", ErrCredentials, path, err)
		}
	}
	if want.Password == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return credentials{}, fmt.Errorf("%w: generating a password: %w", ErrCredentials, err)
		}
		want.Password = hex.EncodeToString(b)
	}
	return want, nil
}

func writeCredentials(dir string, c credentials) error {
	path := filepath.Join(dir, CredentialsFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("%w: writing %s: %w", ErrCredentials, path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%w: writing %s: %w", ErrCredentials, path, err)
	}
	return nil
}

// ping authenticates as the superuser and sends one request.
func (c *Cluster) ping(ctx context.Context) error {
	cl, err := provisioning.Connect(c.Conn())
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := kmsg.NewMetadataRequest()
	if _, err := req.RequestWith(ctx, cl); err != nil {
		return fmt.Errorf("%w: the embedded cluster %q refused superuser %q (%w); if its data dir was copied without %s, restore that file",
			ErrCredentials, c.name, c.creds.Username, err, CredentialsFile)
	}
	return nil
}

// Name returns the cluster's name (Options.Name).
func (c *Cluster) Name() string { return c.name }

// BootstrapServers returns the broker addresses, "127.0.0.1:port".
func (c *Cluster) BootstrapServers() []string { return c.kf.ListenAddrs() }

// Conn returns how to connect to the cluster as its superuser.
func (c *Cluster) Conn() provisioning.ClusterConn {
	return provisioning.ClusterConn{
		BootstrapServers: c.BootstrapServers(),
		SASL: &provisioning.SASL{
			Mechanism: c.creds.Mechanism, Username: c.creds.Username, Password: c.creds.Password,
		},
	}
}

// Close stops the cluster, flushing persisted state.
func (c *Cluster) Close() { c.kf.Close() }
