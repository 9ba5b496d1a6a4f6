package provtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/loopgate/loopgate/provisioning"
)

// credentialWait bounds every wait of the credential subtests: kfake
// applies SCRAM, ACL and quota changes before it answers, Apache Kafka a
// moment later.
const credentialWait = 10 * time.Second

// scramMechanisms are the mechanisms the suite sets, in the order
// SCRAMMechanisms reports them.
var scramMechanisms = []string{provisioning.MechanismScramSHA256, provisioning.MechanismScramSHA512}

// within retries check every 100 ms until it returns nil or credentialWait
// passes, then fails the test with the last error. Each attempt gets its
// own 5 s deadline.
func within(t testing.TB, c Cluster, what string, check func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(credentialWait)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: still failing after %v: %v", c.Name, what, credentialWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// login logs in as user with mechanism and password on a fresh client,
// built by hand like the checker, and sends a Metadata request for every
// topic: it needs no ACL, only a successful login.
func (h *harness) login(ctx context.Context, t testing.TB, user, mechanism, password string) error {
	conn := provisioning.ClusterConn{
		BootstrapServers: h.c.Conn.BootstrapServers,
		SASL:             &provisioning.SASL{Mechanism: mechanism, Username: user, Password: password},
	}
	cl, err := kgo.NewClient(append(clientOpts(t, conn),
		kgo.ClientID("provtest-login"),
		kgo.RequestRetries(1),
		kgo.RetryTimeout(2*time.Second),
		kgo.DialTimeout(2*time.Second),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewMetadataRequest()
	_, err = req.RequestWith(ctx, cl)
	return err
}

// loginRefused reports whether err is the broker refusing a login: Apache
// Kafka answers SASL_AUTHENTICATION_FAILED, kfake closes the connection
// (EOF).
func loginRefused(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// waitLogin waits until user logs in with mechanism and password.
func (h *harness) waitLogin(t testing.TB, user, mechanism, password string) {
	t.Helper()
	within(t, h.c, fmt.Sprintf("%s logs in with %s", user, mechanism), func(ctx context.Context) error {
		return h.login(ctx, t, user, mechanism, password)
	})
}

// waitRefused waits until the broker refuses user's login with mechanism
// and password (a timeout or another error does not count).
func (h *harness) waitRefused(t testing.TB, user, mechanism, password, why string) {
	t.Helper()
	what := fmt.Sprintf("%s with %s and %s is refused", user, mechanism, why)
	var refusal error
	within(t, h.c, what, func(ctx context.Context) error {
		refusal = h.login(ctx, t, user, mechanism, password)
		switch {
		case refusal == nil:
			return errors.New("the login succeeded")
		case !loginRefused(refusal):
			return fmt.Errorf("the login failed, but not as a refused login: %w", refusal)
		}
		return nil
	})
	t.Logf("%s: %v", what, refusal)
}

// waitMechanisms waits until SCRAMMechanisms (loopgate) and
// DescribeUserSCRAMs (the checker) both report exactly want for user, the
// checker with SCRAMIterations iterations each.
func (h *harness) waitMechanisms(t testing.TB, user string, want []string) {
	t.Helper()
	within(t, h.c, fmt.Sprintf("%s has SCRAM credentials %v", user, want), func(ctx context.Context) error {
		got, err := h.admin.SCRAMMechanisms(ctx, user)
		if err != nil {
			return fmt.Errorf("SCRAMMechanisms: %w", err)
		}
		if got == nil || !slices.Equal(got, want) {
			return fmt.Errorf("SCRAMMechanisms = %#v, want %#v", got, want)
		}
		described, err := h.check.DescribeUserSCRAMs(ctx, user)
		if err != nil {
			return fmt.Errorf("checker DescribeUserSCRAMs: %w", err)
		}
		d := described[user]
		if d.Err != nil && !(errors.Is(d.Err, kerr.ResourceNotFound) && len(want) == 0) {
			return fmt.Errorf("checker DescribeUserSCRAMs: %w", d.Err)
		}
		var seen []string
		for _, ci := range d.CredInfos {
			if ci.Iterations != provisioning.SCRAMIterations {
				return fmt.Errorf("checker sees %v, want %d iterations", ci, provisioning.SCRAMIterations)
			}
			seen = append(seen, ci.Mechanism.String())
		}
		slices.Sort(seen)
		if !slices.Equal(seen, want) {
			return fmt.Errorf("checker sees mechanisms %v, want %v", seen, want)
		}
		return nil
	})
}

// testSCRAMCredentials: SetSCRAM makes a user that logs in with each
// mechanism and only with its password; setting again rotates the
// password; DeleteSCRAM removes every mechanism and is idempotent.
func testSCRAMCredentials(t *testing.T, h *harness) {
	ctx := testCtx(t)
	user := "s-" + randomID(t)
	t.Cleanup(func() { _ = h.admin.DeleteSCRAM(context.Background(), user) })

	first := map[string]string{}
	for _, m := range scramMechanisms {
		first[m] = "pw1-" + randomID(t)
		if err := h.admin.SetSCRAM(ctx, user, m, first[m]); err != nil {
			t.Fatalf("SetSCRAM %s %s: %v", user, m, err)
		}
	}
	for _, m := range scramMechanisms {
		h.waitLogin(t, user, m, first[m])
	}
	h.waitMechanisms(t, user, scramMechanisms)
	// Each mechanism has its own credential: the other one's password and
	// a wrong one are refused.
	h.waitRefused(t, user, provisioning.MechanismScramSHA256, first[provisioning.MechanismScramSHA512], "the SHA-512 password")
	h.waitRefused(t, user, provisioning.MechanismScramSHA512, "wrong-"+randomID(t), "a wrong password")

	// Rotation: the new password logs in, the old one no longer does.
	second := map[string]string{}
	for _, m := range scramMechanisms {
		second[m] = "pw2-" + randomID(t)
		if err := h.admin.SetSCRAM(ctx, user, m, second[m]); err != nil {
			t.Fatalf("SetSCRAM %s %s again: %v", user, m, err)
		}
	}
	for _, m := range scramMechanisms {
		h.waitLogin(t, user, m, second[m])
		h.waitRefused(t, user, m, first[m], "the old password")
	}
	h.waitMechanisms(t, user, scramMechanisms)

	// Deletion removes both mechanisms; deleting again, or a user that
	// never had a credential, is no error.
	if err := h.admin.DeleteSCRAM(ctx, user); err != nil {
		t.Fatalf("DeleteSCRAM %s: %v", user, err)
	}
	for _, m := range scramMechanisms {
		h.waitRefused(t, user, m, second[m], "a deleted credential")
	}
	h.waitMechanisms(t, user, []string{})
	if err := h.admin.DeleteSCRAM(ctx, user); err != nil {
		t.Errorf("DeleteSCRAM %s again: %v, want no error", user, err)
	}
	if err := h.admin.DeleteSCRAM(ctx, "never-"+randomID(t)); err != nil {
		t.Errorf("DeleteSCRAM of a user without credentials: %v, want no error", err)
	}

	t.Run("OneMechanism", func(t *testing.T) {
		// A user with only SHA-256: reported alone, and DeleteSCRAM
		// ignores the missing SHA-512 credential.
		user := "s1-" + randomID(t)
		pw := "pw-" + randomID(t)
		if err := h.admin.SetSCRAM(ctx, user, provisioning.MechanismScramSHA256, pw); err != nil {
			t.Fatalf("SetSCRAM: %v", err)
		}
		h.waitLogin(t, user, provisioning.MechanismScramSHA256, pw)
		h.waitMechanisms(t, user, []string{provisioning.MechanismScramSHA256})
		if err := h.admin.DeleteSCRAM(ctx, user); err != nil {
			t.Fatalf("DeleteSCRAM of a user with only SCRAM-SHA-256: %v", err)
		}
		h.waitRefused(t, user, provisioning.MechanismScramSHA256, pw, "a deleted credential")
		h.waitMechanisms(t, user, []string{})
	})

	t.Run("InvalidInputNamesNoPassword", func(t *testing.T) {
		pw := "secret-" + randomID(t)
		for _, tc := range []struct{ user, mechanism, password string }{
			{"u-" + randomID(t), "SCRAM-SHA-1", pw},
			{"u-" + randomID(t), provisioning.MechanismPlain, pw},
			{"", provisioning.MechanismScramSHA512, pw},
			{"User:u-" + randomID(t), provisioning.MechanismScramSHA512, pw},
			{"u-" + randomID(t), provisioning.MechanismScramSHA512, ""},
		} {
			err := h.admin.SetSCRAM(ctx, tc.user, tc.mechanism, tc.password)
			if !errors.Is(err, provisioning.ErrInvalidCredential) {
				t.Errorf("SetSCRAM(%q, %q): err %v, want ErrInvalidCredential", tc.user, tc.mechanism, err)
			}
			if err != nil && strings.Contains(err.Error(), pw) {
				t.Errorf("SetSCRAM(%q, %q): the error %q contains the password", tc.user, tc.mechanism, err)
			}
			if provisioning.IsRetriable(err) {
				t.Errorf("SetSCRAM(%q, %q): ErrInvalidCredential must not be retriable", tc.user, tc.mechanism)
			}
		}
		for _, user := range []string{"", "User:x"} {
			if err := h.admin.DeleteSCRAM(ctx, user); !errors.Is(err, provisioning.ErrInvalidCredential) {
				t.Errorf("DeleteSCRAM(%q): err %v, want ErrInvalidCredential", user, err)
			}
			if _, err := h.admin.SCRAMMechanisms(ctx, user); !errors.Is(err, provisioning.ErrInvalidCredential) {
				t.Errorf("SCRAMMechanisms(%q): err %v, want ErrInvalidCredential", user, err)
			}
		}
	})
}

// principalACLs lists, with the checker, every ACL of principal (any
// resource, pattern, host, operation and permission) as sorted
// "PERMISSION OPERATION TYPE:PATTERN:name host" strings.
func (h *harness) principalACLs(ctx context.Context, principal string) ([]string, error) {
	b := kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations(kadm.OpAny).
		Allow(principal).AllowHosts().Deny(principal).DenyHosts()
	res, err := h.check.DescribeACLs(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("DescribeACLs %s: %w", principal, err)
	}
	var out []string
	for _, r := range res {
		if r.Err != nil {
			return nil, fmt.Errorf("DescribeACLs %s: %w", principal, r.Err)
		}
		for _, d := range r.Described {
			if d.Principal != principal {
				return nil, fmt.Errorf("DescribeACLs %s returned an ACL of %s", principal, d.Principal)
			}
			out = append(out, fmt.Sprintf("%s %s %s:%s:%s %s", d.Permission, d.Operation, d.Type, d.Pattern, d.Name, d.Host))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// userQuotas lists, with the checker, every client quota entity that names
// user (alone or with a client id) as sorted "entity key=value" strings.
func (h *harness) userQuotas(ctx context.Context, user string) ([]string, error) {
	q, err := h.check.DescribeClientQuotas(ctx, false,
		[]kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: &user, MatchType: kmsg.QuotasMatchTypeExact}})
	if err != nil {
		return nil, fmt.Errorf("DescribeClientQuotas user=%s: %w", user, err)
	}
	var out []string
	for _, e := range q {
		var ent []string
		for _, c := range e.Entity {
			ent = append(ent, c.String())
		}
		slices.Sort(ent)
		for _, v := range e.Values {
			out = append(out, fmt.Sprintf("%s %s=%d", strings.Join(ent, ","), v.Key, int64(v.Value)))
		}
	}
	slices.Sort(out)
	return out, nil
}

// testRemovePrincipal: RemovePrincipal deletes every ACL of one principal
// (literal and prefixed, allow and deny, topic and group, any host) and
// every quota of its user (loopgate's keys and others, alone and with a
// client id), reports one result per admin operation, and leaves another
// principal's ACLs and quota alone. Repeating it is harmless.
func testRemovePrincipal(t *testing.T, h *harness) {
	ctx := testCtx(t)
	id := randomID(t)
	goneUser, keptUser := "rm-"+id, "keep-"+id
	gone, kept := "User:"+goneUser, "User:"+keptUser
	topic, group, clientID := "rm-topic-"+id, "rm-group-"+id, "rm-client-"+id

	for _, b := range []*kadm.ACLBuilder{
		kadm.NewACLs().Allow(gone, kept).AllowHosts("*").Topics(topic).ResourcePatternType(kadm.ACLPatternLiteral).
			Operations(kadm.OpRead, kadm.OpDescribe),
		kadm.NewACLs().Allow(gone, kept).AllowHosts("*").Groups(group).ResourcePatternType(kadm.ACLPatternLiteral).
			Operations(kadm.OpRead),
		kadm.NewACLs().Allow(gone).AllowHosts("*").Topics("rm-" + id + "-").ResourcePatternType(kadm.ACLPatternPrefixed).
			Operations(kadm.OpWrite),
		kadm.NewACLs().Deny(gone).DenyHosts("127.0.0.1").Topics(topic).ResourcePatternType(kadm.ACLPatternLiteral).
			Operations(kadm.OpWrite),
	} {
		res, err := h.check.CreateACLs(ctx, b)
		if err == nil {
			for _, r := range res {
				err = errors.Join(err, r.Err)
			}
		}
		if err != nil {
			t.Fatalf("creating the test ACLs: %v", err)
		}
	}
	name := func(s string) *string { return &s }
	altered, err := h.check.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: kadm.ClientQuotaEntity{{Type: "user", Name: name(goneUser)}}, Ops: []kadm.AlterClientQuotaOp{
			{Key: provisioning.QuotaProducerByteRate, Value: 1 << 20},
			{Key: "request_percentage", Value: 50},
		}},
		{Entity: kadm.ClientQuotaEntity{{Type: "user", Name: name(goneUser)}, {Type: "client-id", Name: name(clientID)}},
			Ops: []kadm.AlterClientQuotaOp{{Key: provisioning.QuotaConsumerByteRate, Value: 1 << 10}}},
		{Entity: kadm.ClientQuotaEntity{{Type: "user", Name: name(keptUser)}}, Ops: []kadm.AlterClientQuotaOp{
			{Key: provisioning.QuotaConsumerByteRate, Value: 2 << 20},
		}},
	})
	if err == nil {
		for _, a := range altered {
			err = errors.Join(err, a.Err)
		}
	}
	if err != nil {
		t.Fatalf("creating the test quotas: %v", err)
	}

	goneACLs := []string{
		"ALLOW DESCRIBE TOPIC:LITERAL:" + topic + " *",
		"ALLOW READ GROUP:LITERAL:" + group + " *",
		"ALLOW READ TOPIC:LITERAL:" + topic + " *",
		"ALLOW WRITE TOPIC:PREFIXED:rm-" + id + "- *",
		"DENY WRITE TOPIC:LITERAL:" + topic + " 127.0.0.1",
	}
	keptACLs := []string{
		"ALLOW DESCRIBE TOPIC:LITERAL:" + topic + " *",
		"ALLOW READ GROUP:LITERAL:" + group + " *",
		"ALLOW READ TOPIC:LITERAL:" + topic + " *",
	}
	keptQuota := []string{"user=" + keptUser + " consumer_byte_rate=2097152"}
	h.waitPrincipal(t, gone, goneACLs, []string{
		"client-id=" + clientID + ",user=" + goneUser + " consumer_byte_rate=1024",
		"user=" + goneUser + " producer_byte_rate=1048576",
		"user=" + goneUser + " request_percentage=50",
	})
	h.waitPrincipal(t, kept, keptACLs, keptQuota)

	res, err := h.admin.RemovePrincipal(ctx, gone)
	t.Logf("RemovePrincipal %s:\n%s", gone, provisioning.FormatResults(res))
	if err != nil {
		t.Fatalf("RemovePrincipal %s: %v", gone, err)
	}
	wantKinds := []provisioning.ActionKind{provisioning.DeleteACL, provisioning.DeleteQuota}
	var gotKinds []provisioning.ActionKind
	for _, r := range res {
		gotKinds = append(gotKinds, r.Kind)
		if r.Op == "" || r.Err != "" || !strings.Contains(r.Resource, gone) {
			t.Errorf("result %+v: want the operation, no error and the principal %s", r, gone)
		}
	}
	if !slices.Equal(gotKinds, wantKinds) {
		t.Fatalf("result kinds %v, want one per admin operation %v", gotKinds, wantKinds)
	}
	for _, want := range []string{"principal=" + gone, topic, group, "rm-" + id + "-", "PREFIXED", "DENY"} {
		if !strings.Contains(res[0].Op, want) {
			t.Errorf("DeleteACLs op %q does not mention %q (the audit trail should name what was deleted)", res[0].Op, want)
		}
	}
	if strings.Contains(res[0].Op, kept) {
		t.Errorf("DeleteACLs op %q mentions the other principal %s", res[0].Op, kept)
	}
	for _, want := range []string{"user=" + goneUser, provisioning.QuotaProducerByteRate, "request_percentage", "client-id=" + clientID} {
		if !strings.Contains(res[1].Op, want) {
			t.Errorf("AlterClientQuotas op %q does not mention %q", res[1].Op, want)
		}
	}

	h.waitPrincipal(t, gone, nil, nil)
	h.waitPrincipal(t, kept, keptACLs, keptQuota)

	// Again: nothing left to delete, no error.
	res, err = h.admin.RemovePrincipal(ctx, gone)
	if err != nil || len(res) != 2 {
		t.Fatalf("RemovePrincipal %s again: err %v, want no error and 2 results:\n%s", gone, err, provisioning.FormatResults(res))
	}
	h.waitPrincipal(t, kept, keptACLs, keptQuota)

	// A principal that is not a user has ACLs but no quota entity.
	group2 := "Group:g-" + id
	if _, err := h.check.CreateACLs(ctx, kadm.NewACLs().Allow(group2).AllowHosts("*").Topics(topic).
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead)); err != nil {
		t.Fatalf("creating the ACL of %s: %v", group2, err)
	}
	h.waitPrincipal(t, group2, []string{"ALLOW READ TOPIC:LITERAL:" + topic + " *"}, nil)
	res, err = h.admin.RemovePrincipal(ctx, group2)
	if err != nil || len(res) != 1 || res[0].Kind != provisioning.DeleteACL {
		t.Fatalf("RemovePrincipal %s: err %v, want one DeleteACL result:\n%s", group2, err, provisioning.FormatResults(res))
	}
	h.waitPrincipal(t, group2, nil, nil)

	if _, err := h.admin.RemovePrincipal(ctx, "nobody"); !errors.Is(err, provisioning.ErrInvalidPrincipal) {
		t.Errorf("RemovePrincipal(%q): err %v, want ErrInvalidPrincipal", "nobody", err)
	}
}

// waitPrincipal waits until the checker sees exactly acls for principal
// and, for a User: principal, exactly quotas for its user.
func (h *harness) waitPrincipal(t testing.TB, principal string, acls, quotas []string) {
	t.Helper()
	within(t, h.c, "ACLs and quotas of "+principal, func(ctx context.Context) error {
		got, err := h.principalACLs(ctx, principal)
		if err != nil {
			return err
		}
		if !slices.Equal(got, acls) {
			return fmt.Errorf("ACLs\n got %q\nwant %q", got, acls)
		}
		user, ok := strings.CutPrefix(principal, "User:")
		if !ok {
			return nil
		}
		q, err := h.userQuotas(ctx, user)
		if err != nil {
			return err
		}
		if !slices.Equal(q, quotas) {
			return fmt.Errorf("quotas\n got %q\nwant %q", q, quotas)
		}
		return nil
	})
}

// testReadOnlyRefusesCredentialWrites: a read-only admin refuses SetSCRAM,
// DeleteSCRAM and RemovePrincipal with ErrReadOnly (not retriable, no
// password in the error) and changes nothing; SCRAMMechanisms, a read,
// works.
func testReadOnlyRefusesCredentialWrites(t *testing.T, h *harness) {
	ctx := testCtx(t)
	id := randomID(t)
	user, pw := "ro-"+id, "pw-"+randomID(t)
	principal := "User:" + user
	t.Cleanup(func() { _ = h.admin.DeleteSCRAM(context.Background(), user) })

	if err := h.admin.SetSCRAM(ctx, user, provisioning.MechanismScramSHA512, pw); err != nil {
		t.Fatalf("SetSCRAM: %v", err)
	}
	if _, err := h.check.CreateACLs(ctx, kadm.NewACLs().Allow(principal).AllowHosts("*").Topics("ro-"+id).
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead)); err != nil {
		t.Fatalf("creating the ACL: %v", err)
	}
	t.Cleanup(func() { _, _ = h.admin.RemovePrincipal(context.Background(), principal) })
	h.waitLogin(t, user, provisioning.MechanismScramSHA512, pw)
	wantACLs := []string{"ALLOW READ TOPIC:LITERAL:ro-" + id + " *"}
	h.waitPrincipal(t, principal, wantACLs, nil)

	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, provisioning.ErrReadOnly) {
			t.Errorf("read-only %s: err %v, want ErrReadOnly", what, err)
		}
		if provisioning.IsRetriable(err) {
			t.Errorf("read-only %s: ErrReadOnly must not be retriable", what)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("read-only %s: the error %q contains a password", what, err)
		}
	}
	newPW := "pw-" + randomID(t)
	refused("SetSCRAM", h.readOnly.SetSCRAM(ctx, user, provisioning.MechanismScramSHA512, newPW))
	refused("SetSCRAM of a new user", h.readOnly.SetSCRAM(ctx, "ro2-"+id, provisioning.MechanismScramSHA256, newPW))
	refused("DeleteSCRAM", h.readOnly.DeleteSCRAM(ctx, user))
	res, err := h.readOnly.RemovePrincipal(ctx, principal)
	refused("RemovePrincipal", err)
	var ee *provisioning.ExecuteError
	if !errors.As(err, &ee) || len(ee.Failed) != 2 || len(res) != 2 {
		t.Errorf("read-only RemovePrincipal: want an *ExecuteError failing both operations:\n%s", provisioning.FormatResults(res))
	}
	for _, r := range res {
		if r.Op == "" || !strings.Contains(r.Err, provisioning.ErrReadOnly.Error()) {
			t.Errorf("result %+v: want the operation it would run and the read-only error", r)
		}
	}

	got, err := h.readOnly.SCRAMMechanisms(ctx, user)
	if err != nil || !slices.Equal(got, []string{provisioning.MechanismScramSHA512}) {
		t.Errorf("read-only SCRAMMechanisms: %v, %v; want [SCRAM-SHA-512]", got, err)
	}
	// Unchanged: the old password still logs in, the new one does not,
	// the ACL is still there, the refused new user does not exist.
	if err := h.login(ctx, t, user, provisioning.MechanismScramSHA512, pw); err != nil {
		t.Errorf("after refused writes, the original password no longer logs in: %v", err)
	}
	if err := h.login(ctx, t, user, provisioning.MechanismScramSHA512, newPW); !loginRefused(err) {
		t.Errorf("after a refused SetSCRAM, the refused password: err %v, want a refused login", err)
	}
	h.waitPrincipal(t, principal, wantACLs, nil)
	if got, err := h.admin.SCRAMMechanisms(ctx, "ro2-"+id); err != nil || len(got) != 0 {
		t.Errorf("SCRAMMechanisms of the user a read-only SetSCRAM refused: %v, %v; want none", got, err)
	}
}

