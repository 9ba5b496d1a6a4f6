package admission

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/policy"
	"github.com/loopgate/loopgate/store"
)

// Policy governance: security reviewers push candidate bundles, a second
// reviewer approves one, it is activated (and can be rolled back). The
// bundle the server started with is revision zero, named BuiltinRevision;
// stored bundles are named by their manifest revision.

// BuiltinRevision names the bundle the server started with (built into the
// binary, or the config's policy.bundle).
const BuiltinRevision = "builtin"

// MaxPushBytes bounds a pushed bundle archive: it must fit in one API
// message (4 MiB, REST bodies base64-encoded).
const MaxPushBytes = 3 << 20

// Bundle states.
const (
	BundleCandidate  = "CANDIDATE"
	BundleActive     = "ACTIVE"
	BundleSuperseded = "SUPERSEDED"
)

// PolicyBundleView is a bundle as the API shows it.
type PolicyBundleView struct {
	store.PolicyBundle
	Tests             []policy.TestResult
	State             string
	RequiredApprovals int
}

// PolicyGovernance is the state of policy governance a Core keeps: the
// bundle it started with and what is active.
type PolicyGovernance struct {
	// Builtin is the bundle the server started with (revision zero).
	Builtin *bundle.Bundle
	// Check says how pushed bundles are checked (signature keys).
	Check policy.CheckOptions
	// Changed is called after this process swapped its engine to another
	// revision ("" = the built-in one), e.g. to re-evaluate every loop.
	Changed func(revision string)

	mu     sync.Mutex
	active string // revision the engine judges by; "" = built-in
}

func (c *Core) governance() *PolicyGovernance {
	c.governanceOnce.Do(func() {
		if c.Governance == nil {
			c.Governance = &PolicyGovernance{}
		}
	})
	return c.Governance
}

// ActiveRevision is the revision this process judges by ("" = the built-in
// bundle).
func (c *Core) ActiveRevision() string {
	g := c.governance()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active
}

func bundleName(revision string) string {
	if revision == "" {
		revision = BuiltinRevision
	}
	return "policy/bundles/" + revision
}

// PushPolicyBundle checks a candidate bundle and stores it: it must
// compile, pass its own tests and, when keys are configured, carry a valid
// signature. Refusals are audited.
func (c *Core) PushPolicyBundle(ctx context.Context, id Identity, archive []byte) (*PolicyBundleView, error) {
	const action = "policy.push"
	if len(archive) == 0 || len(archive) > MaxPushBytes {
		return nil, c.rejectInvalid(ctx, id, action, "policy/bundles", WriteOptions{}, loop.FieldErrors{{Field: "archive",
			Message: fmt.Sprintf("%d bytes: want a gzipped OPA bundle of 1 byte to %d MiB", len(archive), MaxPushBytes>>20)}})
	}
	checked, err := policy.Check(ctx, archive, c.governance().Check)
	if err != nil {
		reason := "BUNDLE_INVALID"
		var ce *policy.CheckError
		if errors.As(err, &ce) && ce.Reason != "" {
			reason = ce.Reason
		}
		c.refuse(ctx, id, action, "policy/bundles", audit.OutcomeDenied, reason, err.Error())
		return nil, &PreconditionError{Reason: reason, Message: err.Error()}
	}
	if checked.Revision == BuiltinRevision {
		msg := fmt.Sprintf("manifest revision %q names the bundle the server started with: choose another", checked.Revision)
		return nil, c.rejectInvalid(ctx, id, action, "policy/bundles", WriteOptions{}, loop.FieldErrors{{Field: "archive/.manifest/revision", Message: msg}})
	}
	tests, _ := json.Marshal(checked.Tests)
	b := store.PolicyBundle{
		Revision: checked.Revision, Digest: checked.Digest, Archive: checked.Archive,
		Manifest: checked.Manifest, Files: checked.Files, Signed: checked.SignedBy, Tests: tests,
		PushedBy: id.Subject, PushTime: c.now(),
	}
	resource := bundleName(b.Revision)
	err = c.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutPolicyBundle(ctx, b); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, eventFor(id, action, resource, "", audit.OutcomeOK, map[string]any{
			"digest": b.Digest, "files": len(b.Files), "tests": len(checked.Tests), "signedBy": b.Signed,
		}))
		return err
	})
	if errors.Is(err, store.ErrAlreadyExists) {
		msg := fmt.Sprintf("a bundle with revision %q was pushed before: bump the revision in .manifest", b.Revision)
		c.refuse(ctx, id, action, resource, audit.OutcomeDenied, "REVISION_EXISTS", msg)
		return nil, &KindError{Kind: KindPolicyBundle, Err: fmt.Errorf("%s: %w", msg, store.ErrAlreadyExists)}
	}
	if err != nil {
		return nil, err
	}
	return c.bundleView(ctx, &b)
}

