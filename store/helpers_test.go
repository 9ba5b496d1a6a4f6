package store_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/loopgate/loopgate/store"
)

func TestPageTokenRoundTripsAndIsBoundToItsFilter(t *testing.T) {
	tok := store.EncodePageToken("growth", "growth", "checkout-nudge")
	team, name, err := store.DecodePageToken("growth", tok)
	if err != nil || team != "growth" || name != "checkout-nudge" {
		t.Fatalf("DecodePageToken = %q, %q, %v; want growth, checkout-nudge", team, name, err)
	}
	if strings.Contains(tok, "checkout") {
		t.Errorf("token %q shows the key in clear; want it opaque", tok)
	}
	_, _, err = store.DecodePageToken("", tok)
	if !errors.Is(err, store.ErrInvalidPageToken) || !strings.Contains(err.Error(), "filter") {
		t.Errorf("token used without its team filter: %v, want ErrInvalidPageToken explaining the filter", err)
	}
}

func TestPageSizesDefaultAndCap(t *testing.T) {
	for _, tc := range []struct{ in, loops, audit int }{
		{0, 50, 100}, {-3, 50, 100}, {7, 7, 7}, {1000, 1000, 1000}, {1001, 1000, 1000},
	} {
		if got := store.LoopPageSize(tc.in); got != tc.loops {
			t.Errorf("LoopPageSize(%d) = %d, want %d", tc.in, got, tc.loops)
		}
		if got := store.AuditPageSize(tc.in); got != tc.audit {
			t.Errorf("AuditPageSize(%d) = %d, want %d", tc.in, got, tc.audit)
		}
	}
}

func TestTimestampKeepsMicroseconds(t *testing.T) {
	in := time.Date(2026, 11, 3, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
	got := store.Timestamp(in)
	if got.Location() != time.UTC || got.Nanosecond() != 123456000 || !got.Equal(in.Truncate(time.Microsecond)) {
		t.Errorf("Timestamp(%v) = %v, want the same instant in UTC to the microsecond", in, got)
	}
	if !store.Timestamp(time.Time{}).IsZero() {
		t.Error("Timestamp of the zero time is not zero")
	}
}

func TestNewEtagAndUIDAreFresh(t *testing.T) {
	if a, b := store.NewEtag(), store.NewEtag(); a == b || a == "" {
		t.Errorf("NewEtag returned %q then %q, want distinct values", a, b)
	}
	uid := store.NewUID()
	if len(uid) != 36 || uid[14] != '4' || strings.Count(uid, "-") != 4 {
		t.Errorf("NewUID = %q, want a version 4 UUID", uid)
	}
}

func TestLoadMigrations(t *testing.T) {
	ok := fstest.MapFS{
		"0002_index.sql": {Data: []byte("CREATE INDEX i ON t (a);")},
		"0001_init.sql":  {Data: []byte("CREATE TABLE t (a TEXT);")},
		"README.md":      {Data: []byte("not a migration")},
	}
	ms, err := store.LoadMigrations(ok)
	if err != nil || len(ms) != 2 || ms[0].Name != "0001_init.sql" || ms[1].Version != 2 || !strings.Contains(ms[1].SQL, "INDEX") {
		t.Fatalf("LoadMigrations = %+v, %v; want 0001 then 0002", ms, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":       {"0001_a.sql": {}, "0003_c.sql": {}},
		"duplicate": {"0001_a.sql": {}, "0001_b.sql": {}},
		"no number": {"init.sql": {}},
		"zero":      {"0000_init.sql": {}},
	} {
		if _, err := store.LoadMigrations(fsys); err == nil {
			t.Errorf("LoadMigrations with a %s: no error", name)
		}
	}
}
