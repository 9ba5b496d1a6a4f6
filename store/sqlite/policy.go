package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/loopgate/loopgate/store"
)

// Policy governance: bundles, approvals, activations, waivers and the
// decision log (store.PolicyReader, store.PolicyWriter). Schema in
// migrations/0006_policy_governance.sql.

func (s *Store) GetPolicyBundle(ctx context.Context, revision string) (*store.PolicyBundle, error) {
	return getPolicyBundle(ctx, s.reader, revision)
}

func (t *tx) GetPolicyBundle(ctx context.Context, revision string) (*store.PolicyBundle, error) {
	return getPolicyBundle(ctx, t.q, revision)
}

func (s *Store) ListPolicyBundles(ctx context.Context) ([]store.PolicyBundle, error) {
	return listPolicyBundles(ctx, s.reader)
}

func (t *tx) ListPolicyBundles(ctx context.Context) ([]store.PolicyBundle, error) {
	return listPolicyBundles(ctx, t.q)
}

func (s *Store) ActivePolicy(ctx context.Context) (*store.PolicyActivation, error) {
	return activePolicy(ctx, s.reader)
}

func (t *tx) ActivePolicy(ctx context.Context) (*store.PolicyActivation, error) {
	return activePolicy(ctx, t.q)
}

func (s *Store) ListPolicyActivations(ctx context.Context, f store.ActivationFilter) ([]store.PolicyActivation, error) {
	return listPolicyActivations(ctx, s.reader, f)
}

func (t *tx) ListPolicyActivations(ctx context.Context, f store.ActivationFilter) ([]store.PolicyActivation, error) {
	return listPolicyActivations(ctx, t.q, f)
}

func (s *Store) ListWaivers(ctx context.Context, f store.WaiverFilter) ([]store.Waiver, error) {
	return listWaivers(ctx, s.reader, f)
}

func (t *tx) ListWaivers(ctx context.Context, f store.WaiverFilter) ([]store.Waiver, error) {
	return listWaivers(ctx, t.q, f)
}

func (s *Store) ListDecisions(ctx context.Context, f store.DecisionFilter) ([]store.Decision, error) {
	return listDecisions(ctx, s.reader, f)
}

func (t *tx) ListDecisions(ctx context.Context, f store.DecisionFilter) ([]store.Decision, error) {
	return listDecisions(ctx, t.q, f)
}

// Bundles.

const bundleColumns = `revision, digest, manifest, files, signed, tests, pushed_by, push_time`

func getPolicyBundle(ctx context.Context, q querier, revision string) (*store.PolicyBundle, error) {
	var archive []byte
	b, err := scanBundle(q.QueryRowContext(ctx, `SELECT `+bundleColumns+`, archive FROM policy_bundles WHERE revision = ?`, revision), &archive)
	if errors.Is(err, sql.ErrNoRows) {
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
	rows, err := q.QueryContext(ctx, `SELECT `+bundleColumns+` FROM policy_bundles ORDER BY push_time DESC, revision DESC`)
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
		manifest, tests sql.NullString
		files, pushed   string
	)
	dest := append([]any{&b.Revision, &b.Digest, &manifest, &files, &b.Signed, &tests, &b.PushedBy, &pushed}, extra...)
	if err := row.Scan(dest...); err != nil {
		return store.PolicyBundle{}, err
	}
	var err error
	if b.Files, err = store.DecodePolicyFiles(b.Revision, []byte(files)); err != nil {
		return store.PolicyBundle{}, err
	}
	if manifest.Valid {
		b.Manifest = []byte(manifest.String)
	}
	if tests.Valid {
		b.Tests = []byte(tests.String)
	}
	if b.PushTime, err = parseTime(pushed); err != nil {
		return store.PolicyBundle{}, fmt.Errorf("policy bundle %s: %w", b.Revision, err)
	}
	return b, nil
}

