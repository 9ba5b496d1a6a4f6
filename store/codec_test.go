package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/loopgate/loopgate/loop"
)

var timeType = reflect.TypeFor[time.Time]()

// fill sets every field reachable from v: with full, to a non-zero value
// (slices and maps of two elements, pointers to filled values); without, to
// empty non-nil slices and maps and nil pointers.
func fill(t *testing.T, v reflect.Value, full bool) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(full)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(3)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(3)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Slice:
		n := 0
		if full {
			n = 2
		}
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := range n {
			fill(t, v.Index(i), full)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		if full {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, full)
			fill(t, e, full)
			v.SetMapIndex(k, e)
		}
	case reflect.Pointer:
		if full {
			v.Set(reflect.New(v.Type().Elem()))
			fill(t, v.Elem(), full)
		}
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(time.Date(2026, 11, 30, 12, 0, 0, 0, time.FixedZone("x", 3600))))
			return
		}
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				t.Fatalf("%s.%s is unexported: copyLoop cannot be checked", v.Type(), v.Type().Field(i).Name)
			}
			fill(t, v.Field(i), full)
		}
	default:
		t.Fatalf("fill: unexpected %s (%s): teach copyLoop and this test about it", v.Kind(), v.Type())
	}
}

// shared reports a slice, map or pointer of b that is also a's.
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range a.Len() {
			if p := shared(a.Index(i), b.Index(i), path+"[i]"); p != "" {
				return p
			}
		}
	case reflect.Map:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			return path
		}
	case reflect.Pointer:
		if !a.IsNil() {
			if a.Pointer() == b.Pointer() {
				return path
			}
			return shared(a.Elem(), b.Elem(), path)
		}
	case reflect.Struct:
		if a.Type() == timeType {
			return ""
		}
		for i := range a.NumField() {
			if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
				return p
			}
		}
	}
	return ""
}

// TestCopyLoopCoversEveryField: the decode cache hands out copyLoop's
// copies, so a field it forgot would be zero (or shared between callers).
func TestCopyLoopCoversEveryField(t *testing.T) {
	for _, full := range []bool{true, false} {
		var l loop.Loop
		fill(t, reflect.ValueOf(&l).Elem(), full)
		c := copyLoop(&l)
		if !reflect.DeepEqual(&l, c) {
			t.Fatalf("full=%v: copy differs from the original:\n%+v\n%+v", full, l, *c)
		}
		if p := shared(reflect.ValueOf(l), reflect.ValueOf(*c), "Loop"); p != "" {
			t.Fatalf("full=%v: the copy shares %s with the original", full, p)
		}
	}
}

// TestDecodeLoopCached: a loop decoded again from the same documents equals
// a fresh decode, whatever an earlier caller did to its copy, and changed
// documents decode to the change.
func TestDecodeLoopCached(t *testing.T) {
	var l loop.Loop
	fill(t, reflect.ValueOf(&l).Elem(), true)
	l.Metadata.Name = "cached-" + time.Now().Format(time.RFC3339Nano) // not in the cache yet
	md, spec, status, err := EncodeLoop(&l)
	if err != nil {
		t.Fatal(err)
	}
	want, err := decodeLoop("t", "n", md, spec, status)
	if err != nil {
		t.Fatal(err)
	}
	first, err := DecodeLoop("t", "n", md, spec, status)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("first decode:\n%+v\nwant\n%+v", first, want)
	}
	// A caller changes everything it got.
	first.Metadata.Labels["s"] = "changed"
	first.Spec.Owners[0] = "changed"
	first.Spec.Producers[0].Streams[0] = "changed"
	first.Spec.Action.Stream = "changed"
	first.Status.Conditions[0].Message = "changed"
	first.Status.Reviews[0].Reasons[0] = "changed"
	first.Status.Inventory.Topics[0] = "changed"
	again, err := DecodeLoop("t", "n", md, spec, status)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("second decode (cached):\n%+v\nwant\n%+v", again, want)
	}
	if again == first {
		t.Fatal("the same loop was returned twice")
	}
	// One byte of the status changed: the new status, not the cached one.
	l.Status.Conditions[0].Message = "new"
	_, _, status2, err := EncodeLoop(&l)
	if err != nil {
		t.Fatal(err)
	}
	changed, err := DecodeLoop("t", "n", md, spec, status2)
	if err != nil {
		t.Fatal(err)
	}
	if got := changed.Status.Conditions[0].Message; got != "new" {
		t.Fatalf("after a status change: condition message %q, want new", got)
	}
	// Invalid documents are still refused, cached or not.
	if _, err := DecodeLoop("t", "n", md, spec, []byte(`{"state":`)); err == nil {
		t.Fatal("invalid status decoded")
	}
}

