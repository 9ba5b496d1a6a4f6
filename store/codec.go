package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
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
//
// Decoding is most of what reading a loop costs (a listing of 1,000 loops
// spent ~60 ms in encoding/json), so decoded loops are kept by the SHA-256
// of their three documents: documents read again unchanged are copied from
// the decoded loop instead of decoded. The key is the stored content
// itself, so a write (any changed byte) is never answered from the cache.
// Every caller gets its own deep copy (copyLoop) and may change it.
func DecodeLoop(team, name string, metadata, spec, status []byte) (*loop.Loop, error) {
	key := loopDocsKey(metadata, spec, status)
	if l, ok := decodedLoops.get(key); ok {
		return copyLoop(l), nil
	}
	l, err := decodeLoop(team, name, metadata, spec, status)
	if err != nil {
		return nil, err
	}
	decodedLoops.put(key, l, len(metadata)+len(spec)+len(status))
	return copyLoop(l), nil
}

// decodeLoop is DecodeLoop without the cache.
func decodeLoop(team, name string, metadata, spec, status []byte) (*loop.Loop, error) {
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

// Bounds of the decode caches. Each keeps what was decoded in the current
// generation and the previous one; a generation ends at
// decodedPerGeneration entries or decodedBytesPerGeneration bytes of stored
// documents, whichever comes first, so a cache holds at most twice either
// (a listing of up to that many loops is decoded once, whatever its order;
// beyond it, a full scan of a larger estate decodes as before). Documents
// larger than decodedMaxDocBytes are decoded every time, never kept: no
// team's large loops can make the cache hold more than its budget.
const (
	decodedPerGeneration      = 4096
	decodedBytesPerGeneration = 16 << 20
	decodedMaxDocBytes        = 64 << 10
)

var decodedLoops = newDocCache[*loop.Loop]()

// docCache maps the key of stored documents to what they decode to. Its
// values are never handed out or changed: readers get copies.
type docCache[T any] struct {
	mu                 sync.Mutex
	max, maxBytes      int
	cur, old           map[[sha256.Size]byte]docEntry[T]
	curBytes, oldBytes int
}

type docEntry[T any] struct {
	v    T
	size int // bytes of the stored documents
}

func newDocCache[T any]() *docCache[T] {
	return &docCache[T]{max: decodedPerGeneration, maxBytes: decodedBytesPerGeneration}
}

func (c *docCache[T]) get(k [sha256.Size]byte) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cur[k]; ok {
		return e.v, true
	}
	if e, ok := c.old[k]; ok {
		c.putLocked(k, e) // still in use: keep it past the next rotation
		return e.v, true
	}
	var zero T
	return zero, false
}

// put keeps v, decoded from size bytes of documents (not when larger than
// decodedMaxDocBytes).
func (c *docCache[T]) put(k [sha256.Size]byte, v T, size int) {
	if size > decodedMaxDocBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, docEntry[T]{v: v, size: size})
}

func (c *docCache[T]) putLocked(k [sha256.Size]byte, e docEntry[T]) {
	if c.cur == nil || len(c.cur) >= c.max || c.curBytes+e.size > c.maxBytes {
		c.old, c.oldBytes = c.cur, c.curBytes
		c.cur, c.curBytes = make(map[[sha256.Size]byte]docEntry[T], min(c.max, 1024)), 0
	}
	if _, ok := c.cur[k]; !ok {
		c.curBytes += e.size
	}
	c.cur[k] = e
}

// loopDocsKey is the SHA-256 of the three documents, each prefixed by its
// length so that no two different triples share an encoding.
func loopDocsKey(metadata, spec, status []byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, doc := range [][]byte{metadata, spec, status} {
		binary.BigEndian.PutUint64(n[:], uint64(len(doc)))
		h.Write(n[:])
		h.Write(doc)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// copyLoop is a deep copy of a decoded loop: nothing the copy holds (slice,
// map, pointer) is shared with l, and nil stays nil, empty stays empty, as
// json.Unmarshal would have made them. TestCopyLoopCoversEveryField fails
// when a field of package loop is added that this does not copy.
func copyLoop(l *loop.Loop) *loop.Loop {
	out := *l
	out.Metadata.Labels = maps.Clone(l.Metadata.Labels)
	sp := &out.Spec
	sp.Owners = slices.Clone(sp.Owners)
	sp.Streams = slices.Clone(sp.Streams)
	sp.Producers = slices.Clone(sp.Producers)
	for i := range sp.Producers {
		sp.Producers[i].Streams = slices.Clone(sp.Producers[i].Streams)
	}
	sp.Consumers = slices.Clone(sp.Consumers)
	for i := range sp.Consumers {
		sp.Consumers[i].Streams = slices.Clone(sp.Consumers[i].Streams)
	}
	if sp.Action != nil {
		a := *sp.Action
		sp.Action = &a
	}
	st := &out.Status
	st.Conditions = slices.Clone(st.Conditions)
	st.Inventory.Topics = slices.Clone(st.Inventory.Topics)
	st.Inventory.Groups = slices.Clone(st.Inventory.Groups)
	st.Inventory.Principals = slices.Clone(st.Inventory.Principals)
	st.Warnings = slices.Clone(st.Warnings)
	st.ApprovalReasons = slices.Clone(st.ApprovalReasons)
	st.Reviews = slices.Clone(st.Reviews)
	for i := range st.Reviews {
		st.Reviews[i].Reasons = slices.Clone(st.Reviews[i].Reasons)
	}
	return &out
}
