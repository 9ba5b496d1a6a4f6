package policy

// Delta is how a decision changes from before to after (e.g. the same input
// under the active bundle and under a candidate one, or with and without a
// waiver). Violations are matched by rule id and field: a violation whose
// message changed is neither new nor resolved.
type Delta struct {
	Before   string    `json:"before"` // Verdict of the first decision
	After    string    `json:"after"`  // Verdict of the second decision
	Deny     KindDelta `json:"deny"`
	Warn     KindDelta `json:"warn"`
	Approval KindDelta `json:"approval"`
}

// KindDelta is the change of one of a decision's sets.
type KindDelta struct {
	// New are the violations in after and not in before, as after has them.
	New []Violation `json:"new"`
	// Resolved are the violations in before and not in after, as before has
	// them.
	Resolved []Violation `json:"resolved"`
}

// Compare returns what changed from before to after, per set (deny, warn,
// approval), keeping each decision's order.
func Compare(before, after Decision) Delta {
	return Delta{
		Before:   before.Verdict(),
		After:    after.Verdict(),
		Deny:     compareSet(before.Deny, after.Deny),
		Warn:     compareSet(before.Warn, after.Warn),
		Approval: compareSet(before.Approval, after.Approval),
	}
}

// Flips reports whether the verdict changes: allowed, needs approval and
// denied are three verdicts, and moving between any two is a flip.
func (d Delta) Flips() bool { return d.Before != d.After }

// Changed reports whether any set gained or lost a violation.
func (d Delta) Changed() bool {
	for _, k := range []KindDelta{d.Deny, d.Warn, d.Approval} {
		if len(k.New) > 0 || len(k.Resolved) > 0 {
			return true
		}
	}
	return false
}

type violationKey struct{ id, field string }

func compareSet(before, after []Violation) KindDelta {
	in := func(vs []Violation) map[violationKey]bool {
		m := make(map[violationKey]bool, len(vs))
		for _, v := range vs {
			m[violationKey{v.ID, v.Field}] = true
		}
		return m
	}
	inBefore, inAfter := in(before), in(after)
	k := KindDelta{New: []Violation{}, Resolved: []Violation{}}
	seen := map[violationKey]bool{}
	for _, v := range after {
		key := violationKey{v.ID, v.Field}
		if !inBefore[key] && !seen[key] {
			seen[key] = true
			k.New = append(k.New, v)
		}
	}
	clear(seen)
	for _, v := range before {
		key := violationKey{v.ID, v.Field}
		if !inAfter[key] && !seen[key] {
			seen[key] = true
			k.Resolved = append(k.Resolved, v)
		}
	}
	return k
}