// TestLoopCacheBounded: the cache keeps at most two generations.
func TestLoopCacheBounded(t *testing.T) {
	c := &docCache[*loop.Loop]{max: 4, maxBytes: 1 << 20}
	l := &loop.Loop{}
	var keys [][32]byte
	for i := range 20 {
		k := loopDocsKey([]byte{byte(i)}, nil, nil)
		keys = append(keys, k)
		c.put(k, l, 100)
		if n := len(c.cur) + len(c.old); n > 8 {
			t.Fatalf("after %d puts: %d entries", i+1, n)
		}
	}
	if _, ok := c.get(keys[19]); !ok {
		t.Fatal("want the newest kept")
	}
	if _, ok := c.get(keys[0]); ok {
		t.Fatal("want the newest kept and the oldest gone")
	}
	// By bytes: at most twice the budget, and a document over
	// decodedMaxDocBytes is never kept.
	b := &docCache[*loop.Loop]{max: 1000, maxBytes: 10_000}
	for i := range 200 {
		b.put(loopDocsKey([]byte{byte(i), 1}, nil, nil), l, 1_000)
		if b.curBytes+b.oldBytes > 20_000 || b.curBytes > 10_000 {
			t.Fatalf("after %d puts of 1,000 bytes: %d + %d bytes kept, want at most 2 × 10,000", i+1, b.curBytes, b.oldBytes)
		}
	}
	big := loopDocsKey([]byte("big"), nil, nil)
	b.put(big, l, decodedMaxDocBytes+1)
	if _, ok := b.get(big); ok {
		t.Fatal("a document over decodedMaxDocBytes was kept")
	}
	if loopDocsKey([]byte("ab"), []byte("c"), nil) == loopDocsKey([]byte("a"), []byte("bc"), nil) {
		t.Fatal("documents split differently share a key")
	}
}

// TestDecodeLoopConcurrent: callers decoding the same documents at once
// each get their own loop (run with -race).
func TestDecodeLoopConcurrent(t *testing.T) {
	var l loop.Loop
	fill(t, reflect.ValueOf(&l).Elem(), true)
	l.Metadata.Name = "concurrent-" + time.Now().Format(time.RFC3339Nano)
	md, spec, status, err := EncodeLoop(&l)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for range 8 {
		go func() {
			for range 50 {
				got, err := DecodeLoop("t", "n", md, spec, status)
				if err != nil {
					done <- err
					return
				}
				got.Spec.Owners[0] += "x"
				got.Status.Conditions[0].Message += "x"
				got.Metadata.Labels["s"] += "x"
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestCopyObservationCoversEveryField(t *testing.T) {
	for _, full := range []bool{true, false} {
		var o Observation
		fill(t, reflect.ValueOf(&o).Elem(), full)
		c := copyObservation(&o)
		if !reflect.DeepEqual(&o, c) {
			t.Fatalf("full=%v: copy differs from the original:\n%+v\n%+v", full, o, *c)
		}
		if p := shared(reflect.ValueOf(o), reflect.ValueOf(*c), "Observation"); p != "" {
			t.Fatalf("full=%v: the copy shares %s with the original", full, p)
		}
	}
}

// An observation decoded again from the same document equals a fresh
// decode, whatever an earlier caller did to its copy; another document
// decodes to what it says.
func TestDecodeObservationCached(t *testing.T) {
	var o Observation
	fill(t, reflect.ValueOf(&o).Elem(), true)
	o.UID = "cached-" + time.Now().Format(time.RFC3339Nano)
	doc, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var want Observation
	if err := json.Unmarshal(doc, &want); err != nil {
		t.Fatal(err)
	}
	first, err := DecodeObservation(doc)
	if err != nil || !reflect.DeepEqual(first, &want) {
		t.Fatalf("first decode %+v, %v; want %+v", first, err, want)
	}
	first.SLO.Windows[0].P99Ms = -1
	first.SLO.Days[0].Day = "changed"
	first.Lag[0].Partitions[0].OffsetLag = -1
	first.Conditions[0].Message = "changed"
	again, err := DecodeObservation(doc)
	if err != nil || !reflect.DeepEqual(again, &want) {
		t.Fatalf("a caller's changes leaked into the next decode: %+v", again)
	}
	o.SLO.State = "BREACHED-" + o.UID
	doc2, _ := json.Marshal(o)
	if other, err := DecodeObservation(doc2); err != nil || other.SLO.State != o.SLO.State {
		t.Fatalf("a changed document: %+v, %v", other, err)
	}
	if _, err := DecodeObservation([]byte(`{"slo":`)); err == nil {
		t.Fatal("an invalid document decoded")
	}
}