// listApprovals returns the approvals of revision (of every bundle if ""),
// by revision, in order.
func listApprovals(ctx context.Context, q querier, revision string) (map[string][]store.PolicyApproval, error) {
	rows, err := q.QueryContext(ctx, `SELECT revision, reviewer, time, comment FROM policy_approvals
		WHERE ? = '' OR revision = ? ORDER BY revision, seq`, revision, revision)
	if err != nil {
		return nil, fmt.Errorf("policy bundle approvals: %w", err)
	}
	defer rows.Close()
	out := map[string][]store.PolicyApproval{}
	for rows.Next() {
		var rev, at string
		var a store.PolicyApproval
		if err := rows.Scan(&rev, &a.Reviewer, &at, &a.Comment); err != nil {
			return nil, fmt.Errorf("policy bundle approvals: %w", err)
		}
		if a.Time, err = parseTime(at); err != nil {
			return nil, fmt.Errorf("policy bundle %s approvals: %w", rev, err)
		}
		out[rev] = append(out[rev], a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("policy bundle approvals: %w", err)
	}
	return out, nil
}

func nullText(b []byte) sql.NullString {
	if len(b) == 0 {
		return sql.NullString{}
	}
	return sql.NullString{String: string(b), Valid: true}
}

func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// PutPolicyBundle stores b and its approvals; store.ErrAlreadyExists if its
// revision is stored.
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
	_, err = t.q.ExecContext(ctx, `INSERT INTO policy_bundles (`+bundleColumns+`, archive) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.Revision, b.Digest, nullText(b.Manifest), string(files), b.Signed, nullText(b.Tests), b.PushedBy,
		formatTime(b.PushTime), archive)
	if isDuplicate(err) {
		return fmt.Errorf("policy bundle %s: %w", b.Revision, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("policy bundle %s: %w", b.Revision, err)
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
	err := t.q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM policy_bundles WHERE revision = ?),
		COALESCE((SELECT MAX(seq) FROM policy_approvals WHERE revision = ?), 0)`, revision, revision).Scan(&exists, &last)
	if err != nil {
		return fmt.Errorf("approve policy bundle %s: %w", revision, err)
	}
	if !exists {
		return fmt.Errorf("approve policy bundle %s: %w", revision, store.ErrNotFound)
	}
	return t.insertApproval(ctx, revision, last+1, a)
}

