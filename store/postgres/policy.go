package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopgate/loopgate/store"
)

// Policy governance: bundles, approvals, activations, waivers and the
// decision log (store.PolicyReader, store.PolicyWriter). Schema in
// migrations/0005_policy_governance.sql. Inserts that may meet an existing
// key use ON CONFLICT DO NOTHING, and existence checks come before the
// writes they guard, so a refusal (ErrAlreadyExists, ErrNotFound) leaves
// the transaction usable.

func (s *Store) GetPolicyBundle(ctx context.Context, revision string) (*store.PolicyBundle, error) {
	return getPolicyBundle(ctx, s.pool, revision)
}

func (t *tx) GetPolicyBundle(ctx context.Context, revision string) (*store.PolicyBundle, error) {
	return getPolicyBundle(ctx, t.q, revision)
}

func (s *Store) ListPolicyBundles(ctx context.Context) ([]store.PolicyBundle, error) {
	return listPolicyBundles(ctx, s.pool)
}

func (t *tx) ListPolicyBundles(ctx context.Context) ([]store.PolicyBundle, error) {
	return listPolicyBundles(ctx, t.q)
}

func (s *Store) ActivePolicy(ctx context.Context) (*store.PolicyActivation, error) {
	return activePolicy(ctx, s.pool)
}

func (t *tx) ActivePolicy(ctx context.Context) (*store.PolicyActivation, error) {
	return activePolicy(ctx, t.q)
}

func (s *Store) ListPolicyActivations(ctx context.Context, f store.ActivationFilter) ([]store.PolicyActivation, error) {
	return listPolicyActivations(ctx, s.pool, f)
}

func (t *tx) ListPolicyActivations(ctx context.Context, f store.ActivationFilter) ([]store.PolicyActivation, error) {
	return listPolicyActivations(ctx, t.q, f)
}

func (s *Store) ListWaivers(ctx context.Context, f store.WaiverFilter) ([]store.Waiver, error) {
	return listWaivers(ctx, s.pool, f)
}

func (t *tx) ListWaivers(ctx context.Context, f store.WaiverFilter) ([]store.Waiver, error) {
	return listWaivers(ctx, t.q, f)
}

func (s *Store) ListDecisions(ctx context.Context, f store.DecisionFilter) ([]store.Decision, error) {
	return listDecisions(ctx, s.pool, f)
}

func (t *tx) ListDecisions(ctx context.Context, f store.DecisionFilter) ([]store.Decision, error) {
	return listDecisions(ctx, t.q, f)
}

// Bundles.

const bundleColumns = `revision, digest, manifest::text, files, signed, tests::text, pushed_by, push_time`

func getPolicyBundle(ctx context.Context, q querier, revision string) (*store.PolicyBundle, error) {
	var archive []byte
	b, err := scanBundle(q.QueryRow(ctx, `SELECT `+bundleColumns+`, archive FROM policy_bundles WHERE revision = $1`, revision), &archive)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("policy bundle %s: %w", revision, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("policy bundle %s: %w", revision, err)
	}
	if archive == nil {
		archive = []byte{}
	}
	b.Archive = archive
	approvals, err := listApprovals(ctx, q, revision)
	if err != nil {
		return nil, err
	}
	b.Approvals = approvals[revision]
	return &b, nil
}

func listPolicyBundles(ctx context.Context, q querier) ([]store.PolicyBundle, error) {
	rows, err := q.Query(ctx, `SELECT `+bundleColumns+` FROM policy_bundles ORDER BY push_time DESC, revision DESC`)
	if err != nil {
		return nil, fmt.Errorf("list policy bundles: %w", err)
	}
	defer rows.Close()
	bundles, err := store.ScanAll(rows, func(r store.Rows) (store.PolicyBundle, error) { return scanBundle(r) })
	if err != nil {
		return nil, fmt.Errorf("list policy bundles: %w", err)
	}
	approvals, err := listApprovals(ctx, q, "")
	if err != nil {
		return nil, err
	}
	for i := range bundles {
		bundles[i].Approvals = approvals[bundles[i].Revision]
	}
	return bundles, nil
}

