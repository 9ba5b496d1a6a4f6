package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/store"
)

const auditColumns = `seq, id, time, actor, action, resource, request_id, decision_id, outcome, details, prev_hash, hash`

// AppendAudit seals ev onto the last stored event (see audit.Seal) and
// inserts it. Writers are serialised, so the head read here is the head
// the insert extends; the seq primary key would refuse a fork regardless.
//
// ev is first cut to the audit size limits (audit.Bound), before it is
// sealed: the hash covers the event as stored.
func (t *tx) AppendAudit(ctx context.Context, ev audit.Event) (audit.Event, error) {
	ev = audit.Bound(ev)
	var seq int64
	var prev string
	if err := t.q.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head`).Scan(&seq, &prev); err != nil {
		return audit.Event{}, fmt.Errorf("append audit event %s on %s: read the chain head: %w", ev.Action, ev.Resource, err)
	}
	sealed, err := audit.Seal(ev, seq+1, prev, t.s.now())
	if err != nil {
		return audit.Event{}, fmt.Errorf("append audit event: %w", err)
	}
	var details sql.NullString
	if sealed.Details != nil {
		details = sql.NullString{String: string(sealed.Details), Valid: true}
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO audit_events (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sealed.Seq, sealed.ID, formatTime(sealed.Time), sealed.Actor, sealed.Action, sealed.Resource,
		sealed.RequestID, sealed.DecisionID, sealed.Outcome, details, sealed.PrevHash, sealed.Hash)
	if isDuplicate(err) {
		return audit.Event{}, fmt.Errorf("append audit event %s: %w (event ids must be unique)", sealed.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return audit.Event{}, fmt.Errorf("append audit event %d: %w", sealed.Seq, err)
	}
	if _, err := t.q.ExecContext(ctx, `UPDATE audit_head SET seq = ?, hash = ?`, sealed.Seq, sealed.Hash); err != nil {
		return audit.Event{}, fmt.Errorf("append audit event %s: move the chain head: %w", sealed.ID, err)
	}
	return sealed, nil
}

// ListAudit returns events matching every non-empty field of f, by Seq
// (newest first with f.Newest).
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]audit.Event, error) {
	where := []string{"seq > ?"}
	args := []any{f.AfterSeq}
	for _, c := range []struct{ col, val string }{
		{"resource", f.Resource}, {"actor", f.Actor}, {"action", f.Action},
	} {
		if c.val != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.val)
		}
	}
	if f.Team != "" {
		// The team itself, or a range scan of the resource index over
		// "teams/T/" .. "teams/T0" ('0' follows '/').
		team := "teams/" + f.Team
		where = append(where, "(resource = ? OR (resource >= ? AND resource < ?))")
		args = append(args, team, team+"/", team+"0")
	}
	// Times are stored in one fixed-width UTC layout, so they compare as text.
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, formatTime(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, formatTime(f.Until))
	}
	order := "seq"
	if f.Newest {
		order = "seq DESC"
		if f.BeforeSeq > 0 {
			where = append(where, "seq < ?")
			args = append(args, f.BeforeSeq)
		}
	}
	args = append(args, store.AuditPageSize(f.PageSize))
	rows, err := s.reader.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE `+
		strings.Join(where, " AND ")+` ORDER BY `+order+` LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	out, err := store.ScanAll(rows, func(r store.Rows) (audit.Event, error) { return scanEvent(r) })
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return out, nil
}

// VerifyAudit streams the whole chain, in Seq order, through
// store.VerifyChain (memory use does not grow with the chain), reading the
// events and the chain head in one read transaction, so one snapshot.
func (s *Store) VerifyAudit(ctx context.Context) (audit.VerifyResult, error) {
	rtx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return audit.VerifyResult{}, fmt.Errorf("verify audit chain: %w", err)
	}
	defer rtx.Rollback() //nolint:errcheck // read only
	var head store.ChainHead
	if err := rtx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head`).Scan(&head.Seq, &head.Hash); err != nil {
		return audit.VerifyResult{}, fmt.Errorf("verify audit chain: read the chain head: %w", err)
	}
	rows, err := rtx.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_events ORDER BY seq`)
	if err != nil {
		return audit.VerifyResult{}, fmt.Errorf("verify audit chain: %w", err)
	}
	defer rows.Close()
	res, err := store.VerifyChain(rows, func(r store.Rows) (audit.Event, error) { return scanEvent(r) }, head)
	if err != nil {
		return audit.VerifyResult{}, fmt.Errorf("verify audit chain: %w", err)
	}
	return res, nil
}

func scanEvent(rows interface{ Scan(dest ...any) error }) (audit.Event, error) {
	var ev audit.Event
	var t string
	var details sql.NullString
	if err := rows.Scan(&ev.Seq, &ev.ID, &t, &ev.Actor, &ev.Action, &ev.Resource, &ev.RequestID,
		&ev.DecisionID, &ev.Outcome, &details, &ev.PrevHash, &ev.Hash); err != nil {
		return audit.Event{}, err
	}
	var err error
	if ev.Time, err = parseTime(t); err != nil {
		return audit.Event{}, fmt.Errorf("audit event %d: %w", ev.Seq, err)
	}
	if details.Valid {
		ev.Details = []byte(details.String)
	}
	return ev, nil
}