func (t *tx) insertApproval(ctx context.Context, revision string, seq int64, a store.PolicyApproval) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO policy_approvals (revision, seq, reviewer, time, comment) VALUES (?, ?, ?, ?, ?)`,
		revision, seq, a.Reviewer, formatTime(a.Time), a.Comment)
	if err != nil {
		return fmt.Errorf("approve policy bundle %s: %w", revision, err)
	}
	return nil
}

// Activations.

const activationColumns = `seq, revision, action, actor, time, comment`

func scanActivation(row interface{ Scan(dest ...any) error }) (store.PolicyActivation, error) {
	var a store.PolicyActivation
	var at string
	if err := row.Scan(&a.Seq, &a.Revision, &a.Action, &a.Actor, &at, &a.Comment); err != nil {
		return store.PolicyActivation{}, err
	}
	var err error
	if a.Time, err = parseTime(at); err != nil {
		return store.PolicyActivation{}, fmt.Errorf("policy activation %d: %w", a.Seq, err)
	}
	return a, nil
}

func activePolicy(ctx context.Context, q querier) (*store.PolicyActivation, error) {
	a, err := scanActivation(q.QueryRowContext(ctx, `SELECT `+activationColumns+` FROM policy_activations ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
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
	query, args := `SELECT `+activationColumns+` FROM policy_activations`, []any{}
	if f.Before > 0 {
		query += ` WHERE seq < ?`
		args = append(args, f.Before)
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY seq DESC LIMIT ?`, append(args, store.ActivationLimit(f.Limit))...)
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

// AppendPolicyActivation records a with the next Seq (writers are
// serialised, so max+1 read here is the seq the insert takes; the primary
// key would refuse a duplicate regardless). A non-empty revision must be a
// stored bundle (store.ErrNotFound otherwise).
func (t *tx) AppendPolicyActivation(ctx context.Context, a store.PolicyActivation) (store.PolicyActivation, error) {
	a, err := store.PreparePolicyActivation(a, t.s.now())
	if err != nil {
		return store.PolicyActivation{}, err
	}
	var exists bool
	err = t.q.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1, ? = '' OR EXISTS (SELECT 1 FROM policy_bundles WHERE revision = ?)
		FROM policy_activations`, a.Revision, a.Revision).Scan(&a.Seq, &exists)
	if err != nil {
		return store.PolicyActivation{}, fmt.Errorf("%s policy %q: %w", a.Action, a.Revision, err)
	}
	if !exists {
		return store.PolicyActivation{}, fmt.Errorf("%s policy: bundle %s: %w", a.Action, a.Revision, store.ErrNotFound)
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO policy_activations (`+activationColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		a.Seq, a.Revision, a.Action, a.Actor, formatTime(a.Time), a.Comment)
	if err != nil {
		return store.PolicyActivation{}, fmt.Errorf("%s policy %q (activation %d): %w", a.Action, a.Revision, a.Seq, err)
	}
	return a, nil
}

// Waivers.

const waiverColumns = `id, team, loop, rule, until, reason, granted_by, grant_time, revoked_by, revoke_time`

func scanWaiver(row interface{ Scan(dest ...any) error }) (store.Waiver, error) {
	var (
		w                 store.Waiver
		until, granted    string
		revokedBy, revoke sql.NullString
	)
	if err := row.Scan(&w.ID, &w.Team, &w.Loop, &w.Rule, &until, &w.Reason, &w.GrantedBy, &granted, &revokedBy, &revoke); err != nil {
		return store.Waiver{}, err
	}
	var err error
	if w.Until, err = parseTime(until); err != nil {
		return store.Waiver{}, fmt.Errorf("waiver %s: %w", w.ID, err)
	}
	if w.GrantTime, err = parseTime(granted); err != nil {
		return store.Waiver{}, fmt.Errorf("waiver %s: %w", w.ID, err)
	}
	w.RevokedBy = revokedBy.String
	if revoke.Valid {
		if w.RevokeTime, err = parseTime(revoke.String); err != nil {
			return store.Waiver{}, fmt.Errorf("waiver %s: %w", w.ID, err)
		}
	}
	return w, nil
}

func listWaivers(ctx context.Context, q querier, f store.WaiverFilter) ([]store.Waiver, error) {
	var where []string
	var args []any
	if f.Team != "" {
		where = append(where, "team = ?")
		args = append(args, f.Team)
	}
	if f.Loop != "" {
		where = append(where, "loop = ?")
		args = append(args, f.Loop)
	}
	if f.Teams != nil {
		if len(f.Teams) == 0 {
			return nil, nil
		}
		where = append(where, "team IN (?"+strings.Repeat(", ?", len(f.Teams)-1)+")")
		for _, team := range f.Teams {
			args = append(args, team)
		}
	}
	if !f.ActiveAt.IsZero() {
		// As store.Waiver.Active: not revoked, and ActiveAt before until.
		where = append(where, "revoke_time IS NULL AND until > ?")
		args = append(args, formatTime(f.ActiveAt))
	}
	if a := f.After; a != nil {
		// Keyset paging: the row value comparison is the ORDER BY below
		// (text compared as bytes; times stored in one fixed-width layout).
		where = append(where, "(team, loop, rule, grant_time, id) > (?, ?, ?, ?, ?)")
		args = append(args, a.Team, a.Loop, a.Rule, formatTime(a.GrantTime), a.ID)
	}
	query := `SELECT ` + waiverColumns + ` FROM waivers`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY team, loop, rule, grant_time, id`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := q.QueryContext(ctx, query, args...)
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

// PutWaiver stores w; store.ErrAlreadyExists if its id is taken.
func (t *tx) PutWaiver(ctx context.Context, w store.Waiver) error {
	w, err := store.PrepareWaiver(w, t.s.now())
	if err != nil {
		return err
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO waivers (`+waiverColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.ID, w.Team, w.Loop, w.Rule, formatTime(w.Until), w.Reason, w.GrantedBy, formatTime(w.GrantTime),
		nullString(w.RevokedBy), nullTime(w.RevokeTime))
	if isDuplicate(err) {
		return fmt.Errorf("waiver %s: %w", w.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("waiver %s: %w", w.ID, err)
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
	res, err := t.q.ExecContext(ctx, `UPDATE waivers SET revoked_by = ?, revoke_time = ? WHERE id = ? AND revoke_time IS NULL`,
		by, formatTime(at), id)
	if err != nil {
		return fmt.Errorf("revoke waiver %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke waiver %s: %w", id, err)
	} else if n == 1 {
		return nil
	}
	var exists bool
	if err := t.q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM waivers WHERE id = ?)`, id).Scan(&exists); err != nil {
		return fmt.Errorf("revoke waiver %s: %w", id, err)
	}
	if !exists {
		return fmt.Errorf("revoke waiver %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// Decisions.

const decisionColumns = `id, time, resource, operation, bundle_revision, result, input, input_digest, duration_us, kind`

func scanDecision(row interface{ Scan(dest ...any) error }) (store.Decision, error) {
	var (
		d                   store.Decision
		at, result          string
		input, digest, kind sql.NullString
		duration            sql.NullInt64
	)
	if err := row.Scan(&d.ID, &at, &d.Resource, &d.Operation, &d.BundleRevision, &result, &input, &digest, &duration, &kind); err != nil {
		return store.Decision{}, err
	}
	var err error
	if d.Time, err = parseTime(at); err != nil {
		return store.Decision{}, fmt.Errorf("decision %s: %w", d.ID, err)
	}
	d.Result = []byte(result)
	if input.Valid {
		d.Input = []byte(input.String)
	}
	d.InputDigest, d.Kind = digest.String, kind.String
	d.Duration = time.Duration(duration.Int64) * time.Microsecond
	return d, nil
}

func getDecision(ctx context.Context, q querier, id string) (*store.Decision, error) {
	d, err := scanDecision(q.QueryRowContext(ctx, `SELECT `+decisionColumns+` FROM decisions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("decision %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("decision %s: %w", id, err)
	}
	return &d, nil
}

// putDecision inserts d (prepared by store.PrepareDecision) and the rule
// ids its result names.
func putDecision(ctx context.Context, q querier, d store.Decision) error {
	result := string(d.Result)
	if result == "" {
		result = "null"
	}
	_, err := q.ExecContext(ctx, `INSERT INTO decisions (`+decisionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.ID, formatTime(d.Time), d.Resource, d.Operation, d.BundleRevision, result,
		nullText(d.Input), nullString(d.InputDigest), d.Duration.Microseconds(), nullString(d.Kind))
	if isDuplicate(err) {
		return fmt.Errorf("decision %s: %w", d.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("decision %s: %w", d.ID, err)
	}
	for _, rule := range store.DecisionRules(d.Result) {
		if _, err := q.ExecContext(ctx, `INSERT INTO decision_rules (rule, decision_id) VALUES (?, ?)`, rule, d.ID); err != nil {
			return fmt.Errorf("decision %s: index rule %s: %w", d.ID, rule, err)
		}
	}
	return nil
}

// listDecisions returns the decisions f selects, newest first (by time,
// then id). The rule filter is an exact match in decision_rules.
func listDecisions(ctx context.Context, q querier, f store.DecisionFilter) ([]store.Decision, error) {
	var where []string
	var args []any
	if f.Resource != "" {
		where = append(where, "resource = ?")
		args = append(args, f.Resource)
	}
	if f.Rule != "" {
		where = append(where, "id IN (SELECT decision_id FROM decision_rules WHERE rule = ?)")
		args = append(args, f.Rule)
	}
	if f.Kind != "" {
		where = append(where, "COALESCE(NULLIF(kind, ''), 'request') = ?")
		args = append(args, f.Kind)
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, formatTime(f.Since))
	}
	if f.Before != "" {
		var before string
		err := q.QueryRowContext(ctx, `SELECT time FROM decisions WHERE id = ?`, f.Before).Scan(&before)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("list decisions before %s: no such decision (pruned?); list again without a cursor: %w", f.Before, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("list decisions before %s: %w", f.Before, err)
		}
		where = append(where, "(time < ? OR (time = ? AND id < ?))")
		args = append(args, before, before, f.Before)
	}
	query := `SELECT ` + decisionColumns + ` FROM decisions`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, store.DecisionPageSize(f.Limit))
	rows, err := q.QueryContext(ctx, query+` ORDER BY time DESC, id DESC LIMIT ?`, args...)
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
// among the newest keep decisions (and their rule index rows).
func (t *tx) PruneDecisions(ctx context.Context, cutoff time.Time, keep int) (int64, error) {
	cond := `time < ?`
	args := []any{formatTime(cutoff)}
	if keep > 0 {
		// The keep-th newest decision: it and everything newer stay.
		var bt, bid string
		err := t.q.QueryRowContext(ctx, `SELECT time, id FROM decisions ORDER BY time DESC, id DESC LIMIT 1 OFFSET ?`, keep-1).Scan(&bt, &bid)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil // keep decisions or fewer: all stay
		}
		if err != nil {
			return 0, fmt.Errorf("prune decisions: %w", err)
		}
		cond += ` AND (time < ? OR (time = ? AND id < ?))`
		args = append(args, bt, bt, bid)
	}
	// decision_rules cascades, but the rows go explicitly too, so that
	// nothing depends on the foreign_keys pragma.
	if _, err := t.q.ExecContext(ctx, `DELETE FROM decision_rules WHERE decision_id IN (SELECT id FROM decisions WHERE `+cond+`)`, args...); err != nil {
		return 0, fmt.Errorf("prune decisions: %w", err)
	}
	res, err := t.q.ExecContext(ctx, `DELETE FROM decisions WHERE `+cond, args...)
	if err != nil {
		return 0, fmt.Errorf("prune decisions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune decisions: %w", err)
	}
	return n, nil
}