// scanBundle reads one row of bundleColumns, then extra (the archive).
func scanBundle(row interface{ Scan(dest ...any) error }, extra ...any) (store.PolicyBundle, error) {
	var (
		b               store.PolicyBundle
		manifest, tests *string
		files           []byte
	)
	dest := append([]any{&b.Revision, &b.Digest, &manifest, &files, &b.Signed, &tests, &b.PushedBy, &b.PushTime}, extra...)
	if err := row.Scan(dest...); err != nil {
		return store.PolicyBundle{}, err
	}
	var err error
	if b.Files, err = store.DecodePolicyFiles(b.Revision, files); err != nil {
		return store.PolicyBundle{}, err
	}
	if manifest != nil {
		b.Manifest = json.RawMessage(*manifest)
	}
	if tests != nil {
		b.Tests = json.RawMessage(*tests)
	}
	b.PushTime = b.PushTime.UTC()
	return b, nil
}

// listApprovals returns the approvals of revision (of every bundle if ""),
// by revision, in order.
func listApprovals(ctx context.Context, q querier, revision string) (map[string][]store.PolicyApproval, error) {
	rows, err := q.Query(ctx, `SELECT revision, reviewer, time, comment FROM policy_approvals
		WHERE $1::text = '' OR revision = $1 ORDER BY revision, seq`, revision)
	if err != nil {
		return nil, fmt.Errorf("policy bundle approvals: %w", err)
	}
	defer rows.Close()
	out := map[string][]store.PolicyApproval{}
	for rows.Next() {
		var rev string
		var a store.PolicyApproval
		if err := rows.Scan(&rev, &a.Reviewer, &a.Time, &a.Comment); err != nil {
			return nil, fmt.Errorf("policy bundle approvals: %w", err)
		}
		a.Time = a.Time.UTC()
		out[rev] = append(out[rev], a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("policy bundle approvals: %w", err)
	}
	return out, nil
}

// jsonText is a JSON document as a query argument: NULL when empty, else
// text (the column's json type keeps it byte for byte).
func jsonText(b []byte) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

// nullString maps "" to SQL NULL.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// PutPolicyBundle stores b and its approvals; store.ErrAlreadyExists if its
// revision is stored (the transaction stays usable).
func (t *tx) PutPolicyBundle(ctx context.Context, b store.PolicyBundle) error {
	b, err := store.PreparePolicyBundle(b, t.s.now())
	if err != nil {
		return err
	}
	files, err := store.EncodePolicyFiles(b.Files)
	if err != nil {
		return fmt.Errorf("policy bundle %s: encode files: %w", b.Revision, err)
	}
	archive := b.Archive
	if archive == nil {
		archive = []byte{}
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO policy_bundles
		(revision, digest, manifest, files, signed, tests, pushed_by, push_time, archive)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (revision) DO NOTHING`,
		b.Revision, b.Digest, jsonText(b.Manifest), string(files), b.Signed, jsonText(b.Tests), b.PushedBy,
		b.PushTime, archive)
	if err != nil {
		return fmt.Errorf("policy bundle %s: %w", b.Revision, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("policy bundle %s: %w", b.Revision, store.ErrAlreadyExists)
	}
	for i, a := range b.Approvals {
		if err := t.insertApproval(ctx, b.Revision, int64(i+1), a); err != nil {
			return err
		}
	}
	return nil
}

// AddPolicyApproval appends a to the bundle's approvals; store.ErrNotFound
// if there is no such bundle.
func (t *tx) AddPolicyApproval(ctx context.Context, revision string, a store.PolicyApproval) error {
	a = store.PreparePolicyApproval(a, t.s.now())
	var exists bool
	var last int64
	err := t.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM policy_bundles WHERE revision = $1),
		COALESCE((SELECT max(seq) FROM policy_approvals WHERE revision = $1), 0)`, revision).Scan(&exists, &last)
	if err != nil {
		return fmt.Errorf("approve policy bundle %s: %w", revision, err)
	}
	if !exists {
		return fmt.Errorf("approve policy bundle %s: %w", revision, store.ErrNotFound)
	}
	return t.insertApproval(ctx, revision, last+1, a)
}

func (t *tx) insertApproval(ctx context.Context, revision string, seq int64, a store.PolicyApproval) error {
	_, err := t.q.Exec(ctx, `INSERT INTO policy_approvals (revision, seq, reviewer, time, comment) VALUES ($1, $2, $3, $4, $5)`,
		revision, seq, a.Reviewer, a.Time, a.Comment)
	if err != nil {
		return fmt.Errorf("approve policy bundle %s: %w", revision, err)
	}
	return nil
}

// Activations.

const activationColumns = `seq, revision, action, actor, time, comment`

func scanActivation(row interface{ Scan(dest ...any) error }) (store.PolicyActivation, error) {
	var a store.PolicyActivation
	if err := row.Scan(&a.Seq, &a.Revision, &a.Action, &a.Actor, &a.Time, &a.Comment); err != nil {
		return store.PolicyActivation{}, err
	}
	a.Time = a.Time.UTC()
	return a, nil
}

func activePolicy(ctx context.Context, q querier) (*store.PolicyActivation, error) {
	a, err := scanActivation(q.QueryRow(ctx, `SELECT `+activationColumns+` FROM policy_activations ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("active policy: no activation (the built-in bundle is active): %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("active policy: %w", err)
	}
	return &a, nil
}

// listPolicyActivations lists the activations f selects, newest first:
// one query over the primary key, bounded by the limit.
func listPolicyActivations(ctx context.Context, q querier, f store.ActivationFilter) ([]store.PolicyActivation, error) {
	query, args := `SELECT `+activationColumns+` FROM policy_activations`, []any{store.ActivationLimit(f.Limit)}
	if f.Before > 0 {
		query += ` WHERE seq < $2`
		args = append(args, f.Before)
	}
	rows, err := q.Query(ctx, query+` ORDER BY seq DESC LIMIT $1`, args...)
	if err != nil {
		return nil, fmt.Errorf("list policy activations: %w", err)
	}
	defer rows.Close()
	out, err := store.ScanAll(rows, func(r store.Rows) (store.PolicyActivation, error) { return scanActivation(r) })
	if err != nil {
		return nil, fmt.Errorf("list policy activations: %w", err)
	}
	return out, nil
}

// AppendPolicyActivation records a with the next Seq. Update holds the
// writer lock, so the max+1 read here is the seq the insert takes; the
// primary key would refuse a duplicate from a writer that bypassed the
// lock. A non-empty revision must be a stored bundle (store.ErrNotFound
// otherwise).
func (t *tx) AppendPolicyActivation(ctx context.Context, a store.PolicyActivation) (store.PolicyActivation, error) {
	a, err := store.PreparePolicyActivation(a, t.s.now())
	if err != nil {
		return store.PolicyActivation{}, err
	}
	var exists bool
	err = t.q.QueryRow(ctx, `SELECT COALESCE(max(seq), 0) + 1,
		$1::text = '' OR EXISTS (SELECT 1 FROM policy_bundles WHERE revision = $1)
		FROM policy_activations`, a.Revision).Scan(&a.Seq, &exists)
	if err != nil {
		return store.PolicyActivation{}, fmt.Errorf("%s policy %q: %w", a.Action, a.Revision, err)
	}
	if !exists {
		return store.PolicyActivation{}, fmt.Errorf("%s policy: bundle %s: %w", a.Action, a.Revision, store.ErrNotFound)
	}
	_, err = t.q.Exec(ctx, `INSERT INTO policy_activations (`+activationColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		a.Seq, a.Revision, a.Action, a.Actor, a.Time, a.Comment)
	if err != nil {
		return store.PolicyActivation{}, fmt.Errorf("%s policy %q (activation %d): %w", a.Action, a.Revision, a.Seq, err)
	}
	return a, nil
}

// Waivers.

const waiverColumns = `id, team, loop, rule, until, reason, granted_by, grant_time, revoked_by, revoke_time`

func scanWaiver(row interface{ Scan(dest ...any) error }) (store.Waiver, error) {
	var (
		w         store.Waiver
		revokedBy *string
		revoke    *time.Time
	)
	if err := row.Scan(&w.ID, &w.Team, &w.Loop, &w.Rule, &w.Until, &w.Reason, &w.GrantedBy, &w.GrantTime, &revokedBy, &revoke); err != nil {
		return store.Waiver{}, err
	}
	w.Until, w.GrantTime = w.Until.UTC(), w.GrantTime.UTC()
	if revokedBy != nil {
		w.RevokedBy = *revokedBy
	}
	if revoke != nil {
		w.RevokeTime = revoke.UTC()
	}
	return w, nil
}

func listWaivers(ctx context.Context, q querier, f store.WaiverFilter) ([]store.Waiver, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Team != "" {
		where = append(where, "team = "+arg(f.Team))
	}
	if f.Loop != "" {
		where = append(where, "loop = "+arg(f.Loop))
	}
	if f.Teams != nil {
		if len(f.Teams) == 0 {
			return nil, nil
		}
		where = append(where, "team = ANY("+arg(f.Teams)+"::text[])")
	}
	if !f.ActiveAt.IsZero() {
		// As store.Waiver.Active: not revoked, and ActiveAt before until.
		where = append(where, "revoke_time IS NULL AND until > "+arg(store.Timestamp(f.ActiveAt)))
	}
	if a := f.After; a != nil {
		// Keyset paging: the row comparison is the ORDER BY below (the
		// columns are COLLATE "C", the comparison uses their collation).
		where = append(where, "(team, loop, rule, grant_time, id) > ("+
			arg(a.Team)+", "+arg(a.Loop)+", "+arg(a.Rule)+", "+arg(store.Timestamp(a.GrantTime))+", "+arg(a.ID)+")")
	}
	query := `SELECT ` + waiverColumns + ` FROM waivers`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY team, loop, rule, grant_time, id`
	if f.Limit > 0 {
		query += ` LIMIT ` + arg(f.Limit)
	}
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list waivers: %w", err)
	}
	defer rows.Close()
	out, err := store.ScanAll(rows, func(r store.Rows) (store.Waiver, error) { return scanWaiver(r) })
	if err != nil {
		return nil, fmt.Errorf("list waivers: %w", err)
	}
	return out, nil
}

// PutWaiver stores w; store.ErrAlreadyExists if its id is taken (the
// transaction stays usable).
func (t *tx) PutWaiver(ctx context.Context, w store.Waiver) error {
	w, err := store.PrepareWaiver(w, t.s.now())
	if err != nil {
		return err
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO waivers (`+waiverColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO NOTHING`,
		w.ID, w.Team, w.Loop, w.Rule, w.Until, w.Reason, w.GrantedBy, w.GrantTime, nullString(w.RevokedBy), nullTime(w.RevokeTime))
	if err != nil {
		return fmt.Errorf("waiver %s: %w", w.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("waiver %s: %w", w.ID, store.ErrAlreadyExists)
	}
	return nil
}

// RevokeWaiver marks the waiver revoked by by at at (now, if zero);
// store.ErrNotFound if there is none. Revoking a revoked waiver changes
// nothing: the first revocation is kept.
func (t *tx) RevokeWaiver(ctx context.Context, id, by string, at time.Time) error {
	if at.IsZero() {
		at = t.s.now()
	}
	tag, err := t.q.Exec(ctx, `UPDATE waivers SET revoked_by = $1, revoke_time = $2 WHERE id = $3 AND revoke_time IS NULL`,
		by, store.Timestamp(at), id)
	if err != nil {
		return fmt.Errorf("revoke waiver %s: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var exists bool
	if err := t.q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM waivers WHERE id = $1)`, id).Scan(&exists); err != nil {
		return fmt.Errorf("revoke waiver %s: %w", id, err)
	}
	if !exists {
		return fmt.Errorf("revoke waiver %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// Decisions.

const decisionColumns = `id, time, resource, operation, bundle_revision, result::text, input::text, input_digest, duration_us, kind`

func scanDecision(row interface{ Scan(dest ...any) error }) (store.Decision, error) {
	var (
		d                   store.Decision
		result              string
		input, digest, kind *string
		duration            *int64
	)
	if err := row.Scan(&d.ID, &d.Time, &d.Resource, &d.Operation, &d.BundleRevision, &result, &input, &digest, &duration, &kind); err != nil {
		return store.Decision{}, err
	}
	d.Time = d.Time.UTC()
	d.Result = json.RawMessage(result)
	if input != nil {
		d.Input = json.RawMessage(*input)
	}
	if digest != nil {
		d.InputDigest = *digest
	}
	if duration != nil {
		d.Duration = time.Duration(*duration) * time.Microsecond
	}
	if kind != nil {
		d.Kind = *kind
	}
	return d, nil
}

// listDecisions returns the decisions f selects, newest first (by time,
// then id). The rule filter is an exact match in decision_rules.
func listDecisions(ctx context.Context, q querier, f store.DecisionFilter) ([]store.Decision, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Resource != "" {
		where = append(where, "resource = "+arg(f.Resource))
	}
	if f.Rule != "" {
		where = append(where, "id IN (SELECT decision_id FROM decision_rules WHERE rule = "+arg(f.Rule)+")")
	}
	if f.Kind != "" {
		where = append(where, "COALESCE(NULLIF(kind, ''), 'request') = "+arg(f.Kind))
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(store.Timestamp(f.Since)))
	}
	if f.Before != "" {
		var before time.Time
		err := q.QueryRow(ctx, `SELECT time FROM decisions WHERE id = $1`, f.Before).Scan(&before)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("list decisions before %s: no such decision (pruned?); list again without a cursor: %w", f.Before, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("list decisions before %s: %w", f.Before, err)
		}
		where = append(where, "(time, id) < ("+arg(before)+", "+arg(f.Before)+")")
	}
	query := `SELECT ` + decisionColumns + ` FROM decisions`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY time DESC, id DESC LIMIT ` + arg(store.DecisionPageSize(f.Limit))
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list decisions: %w", err)
	}
	defer rows.Close()
	out, err := store.ScanAll(rows, func(r store.Rows) (store.Decision, error) { return scanDecision(r) })
	if err != nil {
		return nil, fmt.Errorf("list decisions: %w", err)
	}
	return out, nil
}

// PruneDecisions deletes the decisions recorded before cutoff that are not
// among the newest keep decisions (their decision_rules rows cascade).
func (t *tx) PruneDecisions(ctx context.Context, cutoff time.Time, keep int) (int64, error) {
	args := []any{store.Timestamp(cutoff)}
	cond := `time < $1`
	if keep > 0 {
		// The keep-th newest decision: it and everything newer stay.
		var bt time.Time
		var bid string
		err := t.q.QueryRow(ctx, `SELECT time, id FROM decisions ORDER BY time DESC, id DESC LIMIT 1 OFFSET $1`, keep-1).Scan(&bt, &bid)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, nil // keep decisions or fewer: all stay
		}
		if err != nil {
			return 0, fmt.Errorf("prune decisions: %w", err)
		}
		cond += ` AND (time, id) < ($2, $3)`
		args = append(args, bt, bid)
	}
	tag, err := t.q.Exec(ctx, `DELETE FROM decisions WHERE `+cond, args...)
	if err != nil {
		return 0, fmt.Errorf("prune decisions: %w", err)
	}
	return tag.RowsAffected(), nil
}
