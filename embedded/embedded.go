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
//
// Stable port: with Options.DataDir set, the broker keeps its port, and so
// its bootstrap address, across restarts. Start records the port in
// DataDir/listener.json ({"port": N}, mode 0600, written atomically): on the
// first start with Options.Port 0 kfake picks a free port on 127.0.0.1 and
// Start records it; later starts listen on the recorded port. A non-zero
// Options.Port wins over the recorded one and is recorded in its place. A
// recorded or requested port that another process holds makes Start fail
// with ErrPortInUse, naming the cluster, the port and the file: stop the
// process holding the port, or delete listener.json (or edit its port) to
// let loopgate pick a new port, which changes the bootstrap address clients
// use. A port of 0 in the file counts as unrecorded. Without DataDir the
// broker takes a free port (or Options.Port) on every start, as before.
//
// The broker listens on 127.0.0.1 only; Start refuses any other address.
package embedded

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
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

// ListenerFile is the name of the file inside DataDir that records the
// broker's port, as JSON {"port": N}.
const ListenerFile = "listener.json"

// listenHost is the only address the embedded broker listens on.
const listenHost = "127.0.0.1"

// Options configure Start.
type Options struct {
	// Name identifies the cluster (its Kafka cluster id), e.g. "eu".
	Name string
	// DataDir persists the cluster; "" keeps everything in memory.
	DataDir string
	// Port is the broker's port on 127.0.0.1. 0 reuses the port recorded in
	// DataDir/listener.json, or picks a free one (and records it) when there
	// is none; a non-zero Port wins and is recorded in the data dir.
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

// ErrPortInUse means the port the embedded cluster must listen on (recorded
// in DataDir/listener.json, or given as Options.Port) is held by another
// process.
var ErrPortInUse = errors.New("port in use by another process")

type listenerRecord struct {
	Port int `json:"port"`
}

// Start starts a cluster and waits, within ctx, until its superuser can
// authenticate.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("embedded Kafka %q: port %d is out of range 0-65535", opts.Name, opts.Port)
	}
	creds, err := resolveCredentials(opts)
	if err != nil {
		return nil, err
	}
	port, recorded, err := resolvePort(opts)
	if err != nil {
		return nil, err
	}
	var listenErr error
	listen := func(network, address string) (net.Listener, error) {
		host, _, err := net.SplitHostPort(address)
		if err != nil || host != listenHost {
			listenErr = fmt.Errorf("embedded Kafka %q: refusing to listen on %q, only on %s", opts.Name, address, listenHost)
			return nil, listenErr
		}
		ln, err := net.Listen(network, address)
		if err != nil {
			listenErr = err
		}
		return ln, err
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.EnableSASL(),
		kfake.Superuser(creds.Mechanism, creds.Username, creds.Password),
		kfake.EnableACLs(),
		kfake.DefaultNumPartitions(1),
		kfake.ListenFn(listen),
	}
	if opts.Name != "" {
		kopts = append(kopts, kfake.ClusterID(opts.Name))
	}
	if port != 0 {
		kopts = append(kopts, kfake.Ports(port))
	}
	if opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(filepath.Join(opts.DataDir, "kafka")))
	}
	kf, err := kfake.NewCluster(kopts...)
	if err != nil {
		if listenErr != nil && port != 0 && isAddrInUse(listenErr) {
			return nil, portInUseError(opts, port, listenErr)
		}
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
		if err := c.recordPort(opts.DataDir, recorded); err != nil {
			kf.Close()
			return nil, err
		}
	}
	return c, nil
}

// resolvePort returns the port to listen on (0: any free one) and the port
// recorded in the data dir (0: none).
func resolvePort(opts Options) (port, recorded int, err error) {
	if opts.DataDir != "" {
		path := filepath.Join(opts.DataDir, ListenerFile)
		raw, err := os.ReadFile(path)
		switch {
		case err == nil:
			var rec listenerRecord
			if err := json.Unmarshal(raw, &rec); err != nil {
				return 0, 0, fmt.Errorf("embedded Kafka %q: %s is not valid JSON (%w); fix it, or delete it to let loopgate "+
					"pick a new port (this changes the bootstrap address clients use)", opts.Name, path, err)
			}
			if rec.Port < 0 || rec.Port > 65535 {
				return 0, 0, fmt.Errorf("embedded Kafka %q: %s records port %d, out of range 0-65535; fix it, or delete it "+
					"to let loopgate pick a new port (this changes the bootstrap address clients use)", opts.Name, path, rec.Port)
			}
			recorded = rec.Port
		case !errors.Is(err, fs.ErrNotExist):
			return 0, 0, fmt.Errorf("embedded Kafka %q: reading %s: %w", opts.Name, path, err)
		}
	}
	if opts.Port != 0 {
		return opts.Port, recorded, nil
	}
	return recorded, recorded, nil
}

// portInUseError explains a port another process holds.
func portInUseError(opts Options, port int, cause error) error {
	addr := net.JoinHostPort(listenHost, strconv.Itoa(port))
	if opts.Port != 0 {
		hint := "stop the process holding the port, or configure another port"
		if opts.DataDir != "" {
			hint += fmt.Sprintf(" (it is recorded in %s once the cluster starts)", filepath.Join(opts.DataDir, ListenerFile))
		}
		return fmt.Errorf("embedded cluster %q cannot listen on %s: %w (%w); port %d was requested explicitly: %s",
			opts.Name, addr, ErrPortInUse, cause, port, hint)
	}
	path := filepath.Join(opts.DataDir, ListenerFile)
	return fmt.Errorf("embedded cluster %q cannot listen on %s: %w (%w); port %d is recorded in %s: "+
		"stop the process holding the port, or delete %s (or edit its port) to let loopgate pick a new one, "+
		"which changes the bootstrap address clients use",
		opts.Name, addr, ErrPortInUse, cause, port, path, path)
}

// wsaeaddrinuse is Windows' "address already in use" (WSAEADDRINUSE).
const wsaeaddrinuse = syscall.Errno(10048)

func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || (runtime.GOOS == "windows" && errors.Is(err, wsaeaddrinuse))
}

// recordPort stores the broker's port in dir unless it is already recorded.
func (c *Cluster) recordPort(dir string, recorded int) error {
	addrs := c.BootstrapServers()
	if len(addrs) != 1 {
		return fmt.Errorf("embedded Kafka %q: want one broker address, have %v", c.name, addrs)
	}
	_, p, err := net.SplitHostPort(addrs[0])
	if err != nil {
		return fmt.Errorf("embedded Kafka %q: broker address %q: %w", c.name, addrs[0], err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return fmt.Errorf("embedded Kafka %q: broker address %q: %w", c.name, addrs[0], err)
	}
	if port == recorded {
		return nil
	}
	path := filepath.Join(dir, ListenerFile)
	raw, err := json.MarshalIndent(listenerRecord{Port: port}, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // a leftover would keep its own mode
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("embedded Kafka %q: writing %s: %w", c.name, path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("embedded Kafka %q: writing %s: %w", c.name, path, err)
	}
	return nil
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