// ListPolicyBundles lists every bundle (newest push first, the built-in
// one last) and names the active one.
func (c *Core) ListPolicyBundles(ctx context.Context, id Identity) ([]PolicyBundleView, string, error) {
	list, err := c.Store.ListPolicyBundles(ctx)
	if err != nil {
		return nil, "", err
	}
	revisions := make([]string, len(list))
	for i := range list {
		revisions[i] = list[i].Revision
	}
	states, err := bundleStates(ctx, c.Store, revisions...)
	if err != nil {
		return nil, "", err
	}
	out := make([]PolicyBundleView, 0, len(list)+1)
	for i := range list {
		out = append(out, *c.viewWith(&list[i], states))
	}
	builtin, err := c.builtinView(ctx, false)
	if err != nil {
		return nil, "", err
	}
	out = append(out, *builtin)
	active, err := c.storedActive(ctx)
	if err != nil {
		return nil, "", err
	}
	return out, bundleName(active), nil
}

// GetPolicyBundle returns one bundle; with full, its archive too.
func (c *Core) GetPolicyBundle(ctx context.Context, id Identity, revision string, full bool) (*PolicyBundleView, error) {
	if revision == BuiltinRevision {
		return c.builtinView(ctx, full)
	}
	b, err := c.Store.GetPolicyBundle(ctx, revision)
	if err != nil {
		return nil, &KindError{Kind: KindPolicyBundle, Err: fmt.Errorf("policy bundle %s: %w", revision, err)}
	}
	if !full {
		b.Archive = nil
	}
	return c.bundleView(ctx, b)
}

// builtinView describes the bundle the server started with.
func (c *Core) builtinView(ctx context.Context, full bool) (*PolicyBundleView, error) {
	v := &PolicyBundleView{PolicyBundle: store.PolicyBundle{Revision: BuiltinRevision, PushedBy: "loopgate"}}
	if b := c.governance().Builtin; b != nil {
		v.Manifest, _ = json.Marshal(b.Manifest)
		for _, m := range b.Modules {
			v.Files = append(v.Files, m.Path)
		}
		slices.Sort(v.Files)
		if full {
			archive, err := policy.Archive(b)
			if err != nil {
				return nil, err
			}
			v.Archive = archive
			sum := sha256.Sum256(archive)
			v.Digest = hex.EncodeToString(sum[:])
		}
	}
	active, err := c.storedActive(ctx)
	if err != nil {
		return nil, err
	}
	v.State = BundleSuperseded
	if active == "" {
		v.State = BundleActive
	}
	return v, nil
}

// bundleView adds the state and the approvals needed to a stored bundle.
func (c *Core) bundleView(ctx context.Context, b *store.PolicyBundle) (*PolicyBundleView, error) {
	states, err := bundleStates(ctx, c.Store, b.Revision)
	if err != nil {
		return nil, err
	}
	return c.viewWith(b, states), nil
}

// viewWith is bundleView with the states (bundleStates) read once for a
// whole listing.
func (c *Core) viewWith(b *store.PolicyBundle, states map[string]string) *PolicyBundleView {
	v := &PolicyBundleView{PolicyBundle: *b, RequiredApprovals: c.Policy.RequiredApprovals()}
	if len(b.Tests) > 0 {
		_ = json.Unmarshal(b.Tests, &v.Tests)
	}
	v.State = cmp.Or(states[b.Revision], BundleCandidate)
	return v
}

