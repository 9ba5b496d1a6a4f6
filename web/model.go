package web

import (
	"sort"
	"strings"

	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// loopRow is one loop as the overview and the team page list it.
type loopRow struct {
	Key, Team, Name  string
	Description      string
	Owners           []string
	State, StateName string // "Ready", "READY"
	Compliant        bool
	Compliance       string
	Region           string
	SLO              string // Met, Breached, Unknown, —
	Partitions       int64
	Monthly          float64
	Currency         string
}

func splitLoopName(name string) (team, loop string) {
	parts := strings.Split(name, "/")
	if len(parts) == 4 && parts[0] == "teams" && parts[2] == "loops" {
		return parts[1], parts[3]
	}
	return "", name
}

func humanState(s lgv1.Loop_State) string {
	switch s {
	case lgv1.Loop_PENDING_APPROVAL:
		return "Pending approval"
	case lgv1.Loop_PROVISIONING:
		return "Provisioning"
	case lgv1.Loop_READY:
		return "Ready"
	case lgv1.Loop_FAILED:
		return "Failed"
	case lgv1.Loop_DELETING:
		return "Deleting"
	case lgv1.Loop_REJECTED:
		return "Rejected"
	}
	return "Unknown"
}

// loopStates are the states the overview filters by, in lifecycle order.
var loopStates = []lgv1.Loop_State{lgv1.Loop_PENDING_APPROVAL, lgv1.Loop_PROVISIONING, lgv1.Loop_READY,
	lgv1.Loop_FAILED, lgv1.Loop_DELETING, lgv1.Loop_REJECTED}

// complianceCondition is the loop's PolicyCompliant condition: set at
// admission and again whenever a newly activated bundle re-evaluates it.
func complianceCondition(l *lgv1.Loop) *lgv1.Condition {
	for _, c := range l.GetStatus().GetConditions() {
		if c.GetType() == "PolicyCompliant" {
			return c
		}
	}
	return nil
}

// compliant: the PolicyCompliant condition is True (under the active
// bundle), or, without one, the admission verdict allowed the loop.
func compliant(l *lgv1.Loop) bool {
	if c := complianceCondition(l); c != nil {
		return c.GetStatus() == "True"
	}
	pv := l.GetStatus().GetPolicy()
	return pv != nil && pv.GetAllowed() && len(pv.GetDeny()) == 0
}

func sloText(s *lgv1.SloStatus) string {
	if s == nil {
		return "—"
	}
	switch s.GetState() {
	case lgv1.SloStatus_MET:
		return "Met"
	case lgv1.SloStatus_BREACHED:
		return "Breached"
	}
	return "Unknown"
}

func regionOf(l *lgv1.Loop) string {
	for _, s := range l.GetStatus().GetStreams() {
		if s.GetRegion() != "" {
			return s.GetRegion()
		}
	}
	return l.GetSpec().GetResidency()
}

// partitionsOf is the loop's partitions as admitted (declared or derived),
// or, before admission recorded them, the declared ones.
func partitionsOf(l *lgv1.Loop) int64 {
	if p := l.GetStatus().GetPartitions(); p > 0 {
		return int64(p)
	}
	var n int64
	for _, s := range l.GetSpec().GetStreams() {
		if !s.GetExternal() {
			n += int64(s.GetPartitions())
		}
	}
	return n
}

func rowOf(l *lgv1.Loop) loopRow {
	team, name := splitLoopName(l.GetName())
	r := loopRow{
		Key: team + "/" + name, Team: team, Name: name, Description: l.GetSpec().GetDescription(),
		Owners: l.GetSpec().GetOwners(), State: humanState(l.GetStatus().GetState()),
		StateName: l.GetStatus().GetState().String(), Compliant: compliant(l), Region: regionOf(l),
		SLO: sloText(l.GetStatus().GetSlo()), Partitions: partitionsOf(l),
		Monthly: l.GetStatus().GetCost().GetMonthlyTotal(), Currency: l.GetStatus().GetCost().GetCurrency(),
	}
	r.Compliance = "Not compliant"
	if r.Compliant {
		r.Compliance = "Compliant"
	}
	return r
}

// filters are the overview's filters, from the query.
type filters struct {
	Q, Team, State, Compliance, Region, SLO string
}

func (f filters) match(r *loopRow) bool {
	if f.Q != "" {
		q := strings.ToLower(f.Q)
		hay := strings.ToLower(r.Key + " " + r.Description + " " + strings.Join(r.Owners, " "))
		if !strings.Contains(hay, q) {
			return false
		}
	}
	if f.Team != "" && !strings.EqualFold(f.Team, r.Team) {
		return false
	}
	if f.State != "" && !strings.EqualFold(f.State, r.StateName) && !strings.EqualFold(f.State, r.State) {
		return false
	}
	switch strings.ToLower(f.Compliance) {
	case "compliant":
		if !r.Compliant {
			return false
		}
	case "noncompliant", "not-compliant":
		if r.Compliant {
			return false
		}
	}
	if f.Region != "" && !strings.EqualFold(f.Region, r.Region) {
		return false
	}
	if f.SLO != "" {
		s := strings.ToLower(r.SLO)
		if s == "—" {
			s = "unknown"
		}
		if s != strings.ToLower(f.SLO) {
			return false
		}
	}
	return true
}

// count is one labelled number of the counts at a glance.
type count struct {
	Label string
	N     int
	Href  string
}

type counts struct {
	Total                           int
	States                          []count
	Compliant, NotCompliant         int
	SLOMet, SLOBreached, SLOUnknown int
}

func countRows(rows []loopRow) counts {
	c := counts{Total: len(rows)}
	by := map[string]int{}
	for i := range rows {
		r := &rows[i]
		by[r.StateName]++
		if r.Compliant {
			c.Compliant++
		} else {
			c.NotCompliant++
		}
		switch r.SLO {
		case "Met":
			c.SLOMet++
		case "Breached":
			c.SLOBreached++
		default:
			c.SLOUnknown++
		}
	}
	for _, s := range loopStates {
		if n := by[s.String()]; n > 0 {
			c.States = append(c.States, count{Label: humanState(s), N: n, Href: "/?state=" + s.String()})
		}
	}
	return c
}

func sortRows(rows []loopRow) {
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
}
