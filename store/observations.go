package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"time"

	"github.com/loopgate/loopgate/loop"
)

// observations.go: what loopgate observes of a running loop — how it meets
// its producer-to-action latency SLO and how far its consumer groups lag —
// written by the process that runs the reconciler (package slo) and read by
// every replica (GetLoop maps it into the loop's status). See docs/slo.md.

// Observation is the last observed SLO status and consumer lag of one loop,
// with the SLOMet and Fresh conditions (and their transition times).
type Observation struct {
	Team string `json:"-"`
	Name string `json:"-"`
	// UID is the loop's uid when observed: an observation of an earlier
	// loop of the same name is never shown for a new one.
	UID        string           `json:"uid,omitempty"`
	UpdateTime time.Time        `json:"-"`
	SLO        *SLOObservation  `json:"slo,omitempty"`
	Lag        []GroupLag       `json:"lag,omitempty"`
	Conditions []loop.Condition `json:"conditions,omitempty"`
}

// SLOObservation is how a loop meets its latency SLO.
type SLOObservation struct {
	State       string          `json:"state"` // MET | BREACHED | UNKNOWN
	Reason      string          `json:"reason"`
	Message     string          `json:"message,omitempty"`
	TargetP99Ms int64           `json:"targetP99Ms"`
	Windows     []LatencyWindow `json:"windows,omitempty"`
	ObserveTime time.Time       `json:"observeTime,omitzero"`
	// Days are the UTC days of the 28-day window with sampled records,
	// oldest first.
	Days []LatencyDay `json:"days,omitempty"`
}

// LatencyDay is the latency over one UTC day.
type LatencyDay struct {
	Day                  string  `json:"day"` // YYYY-MM-DD
	P50Ms                float64 `json:"p50Ms"`
	P99Ms                float64 `json:"p99Ms"`
	Records              int64   `json:"records"`
	RecordsOverTarget    int64   `json:"recordsOverTarget"`
	RecordsWithoutHeader int64   `json:"recordsWithoutHeader"`
}

// LatencyWindow is the latency over one window (1m, 1h, 28d).
type LatencyWindow struct {
	Window               string  `json:"window"`
	P50Ms                float64 `json:"p50Ms"`
	P90Ms                float64 `json:"p90Ms"`
	P99Ms                float64 `json:"p99Ms"`
	Records              int64   `json:"records"`
	RecordsWithoutHeader int64   `json:"recordsWithoutHeader"`
	RecordsOverTarget    int64   `json:"recordsOverTarget"`
	ErrorBudgetRemaining float64 `json:"errorBudgetRemaining"`
}

// GroupLag is one consumer group's lag.
type GroupLag struct {
	Group       string         `json:"group"`
	OffsetLag   int64          `json:"offsetLag"`
	TimeLagMs   int64          `json:"timeLagMs"`
	FreshnessMs int64          `json:"freshnessMs,omitempty"`
	Partitions  []PartitionLag `json:"partitions,omitempty"`
	ObserveTime time.Time      `json:"observeTime,omitzero"`
}

// PartitionLag is one partition's lag for one group.
type PartitionLag struct {
	Topic           string `json:"topic"`
	Partition       int32  `json:"partition"`
	CommittedOffset int64  `json:"committedOffset"`
	EndOffset       int64  `json:"endOffset"`
	OffsetLag       int64  `json:"offsetLag"`
	TimeLagMs       int64  `json:"timeLagMs"`
}

// DailySketch is one UTC day of a loop's sampled latencies: a serialized
// DDSketch (milliseconds) and the day's counts. The 28-day window is merged
// from these, so it survives restarts and leader changes.
type DailySketch struct {
	Team string
	Name string
	// Day is the day's start (UTC midnight).
	Day                  time.Time
	Sketch               []byte
	Records              int64
	RecordsWithoutHeader int64
	RecordsOverTarget    int64
}

// DecodeObservation restores an observation from its stored document (the
// JSON of Observation); the caller sets Team, Name and UpdateTime. As
// DecodeLoop, it keeps what it decoded by the document's SHA-256: listing
// the observations of 1,000 loops spent most of its time in encoding/json,
// and an observation changes only when what it says changes. Every caller
// gets its own copy.
func DecodeObservation(doc []byte) (*Observation, error) {
	key := sha256.Sum256(doc)
	if o, ok := decodedObservations.get(key); ok {
		return copyObservation(o), nil
	}
	o := &Observation{}
	if err := json.Unmarshal(doc, o); err != nil {
		return nil, err
	}
	decodedObservations.put(key, o, len(doc))
	return copyObservation(o), nil
}

var decodedObservations = newDocCache[*Observation]()

// copyObservation is a deep copy: nothing the copy holds is shared with o.
// TestCopyObservationCoversEveryField fails when a field is added that
// this does not copy.
func copyObservation(o *Observation) *Observation {
	out := *o
	if o.SLO != nil {
		slo := *o.SLO
		slo.Windows = slices.Clone(slo.Windows)
		slo.Days = slices.Clone(slo.Days)
		out.SLO = &slo
	}
	out.Lag = slices.Clone(o.Lag)
	for i := range out.Lag {
		out.Lag[i].Partitions = slices.Clone(out.Lag[i].Partitions)
	}
	out.Conditions = slices.Clone(o.Conditions)
	return &out
}

// LoopKey is a loop's (team, name).
type LoopKey struct{ Team, Name string }

// KeyRange is a range of loop keys in (team, name) order, both ends
// included; a zero end is unbounded. A page of ListLoops, from its first
// loop to its last, is one.
type KeyRange struct{ From, To LoopKey }

// Observations is the part of a Store that keeps loop observations.
// Observation rows belong to their loop: DeleteLoop removes them, and rows
// of a loop that does not exist are never written.
type Observations interface {
	// GetObservation returns the observation of team/name, or ErrNotFound.
	GetObservation(ctx context.Context, team, name string) (*Observation, error)
	// ListObservations returns the observations of the loops in r (every
	// observation for a zero r), ordered by (team, name).
	ListObservations(ctx context.Context, r KeyRange) ([]*Observation, error)
	// PutObservations writes obs and days in one transaction, replacing
	// what is stored for the same loop (and day); entries of loops that
	// do not exist (any more) are skipped. Days before pruneBefore (when
	// not zero) are deleted in the same transaction.
	PutObservations(ctx context.Context, obs []Observation, days []DailySketch, pruneBefore time.Time) error
	// ListDailySketches returns the daily sketches of days at or after
	// since, ordered by (team, name, day).
	ListDailySketches(ctx context.Context, since time.Time) ([]DailySketch, error)
}