// ActivationHistoryPage is how many activations one read of the history
// takes when admission searches it (bundle states, rollback targets): the
// whole history is searched, a bounded page at a time, never cut at a
// fixed length — a bundle active long ago stays SUPERSEDED and can still
// be rolled back to.
const ActivationHistoryPage = store.MaxPageSize

// walkActivations calls fn with each activation r holds, newest first,
// reading ActivationHistoryPage at a time, until fn returns false or the
// history ends.
func walkActivations(ctx context.Context, r store.PolicyReader, fn func(store.PolicyActivation) bool) error {
	f := store.ActivationFilter{Limit: ActivationHistoryPage}
	for {
		page, err := r.ListPolicyActivations(ctx, f)
		if err != nil {
			return err
		}
		for _, a := range page {
			if !fn(a) {
				return nil
			}
		}
		if len(page) < f.Limit {
			return nil
		}
		f.Before = page[len(page)-1].Seq
	}
}

// bundleStates returns the state of each of revisions that was ever
// active: BundleActive for the latest activation's, BundleSuperseded for
// the others; a revision never active is left out (a candidate). It reads
// the history only until every revision is placed.
func bundleStates(ctx context.Context, r store.PolicyReader, revisions ...string) (map[string]string, error) {
	out := make(map[string]string, len(revisions))
	left := make(map[string]bool, len(revisions))
	for _, rev := range revisions {
		left[rev] = true
	}
	latest := true
	err := walkActivations(ctx, r, func(a store.PolicyActivation) bool {
		if left[a.Revision] {
			delete(left, a.Revision)
			out[a.Revision] = BundleSuperseded
			if latest {
				out[a.Revision] = BundleActive
			}
		}
		latest = false
		return len(left) > 0
	})
	return out, err
}

// ListPolicyActivations lists a page of the activation history, newest
// first: at most pageSize (0 = store.DefaultActivationLimit, at most
// store.MaxPageSize) activations with a seq below before (0 = from the
// newest). next is the before of the following page, 0 after the last.
// A page size or cursor out of range is refused as invalid, audited; the
// API authorized the call as policy.list, like the other policy reads.
func (c *Core) ListPolicyActivations(ctx context.Context, id Identity, pageSize int, before int64) (list []store.PolicyActivation, next int64, err error) {
	const action = "policy.list"
	size, problems := checkPageSize("page_size", pageSize, store.DefaultActivationLimit, store.MaxPageSize)
	if before < 0 {
		problems = append(problems, loop.FieldError{Field: "page_token", Message: "not a token this server returned: list again without it"})
	}
	if len(problems) > 0 {
		return nil, 0, c.refuseInvalidList(ctx, id, action, "policy/activations", problems)
	}
	if list, err = c.Store.ListPolicyActivations(ctx, store.ActivationFilter{Before: before, Limit: size}); err != nil {
		return nil, 0, err
	}
	// Seqs are 1, 2, … without gaps: a full page ending above seq 1 has a
	// next one.
	if len(list) == size && list[size-1].Seq > 1 {
		next = list[size-1].Seq
	}
	return list, next, nil
}

