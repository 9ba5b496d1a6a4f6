package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

func loopIn(state loopgatev1.Loop_State, generation, observed int64) *loopgatev1.Loop {
	return &loopgatev1.Loop{Name: "teams/growth/loops/x", Generation: generation,
		Status: &loopgatev1.LoopStatus{State: state, ObservedGeneration: observed}}
}

func TestJudgeWaitsForTheCurrentGeneration(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    *loopgatev1.Loop
		want waitVerdict
	}{
		{"ready for the current generation", loopIn(loopgatev1.Loop_READY, 2, 2), doneReady},
		// Right after an update, READY still describes generation 1.
		{"ready for an older generation", loopIn(loopgatev1.Loop_READY, 2, 1), keepWaiting},
		{"failed for the current generation", loopIn(loopgatev1.Loop_FAILED, 2, 2), doneFailed},
		{"failed for an older generation", loopIn(loopgatev1.Loop_FAILED, 2, 1), keepWaiting},
		{"pending approval", loopIn(loopgatev1.Loop_PENDING_APPROVAL, 1, 0), doneAwaitsAdmin},
		{"rejected", loopIn(loopgatev1.Loop_REJECTED, 2, 1), doneRejected},
		{"provisioning", loopIn(loopgatev1.Loop_PROVISIONING, 1, 1), keepWaiting},
		{"no status yet", &loopgatev1.Loop{Generation: 1}, keepWaiting},
	} {
		if got := judge(tc.l); got != tc.want {
			t.Errorf("%s: judge = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestJudgeDeletionWaitsUntilTheDeletionFailed(t *testing.T) {
	deleting := func(state loopgatev1.Loop_State, deleteTime bool, inSync ...string) *loopgatev1.Loop {
		l := loopIn(state, 1, 1)
		if deleteTime {
			l.DeleteTime = timestamppb.Now()
		}
		if len(inSync) == 2 {
			l.Status.Conditions = []*loopgatev1.Condition{{Type: "InSync", Status: inSync[0], Reason: inSync[1], Message: "m"}}
		}
		return l
	}
	for _, tc := range []struct {
		name string
		l    *loopgatev1.Loop
		want waitVerdict
	}{
		{"deletion requested", deleting(loopgatev1.Loop_DELETING, true, "False", "Deleting"), keepWaiting},
		{"deletion failed", deleting(loopgatev1.Loop_DELETING, true, "False", "KafkaError"), doneFailed},
		{"deleting, no condition yet", deleting(loopgatev1.Loop_DELETING, true), keepWaiting},
		{"FAILED while being deleted", deleting(loopgatev1.Loop_FAILED, true), doneFailed},
		// Not a deletion's failure: waiting goes on (the timeout names it).
		{"FAILED, no deletion requested", deleting(loopgatev1.Loop_FAILED, false), keepWaiting},
		{"READY", deleting(loopgatev1.Loop_READY, false, "True", "Provisioned"), keepWaiting},
	} {
		if got := judgeDeletion(tc.l); got != tc.want {
			t.Errorf("%s: judgeDeletion = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestProgressPrintsOnlyChanges(t *testing.T) {
	var (
		p   progress
		buf bytes.Buffer
	)
	l := loopIn(loopgatev1.Loop_PROVISIONING, 1, 1)
	l.Status.Conditions = []*loopgatev1.Condition{{Type: "Provisioned", Status: "Unknown", Reason: "Pending"}}
	p.report(&buf, l)
	p.report(&buf, l) // nothing changed: nothing printed
	l.Status.State = loopgatev1.Loop_READY
	l.Status.Conditions[0] = &loopgatev1.Condition{Type: "Provisioned", Status: "True", Reason: "Provisioned", Message: "all resources exist"}
	p.report(&buf, l)

	want := "  state PROVISIONING\n" +
		"  condition Provisioned=Unknown (Pending)\n" +
		"  state READY\n" +
		"  condition Provisioned=True (Provisioned): all resources exist\n"
	if buf.String() != want {
		t.Errorf("progress printed\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestBackoffGrowsToOneSecond(t *testing.T) {
	b := newBackoff()
	var got []time.Duration
	for range 8 {
		got = append(got, b.next())
	}
	if got[0] != 100*time.Millisecond || got[1] != 150*time.Millisecond {
		t.Errorf("first intervals %v, want 100ms then 150ms", got[:2])
	}
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] || got[i] > time.Second {
			t.Errorf("interval %d = %v after %v: must grow and stay at most 1s", i, got[i], got[i-1])
		}
	}
	if got[len(got)-1] != time.Second {
		t.Errorf("last interval %v, want capped at 1s", got[len(got)-1])
	}
}

func TestFailureReasonNamesTheFalseCondition(t *testing.T) {
	l := loopIn(loopgatev1.Loop_FAILED, 1, 1)
	l.Status.Conditions = []*loopgatev1.Condition{
		{Type: "PolicyCompliant", Status: "True"},
		{Type: "Provisioned", Status: "False", Reason: "TopicCreateFailed", Message: "INVALID_REPLICATION_FACTOR"},
	}
	if got := failureReason(l); got != "Provisioned: INVALID_REPLICATION_FACTOR" {
		t.Errorf("failureReason = %q", got)
	}
	if got := failureReason(loopIn(loopgatev1.Loop_FAILED, 1, 1)); !strings.Contains(got, "loopctl get growth/x") {
		t.Errorf("failureReason without conditions = %q", got)
	}
}
