package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/loopgate/loopgate/audit"
	"github.com/loopgate/loopgate/store"
)

// AppendAudit appends ev to the chain (see store.Tx). It locks the
// audit_head row until the transaction ends, so concurrent appenders —
// in this process or another — queue up and each links to the one
// committed before it: no fork, no gap (a rolled-back append releases
// its seq along with the lock).
//
// ev is first cut to the audit size limits (audit.Bound), before it is
// sealed: the hash covers the event as stored.
func (t *tx) AppendAudit(ctx context.Context, ev audit.Event) (audit.Event, error) {
	ev = audit.Bound(ev)
	var last int64
	var lastHash string
	if err := t.q.QueryRow(ctx, `SELECT seq, hash FROM audit_head FOR UPDATE`).Scan(&last, &lastHash); err != nil {
		return audit.Event{}, fmt.Errorf("append audit event %s on %s: read the chain head: %w", ev.Action, ev.Resource, err)
	}
	sealed, err := audit.Seal(ev, last+1, lastHash, t.s.now())
	if err != nil {
		return audit.Event{}, fmt.Errorf("append audit event: %w", err)
	}
	var details any // NULL when there are none
	if sealed.Details != nil {
		details = string(sealed.Details)
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO audit_events
		(seq, id, time, actor, action, resource, request_id, decision_id, outcome, details, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO NOTHING`,
		sealed.Seq, sealed.ID, sealed.Time, sealed.Actor, sealed.Action, sealed.Resource,
		sealed.RequestID, sealed.DecisionID, sealed.Outcome, details, sealed.PrevHash, sealed.Hash)
	if err != nil {
		return audit.Event{}, fmt.Errorf("append audit event %s: %w", sealed.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return audit.Event{}, fmt.Errorf("append audit event %s: an event with this id was already appended: %w", sealed.ID, store.ErrAlreadyExists)
	}
	if _, err := t.q.Exec(ctx, `UPDATE audit_head SET seq = $1, hash = $2`, sealed.Seq, sealed.Hash); err != nil {
		return audit.Event{}, fmt.Errorf("append audit event %s: move the chain head: %w", sealed.ID, err)
	}
	return sealed, nil
}

const auditColumns = `seq, id, time, actor, action, resource, request_id, decision_id, outcome, details, prev_hash, hash`

func scanEvent(row pgx.Row) (audit.Event, error) {
	var ev audit.Event
	var details *string
	if err := row.Scan(&ev.Seq, &ev.ID, &ev.Time, &ev.Actor, &ev.Action, &ev.Resource,
		&ev.RequestID, &ev.DecisionID, &ev.Outcome, &details, &ev.PrevHash, &ev.Hash); err != nil {
		return audit.Event{}, err
	}
	ev.Time = ev.Time.UTC()
	if details != nil {
		ev.Details = json.RawMessage(*details)
	}
	return ev, nil
}

// ListAudit returns the events matching f, ordered by Seq (newest first
// with f.Newest).
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]audit.Event, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where = append(where, "seq > "+arg(f.AfterSeq))
	if f.Resource != "" {
		where = append(where, "resource = "+arg(f.Resource))
	}
	if f.Actor != "" {
		where = append(where, "actor = "+arg(f.Actor))
	}
	if f.Action != "" {
		where = append(where, "action = "+arg(f.Action))
	}
	if f.Team != "" {
		// The team itself or anything under it. starts_with, not a range:
		// the column has the database's collation, whose order need not be
		// byte order.
		team := "teams/" + f.Team
		where = append(where, "(resource = "+arg(team)+" OR starts_with(resource, "+arg(team+"/")+"))")
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(store.Timestamp(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+arg(store.Timestamp(f.Until)))
	}
	order := "seq"
	if f.Newest {
		order = "seq DESC"
		if f.BeforeSeq > 0 {
			where = append(where, "seq < "+arg(f.BeforeSeq))
		}
	}
	query := `SELECT ` + auditColumns + ` FROM audit_events WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY ` + order + ` LIMIT ` + arg(store.AuditPageSize(f.PageSize))
	rows, err := s.pool.Query(ctx, query, args...)
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

// VerifyAudit recomputes the whole chain in Seq order, streaming it from
// one snapshot (constant memory). It also checks the chain against
// audit_head, which catches events cut off the end of the chain — a
// truncation the hashes alone cannot reveal.
func (s *Store) VerifyAudit(ctx context.Context) (audit.VerifyResult, error) {
	var res audit.VerifyResult
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(t pgx.Tx) error {
		var head store.ChainHead
		if err := t.QueryRow(ctx, `SELECT seq, hash FROM audit_head`).Scan(&head.Seq, &head.Hash); err != nil {
			return fmt.Errorf("read the chain head: %w", err)
		}
		rows, err := t.Query(ctx, `SELECT `+auditColumns+` FROM audit_events ORDER BY seq`)
		if err != nil {
			return err
		}
		defer rows.Close()
		res, err = store.VerifyChain(rows, func(r store.Rows) (audit.Event, error) { return scanEvent(r) }, head)
		if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return audit.VerifyResult{}, fmt.Errorf("verify audit chain: %w", err)
	}
	return res, nil
}

// PutDecision records d (see store.PrepareDecision) and indexes the rule
// ids its result names; store.ErrAlreadyExists if its id is taken (the
// transaction stays usable).
func (t *tx) PutDecision(ctx context.Context, d store.Decision) error {
	d, err := store.PrepareDecision(d, t.s.now())
	if err != nil {
		return err
	}
	result := string(d.Result)
	if strings.TrimSpace(result) == "" {
		result = "null"
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO decisions
		(id, time, resource, operation, bundle_revision, result, input, input_digest, duration_us, kind)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
		d.ID, d.Time, d.Resource, d.Operation, d.BundleRevision, result,
		jsonText(d.Input), nullString(d.InputDigest), d.Duration.Microseconds(), nullString(d.Kind))
	if err != nil {
		return fmt.Errorf("decision %s: %w", d.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("decision %s: %w", d.ID, store.ErrAlreadyExists)
	}
	if rules := store.DecisionRules(d.Result); len(rules) > 0 {
		if _, err := t.q.Exec(ctx, `INSERT INTO decision_rules (rule, decision_id) SELECT unnest($1::text[]), $2`,
			rules, d.ID); err != nil {
			return fmt.Errorf("decision %s: index rules: %w", d.ID, err)
		}
	}
	return nil
}

// GetDecision returns a recorded policy decision; store.ErrNotFound if
// there is none with this id.
func (s *Store) GetDecision(ctx context.Context, id string) (*store.Decision, error) {
	d, err := scanDecision(s.pool.QueryRow(ctx, `SELECT `+decisionColumns+` FROM decisions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("decision %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("decision %s: %w", id, err)
	}
	return &d, nil
}

// GetRequest returns what requestID was first used for, if it was recorded.
func (s *Store) GetRequest(ctx context.Context, requestID string) (store.Request, bool, error) {
	return getRequest(ctx, s.pool, requestID)
}

func (t *tx) GetRequest(ctx context.Context, requestID string) (store.Request, bool, error) {
	return getRequest(ctx, t.q, requestID)
}

func getRequest(ctx context.Context, q querier, requestID string) (store.Request, bool, error) {
	r := store.Request{ID: requestID}
	err := q.QueryRow(ctx,
		`SELECT subject, method, resource, hash, create_time FROM requests WHERE request_id = $1`, requestID).
		Scan(&r.Subject, &r.Method, &r.Resource, &r.Hash, &r.Time)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Request{}, false, nil
	}
	if err != nil {
		return store.Request{}, false, fmt.Errorf("request %s: %w", requestID, err)
	}
	r.Time = r.Time.UTC()
	return r, true, nil
}

// PutRequest records what r.ID is used for; store.ErrAlreadyExists if the
// id is recorded (the first record stays, and the transaction stays usable).
func (t *tx) PutRequest(ctx context.Context, r store.Request) error {
	if r.ID == "" {
		return errors.New("put request: empty request id")
	}
	if r.Time.IsZero() {
		r.Time = t.s.now()
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO requests (request_id, subject, method, resource, hash, create_time)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id) DO NOTHING`,
		r.ID, r.Subject, r.Method, r.Resource, r.Hash, store.Timestamp(r.Time))
	if err != nil {
		return fmt.Errorf("request %s: %w", r.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("request %s: %w", r.ID, store.ErrAlreadyExists)
	}
	return nil
}
