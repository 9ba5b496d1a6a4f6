package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/loopgate/loopgate/loop"
)

// The helpers below are shared by the store implementations so that every
// backend stores and restores loops, and assigns server-set metadata, the
// same way.

// EncodeLoop returns the JSON documents a store keeps for l.
func EncodeLoop(l *loop.Loop) (metadata, spec, status []byte, err error) {
	if metadata, err = json.Marshal(l.Metadata); err != nil {
		return nil, nil, nil, fmt.Errorf("encode metadata: %w", err)
	}
	if spec, err = json.Marshal(l.Spec); err != nil {
		return nil, nil, nil, fmt.Errorf("encode spec: %w", err)
	}
	if status, err = json.Marshal(l.Status); err != nil {
		return nil, nil, nil, fmt.Errorf("encode status: %w", err)
	}
	return metadata, spec, status, nil
}

// DecodeLoop restores a loop from the JSON documents EncodeLoop made. The
// caller then overwrites the metadata fields it keeps in columns.
func DecodeLoop(team, name string, metadata, spec, status []byte) (*loop.Loop, error) {
	var l loop.Loop
	if err := json.Unmarshal(metadata, &l.Metadata); err != nil {
		return nil, fmt.Errorf("loop %s/%s: decode stored metadata: %w", team, name, err)
	}
	if err := json.Unmarshal(spec, &l.Spec); err != nil {
		return nil, fmt.Errorf("loop %s/%s: decode stored spec: %w", team, name, err)
	}
	if err := json.Unmarshal(status, &l.Status); err != nil {
		return nil, fmt.Errorf("loop %s/%s: decode stored status: %w", team, name, err)
	}
	return &l, nil
}

// NewLoopMetadata is the metadata CreateLoop stores: a UID (if empty),
// generation 1 (if 0), CreateTime (now, if zero), UpdateTime now and a
// fresh Etag, times cut to what every backend keeps exactly.
func NewLoopMetadata(m loop.Metadata, now time.Time) (loop.Metadata, error) {
	if m.Team == "" || m.Name == "" {
		return m, fmt.Errorf("create loop %q/%q: metadata.team and metadata.name are required", m.Team, m.Name)
	}
	now = Timestamp(now)
	if m.UID == "" {
		m.UID = NewUID()
	}
	if m.Generation == 0 {
		m.Generation = 1
	}
	if m.CreateTime.IsZero() {
		m.CreateTime = now
	}
	m.CreateTime = Timestamp(m.CreateTime)
	m.UpdateTime = now
	m.DeleteTime = Timestamp(m.DeleteTime)
	m.Etag = NewEtag()
	return m, nil
}
