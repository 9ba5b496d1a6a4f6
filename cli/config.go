package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/loopgate/loopgate/internal/devcreds"
)

// Environment variables loopctl reads.
const (
	EnvServer = "LOOPGATE_SERVER"
	EnvToken  = "LOOPGATE_TOKEN"
	EnvCA     = "LOOPGATE_CA"
)

// DefaultServer is where loopctl looks for loopgate when nothing says
// otherwise: the embedded server's default gRPC address.
const DefaultServer = "127.0.0.1:7070"

// DevCredentials is the file `loopgate serve` writes in its embedded default
// mode; see package devcreds.
type DevCredentials = devcreds.Credentials

// DevCredentialsPath returns $HOME/.loopgate/dev-credentials.json.
func DevCredentialsPath() (string, error) { return devcreds.Path() }

// ReadDevCredentials reads the dev credentials file at path. A missing file
// is not an error: it returns nil, nil.
func ReadDevCredentials(path string) (*DevCredentials, error) { return devcreds.Read(path) }

// ConnFlags are the connection settings given on the command line; empty
// means "not given".
type ConnFlags struct {
	Server string // --server
	Token  string // --token
	As     string // --as: a demo identity from the dev credentials file
}

// Conn is where and as whom loopctl connects, with where each came from (for
// error messages that tell the user what to change).
type Conn struct {
	Server       string
	ServerSource string // "--server", "$LOOPGATE_SERVER", the credentials file path, or "default"
	Token        string
	TokenSource  string // "--token", "--as NAME", "$LOOPGATE_TOKEN", "loopctl login (HOSTS FILE)", the credentials file path, or "" (none)

	// StoredLogin is true when the token is the one `loopctl login` stored
	// for Server; TokenExpiry is when it expires as recorded at login (zero:
	// never, or not known).
	StoredLogin bool
	TokenExpiry time.Time
}

// ResolveConn decides the server address and token, first match wins:
//
//	server: --server, $LOOPGATE_SERVER, "server" of the dev credentials file, 127.0.0.1:7070
//	token:  --token, --as NAME (a token of the dev credentials file),
//	        $LOOPGATE_TOKEN, the token `loopctl login` stored for that
//	        server in the hosts file, "token" of the dev credentials file
//
// The hosts file entry is looked up by the server address as resolved; an
// expired stored token is still used (the server decides, and PrintError
// then says to log in again).
//
// getenv reads the environment; hosts is the parsed hosts file and creds the
// parsed dev credentials file (nil when there is none), hostsPath and
// credsPath their paths, for messages. ResolveConn reads no file itself.
func ResolveConn(f ConnFlags, getenv func(string) string, hosts *Hosts, hostsPath string, creds *DevCredentials, credsPath string) (Conn, error) {
	var c Conn
	switch {
	case f.Server != "":
		c.Server, c.ServerSource = f.Server, "--server"
	case getenv(EnvServer) != "":
		c.Server, c.ServerSource = getenv(EnvServer), "$"+EnvServer
	case creds != nil && creds.Server != "":
		c.Server, c.ServerSource = creds.Server, credsPath
	default:
		c.Server, c.ServerSource = DefaultServer, "default"
	}

	stored, _ := hosts.Entry(c.Server)
	switch {
	case f.Token != "":
		c.Token, c.TokenSource = f.Token, "--token"
	case f.As != "":
		if creds == nil {
			return Conn{}, fmt.Errorf("--as %s: no dev credentials file at %s (it is written by `loopgate serve` in its embedded default mode; use --token instead)", f.As, credsPath)
		}
		tok, ok := creds.Tokens[f.As]
		if !ok || tok == "" {
			return Conn{}, fmt.Errorf("--as %s: no such identity in %s (known: %s)", f.As, credsPath, knownIdentities(creds))
		}
		c.Token, c.TokenSource = tok, "--as "+f.As
	case getenv(EnvToken) != "":
		c.Token, c.TokenSource = getenv(EnvToken), "$"+EnvToken
	case stored.Token != "":
		c.Token, c.TokenSource = stored.Token, loginSource(hostsPath)
		c.StoredLogin, c.TokenExpiry = true, stored.ExpiryTime()
	case creds != nil && creds.Token != "":
		c.Token, c.TokenSource = creds.Token, credsPath
	}
	return c, nil
}

// loginSource is the TokenSource of a token `loopctl login` stored.
func loginSource(hostsPath string) string { return "loopctl login (" + hostsPath + ")" }

func knownIdentities(c *DevCredentials) string {
	if len(c.Tokens) == 0 {
		return "none"
	}
	names := make([]string, 0, len(c.Tokens))
	for n := range c.Tokens {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
