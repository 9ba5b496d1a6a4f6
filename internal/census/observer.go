package census

import (
	lgv1 "github.com/loopgate/loopgate/gen/loopgate/v1"
)

// WithObserver adds to want what a cluster with loopgate's observer
// principal holds for the stored loops (docs/slo.md): the observer's SCRAM
// user (loopgate issues it when it starts sampling) and READ + DESCRIBE on
// the action topic of every loop on the cluster that has one.
func (want Census) WithObserver(loops []*lgv1.Loop, clusterName, observer string) Census {
	if observer == "" {
		return want
	}
	want.SCRAM[observer] = true
	for _, l := range loops {
		st := l.GetStatus()
		action := l.GetSpec().GetAction().GetStream()
		if st.GetCluster() != clusterName || action == "" {
			continue
		}
		for _, s := range st.GetStreams() {
			if s.GetCluster() == clusterName && s.GetStream() == action {
				want.ACLs["User:"+observer+" READ TOPIC "+s.GetTopic()] = true
				want.ACLs["User:"+observer+" DESCRIBE TOPIC "+s.GetTopic()] = true
			}
		}
	}
	return want
}
