package cli

import (
	"fmt"

	"github.com/loopgate/loopgate/apimap"
	loopgatev1 "github.com/loopgate/loopgate/gen/loopgate/v1"
	"github.com/loopgate/loopgate/loop"
)

// toProto maps a loop read from a file (metadata and spec; status is output
// only and not sent) to its API form, with the mapping the server uses
// (package apimap), in the canonical units of package loop.
func toProto(l *loop.Loop) *loopgatev1.Loop { return apimap.LoopToProto(l) }

// fromProto maps a loop the server sent back to the file form: name, team,
// labels and spec; output-only fields and the status are dropped.
func fromProto(p *loopgatev1.Loop) (*loop.Loop, error) {
	l, err := apimap.LoopFromProto(p)
	if err != nil {
		return nil, fmt.Errorf("the server sent a loop loopctl cannot read: %w", err)
	}
	return l, nil
}