// storedActive is the revision the store says is active ("" = built-in).
func (c *Core) storedActive(ctx context.Context) (string, error) {
	a, err := c.Store.ActivePolicy(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return a.Revision, nil
}

// maxApprovalComment bounds an approval's or activation's comment.
const maxApprovalComment = maxCommentBytes

// ApprovePolicyBundle records a security reviewer's approval of a
// candidate: not the one who pushed it, once per reviewer, and only of the
// bundle whose digest the reviewer read.
func (c *Core) ApprovePolicyBundle(ctx context.Context, id Identity, revision, digest, comment string) (*PolicyBundleView, error) {
	const action = "policy.approve"
	resource := bundleName(revision)
	var problems loop.FieldErrors
	if digest == "" {
		problems = append(problems, loop.FieldError{Field: "digest", Message: "required: the digest of the bundle you reviewed (loopctl sends it)"})
	}
	if len(comment) > maxApprovalComment {
		problems = append(problems, loop.FieldError{Field: "comment", Message: fmt.Sprintf("%d bytes: at most %d", len(comment), maxApprovalComment)})
	}
	if revision == BuiltinRevision {
		problems = append(problems, loop.FieldError{Field: "name", Message: "the built-in bundle needs no approval"})
	}
	if len(problems) > 0 {
		return nil, c.rejectInvalid(ctx, id, action, resource, WriteOptions{}, problems)
	}
	var out *store.PolicyBundle
	var refusal *refusalNote
	err := c.Store.Update(ctx, func(tx store.Tx) error {
		refusal = nil
		b, err := tx.GetPolicyBundle(ctx, revision)
		if err != nil {
			return &KindError{Kind: KindPolicyBundle, Err: fmt.Errorf("policy bundle %s: %w", revision, err)}
		}
		refuse := func(outcome string, e error, reason, msg string) error {
			refusal = &refusalNote{outcome: outcome, reason: reason, msg: msg}
			return e
		}
		switch {
		case b.Digest != digest:
			msg := fmt.Sprintf("policy bundle %s has digest %s, not the %s you reviewed", revision, b.Digest, digest)
			return refuse(audit.OutcomeDenied, fmt.Errorf("%s: %w", msg, store.ErrEtagMismatch), "DIGEST_MISMATCH", msg)
		case b.PushedBy == id.Subject:
			msg := fmt.Sprintf("%s pushed policy bundle %s and may not approve it: another security reviewer must", id.Subject, revision)
			return refuse(audit.OutcomeForbidden, &ForbiddenError{Reason: "SELF_APPROVAL", Message: msg}, "SELF_APPROVAL", msg)
		case slices.ContainsFunc(b.Approvals, func(a store.PolicyApproval) bool { return a.Reviewer == id.Subject }):
			msg := fmt.Sprintf("%s already approved policy bundle %s", id.Subject, revision)
			return refuse(audit.OutcomeDenied, &PreconditionError{Reason: "ALREADY_APPROVED", Message: msg}, "ALREADY_APPROVED", msg)
		}
		a := store.PolicyApproval{Reviewer: id.Subject, Time: c.now(), Comment: comment}
		if err := tx.AddPolicyApproval(ctx, revision, a); err != nil {
			return err
		}
		b.Approvals = append(b.Approvals, a)
		if _, err := tx.AppendAudit(ctx, eventFor(id, action, resource, "", audit.OutcomeOK, map[string]any{
			"digest": digest, "comment": comment, "approvals": len(b.Approvals),
		})); err != nil {
			return err
		}
		b.Archive = nil
		out = b
		return nil
	})
	if err := c.settleRefusal(ctx, id, action, resource, "", comment, refusal, err); err != nil {
		return nil, err
	}
	return c.bundleView(ctx, out)
}

// ActivatePolicyBundle makes a bundle the one every decision is made with,
// once it has the approvals the active bundle requires from reviewers
// other than its uploader. The engine of this process is swapped at once;
// other replicas follow within seconds (SyncPolicy).
func (c *Core) ActivatePolicyBundle(ctx context.Context, id Identity, revision, comment string) (*store.PolicyActivation, error) {
	const action = "policy.activate"
	resource := bundleName(revision)
	if len(comment) > maxApprovalComment {
		return nil, c.rejectInvalid(ctx, id, action, resource, WriteOptions{}, loop.FieldErrors{{Field: "comment",
			Message: fmt.Sprintf("%d bytes: at most %d", len(comment), maxApprovalComment)}})
	}
	if revision == BuiltinRevision {
		return nil, c.rejectInvalid(ctx, id, action, resource, WriteOptions{}, loop.FieldErrors{{Field: "name",
			Message: "the built-in bundle is returned to with a rollback (loopctl policy rollback builtin)"}})
	}
	required := c.Policy.RequiredApprovals()
	return c.activate(ctx, id, action, resource, store.PolicyActivate, revision, comment, func(tx store.Tx, current string) (*store.PolicyBundle, *refusalNote, error) {
		b, err := tx.GetPolicyBundle(ctx, revision)
		if err != nil {
			return nil, nil, &KindError{Kind: KindPolicyBundle, Err: fmt.Errorf("policy bundle %s: %w", revision, err)}
		}
		if current == revision {
			msg := fmt.Sprintf("policy bundle %s is already active", revision)
			return nil, &refusalNote{audit.OutcomeDenied, "ALREADY_ACTIVE", msg}, &PreconditionError{Reason: "ALREADY_ACTIVE", Message: msg}
		}
		var approvers []string
		for _, a := range b.Approvals {
			if a.Reviewer != b.PushedBy && !slices.Contains(approvers, a.Reviewer) {
				approvers = append(approvers, a.Reviewer)
			}
		}
		if len(approvers) < required {
			msg := fmt.Sprintf("policy bundle %s has %d of the %d approval(s) the active bundle requires from reviewers other than its uploader %s; ask another security reviewer to run loopctl policy approve %s",
				revision, len(approvers), required, b.PushedBy, revision)
			return nil, &refusalNote{audit.OutcomeDenied, "APPROVALS_MISSING", msg}, &PreconditionError{Reason: "APPROVALS_MISSING", Message: msg}
		}
		return b, nil, nil
	})
}

// RollbackPolicy returns to the bundle active before the current one, or
// to revision, which must have been active before (or be the built-in one).
func (c *Core) RollbackPolicy(ctx context.Context, id Identity, revision, comment string) (*store.PolicyActivation, error) {
	const action = "policy.rollback"
	var problems loop.FieldErrors
	if strings.TrimSpace(comment) == "" {
		problems = append(problems, loop.FieldError{Field: "comment", Message: "required: say why, it is audited"})
	}
	if len(comment) > maxApprovalComment {
		problems = append(problems, loop.FieldError{Field: "comment", Message: fmt.Sprintf("%d bytes: at most %d", len(comment), maxApprovalComment)})
	}
	if len(problems) > 0 {
		return nil, c.rejectInvalid(ctx, id, action, "policy", WriteOptions{}, problems)
	}
	return c.activate(ctx, id, action, "policy", store.PolicyRollback, revision, comment, func(tx store.Tx, current string) (*store.PolicyBundle, *refusalNote, error) {
		// The whole history is searched (walkActivations), however long.
		target, found := revision, revision == BuiltinRevision
		var err error
		if revision == "" {
			// The revision active before the current one.
			found = true
			target = BuiltinRevision
			err = walkActivations(ctx, tx, func(a store.PolicyActivation) bool {
				if a.Revision != current {
					target = cmp.Or(a.Revision, BuiltinRevision)
					return false
				}
				return true
			})
		} else if !found {
			err = walkActivations(ctx, tx, func(a store.PolicyActivation) bool {
				found = a.Revision == revision
				return !found
			})
		}
		if err != nil {
			return nil, nil, err
		}
		if !found {
			msg := fmt.Sprintf("policy bundle %s was never active: a rollback returns to a bundle that was; activate a new one instead", revision)
			return nil, &refusalNote{audit.OutcomeDenied, "NEVER_ACTIVE", msg}, &PreconditionError{Reason: "NEVER_ACTIVE", Message: msg}
		}
		if target == BuiltinRevision {
			target = ""
		}
		if target == current {
			msg := fmt.Sprintf("%s is already active", bundleName(target))
			return nil, &refusalNote{audit.OutcomeDenied, "ALREADY_ACTIVE", msg}, &PreconditionError{Reason: "ALREADY_ACTIVE", Message: msg}
		}
		if target == "" {
			return &store.PolicyBundle{}, nil, nil
		}
		b, err := tx.GetPolicyBundle(ctx, target)
		return b, nil, err
	})
}

// activate records an activation of the bundle pick chooses (given the
// current revision), audited, then swaps this process's engine.
func (c *Core) activate(ctx context.Context, id Identity, action, resource, kind, revision, comment string,
	pick func(tx store.Tx, current string) (*store.PolicyBundle, *refusalNote, error)) (*store.PolicyActivation, error) {
	var (
		out     store.PolicyActivation
		chosen  *store.PolicyBundle
		refusal *refusalNote
	)
	err := c.Store.Update(ctx, func(tx store.Tx) error {
		refusal = nil
		current := ""
		if a, err := tx.ActivePolicy(ctx); err == nil {
			current = a.Revision
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		b, note, err := pick(tx, current)
		if note != nil || err != nil {
			refusal = note
			return err
		}
		// Check the bundle still prepares before it is on record as active.
		if b.Revision != "" {
			if err := compiles(ctx, b.Archive); err != nil {
				return fmt.Errorf("policy bundle %s does not prepare: %w", b.Revision, err)
			}
		}
		a, err := tx.AppendPolicyActivation(ctx, store.PolicyActivation{Revision: b.Revision, Action: kind, Actor: id.Subject, Time: c.now(), Comment: comment})
		if err != nil {
			return err
		}
		if _, err := tx.AppendAudit(ctx, eventFor(id, action, bundleName(b.Revision), "", audit.OutcomeOK, map[string]any{
			"seq": a.Seq, "from": bundleName(current), "to": bundleName(b.Revision), "digest": b.Digest, "comment": comment,
		})); err != nil {
			return err
		}
		out, chosen = a, b
		return nil
	})
	if err := c.settleRefusal(ctx, id, action, resource, "", comment, refusal, err); err != nil {
		return nil, err
	}
	if err := c.swapTo(ctx, chosen, true); err != nil {
		// On record as active: every replica (this one too, at the next
		// SyncPolicy) keeps trying.
		c.logger().Error("policy bundle activated but this process could not load it; retrying", "revision", chosen.Revision, "err", err)
	}
	return &out, nil
}

// SyncPolicy makes this process judge by the revision the store says is
// active; replicas call it every few seconds.
func (c *Core) SyncPolicy(ctx context.Context) error { return c.syncPolicy(ctx, true) }

// LoadPolicy is SyncPolicy at start-up: it loads the active bundle without
// telling PolicyGovernance.Changed, since loading what was active before
// the restart changes no loop's verdict; NeedsReevaluation says whether a
// re-evaluation is still owed.
func (c *Core) LoadPolicy(ctx context.Context) error { return c.syncPolicy(ctx, false) }

func (c *Core) syncPolicy(ctx context.Context, notify bool) error {
	a, err := c.Store.ActivePolicy(ctx)
	revision := ""
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		revision = a.Revision
	}
	if revision == c.ActiveRevision() {
		return nil
	}
	b := &store.PolicyBundle{}
	if revision != "" {
		if b, err = c.Store.GetPolicyBundle(ctx, revision); err != nil {
			return fmt.Errorf("loading active policy bundle %s: %w", revision, err)
		}
	}
	return c.swapTo(ctx, b, notify)
}

// swapTo swaps the engine to b (a zero bundle: the built-in one) and, with
// notify, tells PolicyGovernance.Changed.
func (c *Core) swapTo(ctx context.Context, b *store.PolicyBundle, notify bool) error {
	g := c.governance()
	var pb *bundle.Bundle
	if b.Revision == "" {
		if g.Builtin == nil {
			return errors.New("the built-in bundle is not known to this process")
		}
		cp := g.Builtin.Copy()
		pb = &cp
	} else {
		var err error
		if pb, err = policy.ReadArchive(b.Archive, nil); err != nil {
			return err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := c.Policy.Swap(ctx, pb); err != nil {
		return err
	}
	g.active = b.Revision
	c.logger().Info("policy bundle active", "revision", bundleName(b.Revision))
	if notify && g.Changed != nil {
		go g.Changed(b.Revision)
	}
	return nil
}

// compiles reports whether a stored archive still prepares as an engine
// (it did when it was pushed; loopgate may have been upgraded since).
func compiles(ctx context.Context, archive []byte) error {
	b, err := policy.ReadArchive(archive, nil)
	if err != nil {
		return err
	}
	_, err = policy.NewEngine(ctx, b)
	return err
}