// testCredentialsAuthorizationFailure: an admin logged in as a user
// without ACLs gets a *kadm.AuthError wrapping CLUSTER_AUTHORIZATION_FAILED
// from every Credentials call (inside an *ExecuteError for
// RemovePrincipal), not retriable and without the password, and changes
// nothing.
func testCredentialsAuthorizationFailure(t *testing.T, h *harness) {
	ctx := testCtx(t)
	id := randomID(t)
	weakConn := h.newUser(t, "wc-"+id)
	cl, err := provisioning.Connect(weakConn)
	if err != nil {
		t.Fatalf("Connect as the weak user: %v", err)
	}
	t.Cleanup(cl.Close)
	weak := provisioning.NewKafkaAdmin(cl)

	target, pw := "wt-"+id, "pw-"+randomID(t)
	principal := "User:" + target
	t.Cleanup(func() {
		_ = h.admin.DeleteSCRAM(context.Background(), target)
		_, _ = h.admin.RemovePrincipal(context.Background(), principal)
	})
	if err := h.admin.SetSCRAM(ctx, target, provisioning.MechanismScramSHA512, pw); err != nil {
		t.Fatalf("SetSCRAM: %v", err)
	}
	if _, err := h.check.CreateACLs(ctx, kadm.NewACLs().Allow(principal).AllowHosts("*").Topics("wt-"+id).
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpRead)); err != nil {
		t.Fatalf("creating the ACL: %v", err)
	}
	wantACLs := []string{"ALLOW READ TOPIC:LITERAL:wt-" + id + " *"}
	h.waitLogin(t, target, provisioning.MechanismScramSHA512, pw)
	h.waitPrincipal(t, principal, wantACLs, nil)

	isAuthFailure := func(what string, err error) {
		t.Helper()
		t.Logf("%s as a user without ACLs: %v", what, err)
		var ae *kadm.AuthError
		if !errors.As(err, &ae) || !errors.Is(err, kerr.ClusterAuthorizationFailed) {
			t.Errorf("%s: err %v, want a *kadm.AuthError wrapping kerr.ClusterAuthorizationFailed", what, err)
		}
		if provisioning.IsRetriable(err) {
			t.Errorf("%s: an authorization failure must not be retriable", what)
		}
		if err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("%s: the error %q contains the password", what, err)
		}
	}
	newPW := "pw-" + randomID(t)
	isAuthFailure("SetSCRAM", weak.SetSCRAM(ctx, target, provisioning.MechanismScramSHA512, newPW))
	isAuthFailure("DeleteSCRAM", weak.DeleteSCRAM(ctx, target))
	_, err = weak.SCRAMMechanisms(ctx, target)
	isAuthFailure("SCRAMMechanisms", err)
	res, err := weak.RemovePrincipal(ctx, principal)
	isAuthFailure("RemovePrincipal", err)
	var ee *provisioning.ExecuteError
	if !errors.As(err, &ee) || len(ee.Failed) != 2 || len(res) != 2 {
		t.Errorf("RemovePrincipal: want an *ExecuteError failing both operations:\n%s", provisioning.FormatResults(res))
	}

	if err := h.login(ctx, t, target, provisioning.MechanismScramSHA512, pw); err != nil {
		t.Errorf("after refused writes, the original password no longer logs in: %v", err)
	}
	h.waitMechanisms(t, target, []string{provisioning.MechanismScramSHA512})
	h.waitPrincipal(t, principal, wantACLs, nil)
}
