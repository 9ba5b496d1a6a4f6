package cost

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
)

// workedExample is issue 11's example: W = 10 MB/s, 7 days, RF 3, 3 zones,
// fan-out 3, us-east-1 prices.
func workedExample(st catalog.Storage) Input {
	return Input{
		BytesPerSecond: 10_000_000, RetentionMs: (7 * 24 * time.Hour).Milliseconds(),
		FanOut: 3, ReplicationFactor: 3, Zones: 3, Partitions: 12,
		Storage: st, Prices: catalog.DefaultPriceList(),
	}
}

// TestWorkedExample reproduces the worked example of issue 11 (and of
// docs/cost.md) within 5%, figure by figure.
func TestWorkedExample(t *testing.T) {
	for _, tc := range []struct {
		name    string
		storage catalog.Storage
		want    map[string]float64 // component -> the monthly figure
	}{
		{"broker-local", catalog.Storage{Model: catalog.StorageBrokerLocal},
			map[string]float64{CrossAZ: 2453, Storage: 2074}},
		{"broker-local fetch-from-follower", catalog.Storage{Model: catalog.StorageBrokerLocal, FetchFromFollower: true},
			map[string]float64{CrossAZ: 1402, Storage: 2074}},
		{"tiered 6h local", catalog.Storage{Model: catalog.StorageTiered, LocalRetention: 6 * time.Hour},
			map[string]float64{Storage: 74, ObjectStorage: 139, CrossAZ: 2453}},
		{"shared", catalog.Storage{Model: catalog.StorageShared},
			map[string]float64{ObjectStorage: 139, ObjectPut: 158, ObjectGet: 38, CrossAZ: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := Forecast(workedExample(tc.storage))
			for comp, want := range tc.want {
				got := e.Item(comp)
				if want == 0 {
					if got != 0 {
						t.Errorf("%s = %.2f, want 0", comp, got)
					}
					continue
				}
				if off := math.Abs(got-want) / want; off > 0.05 {
					t.Errorf("%s = %.2f, want %.0f within 5%% (off by %.1f%%)", comp, got, want, off*100)
				}
				t.Logf("%-15s %9.2f  (issue: %.0f)", comp, got, want)
			}
			if e.Currency != "USD" || e.PriceList != catalog.DefaultPriceListName {
				t.Errorf("currency %q, price list %q", e.Currency, e.PriceList)
			}
		})
	}
}

// The exact figures of the documented assumptions (docs/cost.md's table).
func TestWorkedExampleExactFigures(t *testing.T) {
	bl := Forecast(workedExample(catalog.Storage{}))
	ffl := Forecast(workedExample(catalog.Storage{FetchFromFollower: true}))
	ti := Forecast(workedExample(catalog.Storage{Model: catalog.StorageTiered, LocalRetention: 6 * time.Hour}))
	sh := Forecast(workedExample(catalog.Storage{Model: catalog.StorageShared}))
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"broker-local cross-az", bl.Item(CrossAZ), 2452.80},
		{"broker-local storage", bl.Item(Storage), 2073.60},
		{"broker-local total", bl.MonthlyTotal, 4526.40},
		{"broker-local replay/day", bl.ReplayPerDay, 11.52},
		{"fetch-from-follower cross-az", ffl.Item(CrossAZ), 1401.60},
		{"fetch-from-follower replay/day", ffl.ReplayPerDay, 0},
		{"tiered storage", ti.Item(Storage), 74.06},
		{"tiered object-storage", ti.Item(ObjectStorage), 139.10},
		{"tiered object-put", ti.Item(ObjectPut), 0.12},
		{"tiered replay/day", ti.ReplayPerDay, 11.60},
		{"shared object-storage", sh.Item(ObjectStorage), 139.10},
		{"shared object-put", sh.Item(ObjectPut), 157.68},
		{"shared object-get", sh.Item(ObjectGet), 37.84},
		{"shared total", sh.MonthlyTotal, 334.62},
		{"shared replay/day", sh.ReplayPerDay, 0.41},
	} {
		if math.Abs(c.got-c.want) > 0.005 {
			t.Errorf("%s = %.2f, want %.2f", c.what, c.got, c.want)
		}
	}
}

func TestItemsPerModel(t *testing.T) {
	for model, want := range map[string][]string{
		catalog.StorageBrokerLocal: {Storage, CrossAZ, Compute},
		catalog.StorageTiered:      {Storage, ObjectStorage, CrossAZ, ObjectPut, Compute},
		catalog.StorageShared:      {ObjectStorage, CrossAZ, ObjectPut, ObjectGet, Compute},
		"":                         {Storage, CrossAZ, Compute}, // broker-local by default
	} {
		e := Forecast(workedExample(catalog.Storage{Model: model}))
		var got []string
		sum := 0.0
		for _, it := range e.Items {
			got = append(got, it.Component)
			sum += it.Monthly
			if it.Detail == "" {
				t.Errorf("%s: %s has no detail", model, it.Component)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("model %q: items %v, want %v", model, got, want)
		}
		if math.Abs(sum-e.MonthlyTotal) > 0.001 {
			t.Errorf("model %q: total %.2f is not the sum of the items %.2f", model, e.MonthlyTotal, sum)
		}
		if model == "" && e.Model != catalog.StorageBrokerLocal {
			t.Errorf("default model = %q", e.Model)
		}
	}
}

func TestZeroThroughputCostsNothing(t *testing.T) {
	for _, model := range catalog.StorageModels {
		in := workedExample(catalog.Storage{Model: model, LocalRetention: 6 * time.Hour})
		in.BytesPerSecond = 0
		e := Forecast(in)
		if e.MonthlyTotal != 0 || e.ReplayPerDay != 0 {
			t.Errorf("%s: zero throughput costs %.2f/month, replay %.2f/day", model, e.MonthlyTotal, e.ReplayPerDay)
		}
	}
}

func TestMissingPricesMakeComponentsFree(t *testing.T) {
	in := workedExample(catalog.Storage{Model: catalog.StorageShared})
	in.Prices = catalog.PriceList{Name: "partial", ObjectStoragePerGBMonth: 0.023} // no requests, no currency
	e := Forecast(in)
	if e.Item(ObjectPut) != 0 || e.Item(ObjectGet) != 0 {
		t.Errorf("requests without prices cost %v", e.Items)
	}
	if math.Abs(e.MonthlyTotal-139.10) > 0.005 {
		t.Errorf("total %.2f, want only the object storage 139.10", e.MonthlyTotal)
	}
	if e.Currency != "USD" {
		t.Errorf("currency %q, want the default USD", e.Currency)
	}
	for _, it := range e.Items {
		if it.Component == ObjectPut && !strings.Contains(it.Detail, "no price") {
			t.Errorf("a free component does not say why: %q", it.Detail)
		}
	}

	// No prices at all: everything is 0, nothing is NaN.
	in.Prices = catalog.PriceList{}
	if e := Forecast(in); e.MonthlyTotal != 0 || e.ReplayPerDay != 0 {
		t.Errorf("no prices: %+v", e)
	}
}

func TestComputeShare(t *testing.T) {
	in := workedExample(catalog.Storage{})
	in.Prices.ComputePerMBpsMonth = 12.5
	if got := Forecast(in).Item(Compute); got != 125 {
		t.Errorf("compute = %.2f, want 10 MB/s × 12.5 = 125", got)
	}
}

func TestZonesAndReplication(t *testing.T) {
	// One zone: nothing crosses zones.
	in := workedExample(catalog.Storage{})
	in.Zones, in.ReplicationFactor = 1, 1
	e := Forecast(in)
	if e.Item(CrossAZ) != 0 || e.ReplayPerDay != 0 {
		t.Errorf("one zone: cross-az %.2f, replay %.2f", e.Item(CrossAZ), e.ReplayPerDay)
	}
	if want := 10e6 * 7 * 86400 / GB / 0.7 * 0.08; math.Abs(e.Item(Storage)-want) > 0.01 {
		t.Errorf("RF 1 storage %.2f, want %.2f", e.Item(Storage), want)
	}
	// RF 3 on 2 zones: one follower copy crosses.
	in.Zones, in.ReplicationFactor = 2, 3
	m := newModel(in)
	if got := m.replicaCopiesCrossing(); got != 1 {
		t.Errorf("RF 3 over 2 zones: %v copies cross, want 1", got)
	}
	// Zones unknown: DefaultZones.
	in.Zones = 0
	if m := newModel(in); m.zones != DefaultZones {
		t.Errorf("zones default %d", m.zones)
	}
	// Fetch-from-follower with RF 1 over 3 zones: consumers still cross 2/3.
	in.Zones, in.ReplicationFactor, in.Storage.FetchFromFollower = 3, 1, true
	if got := newModel(in).consumerCrossShare(); math.Abs(got-2.0/3) > 1e-9 {
		t.Errorf("RF 1 fetch-from-follower crosses %v", got)
	}
}

func TestRetentionEdgeCases(t *testing.T) {
	in := workedExample(catalog.Storage{Model: catalog.StorageTiered})
	// Tiered without a local retention keeps everything local, as Kafka's
	// local.retention.ms -2 does; a replayed day is read from disk.
	e := Forecast(in)
	if got, want := e.Item(Storage), Forecast(workedExample(catalog.Storage{})).Item(Storage); got != want {
		t.Errorf("tiered without local retention: storage %.2f, want broker-local's %.2f", got, want)
	}
	if e.ReplayPerDay != 11.52 {
		t.Errorf("replay %.2f: a local day needs no GETs", e.ReplayPerDay)
	}
	// Forever is priced as one year, and says so.
	in.RetentionMs = -1
	e = Forecast(in)
	if want := 10e6 * 365 * 86400 / GB * 0.023; math.Abs(e.Item(ObjectStorage)-want) > 0.01 {
		t.Errorf("forever: object storage %.2f, want one year %.2f", e.Item(ObjectStorage), want)
	}
	if !strings.Contains(e.Basis, "forever") {
		t.Errorf("basis does not say forever: %q", e.Basis)
	}
	// Zero retention: no storage, traffic still costs.
	in.RetentionMs = 0
	e = Forecast(in)
	if e.Item(Storage) != 0 || e.Item(ObjectStorage) != 0 || e.Item(CrossAZ) == 0 {
		t.Errorf("zero retention: %+v", e.Items)
	}
}

func TestSharedUploadsGrowWithThroughputPastTheObjectCap(t *testing.T) {
	in := workedExample(catalog.Storage{Model: catalog.StorageShared})
	small := newModel(in).uploadsPerSecond()
	in.BytesPerSecond = 1 << 30 // 1 GiB/s: 341 MiB per zone-second, past 8 MiB per 250 ms
	big := newModel(in).uploadsPerSecond()
	if small != 12 {
		t.Errorf("10 MB/s: %v uploads/s, want 3 zones × 4", small)
	}
	if want := float64(1<<30) / DefaultMaxObjectBytes; math.Abs(big-want) > 1e-6 {
		t.Errorf("1 GiB/s: %v uploads/s, want %v (8 MiB objects)", big, want)
	}
	in.Storage.CacheHitRatio = 0.75
	if got := Forecast(in).Item(ObjectGet); math.Abs(got-cents(big*3*0.25*SecondsPerMonth/1000*0.0004)) > 0.01 {
		t.Errorf("cache hits: GETs %.2f", got)
	}
}

func TestFanOut(t *testing.T) {
	spec := func(streams []string, action string, consumers ...loop.Consumer) *loop.Spec {
		s := &loop.Spec{Consumers: consumers}
		for _, n := range streams {
			s.Streams = append(s.Streams, loop.Stream{Name: n})
		}
		if action != "" {
			s.Action = &loop.Action{Stream: action}
		}
		return s
	}
	c := func(group string, streams ...string) loop.Consumer {
		return loop.Consumer{Principal: "User:" + group, Group: group, Streams: streams}
	}
	for _, tc := range []struct {
		name string
		spec *loop.Spec
		want float64
	}{
		{"no streams", spec(nil, ""), 0},
		{"no consumers", spec([]string{"events", "actions"}, "actions"), 0},
		{"checkout-nudge: one group reads the events", spec([]string{"events", "actions"}, "actions", c("nudge", "events")), 1},
		{"worked example: three groups", spec([]string{"events", "actions"}, "actions", c("a", "events"), c("b", "events"), c("c", "events", "actions")), 3},
		{"a group counted once per stream", spec([]string{"events"}, "", c("a", "events"), loop.Consumer{Principal: "User:x", Group: "a", Streams: []string{"events"}}), 1},
		{"readers of the action stream are not fan-out", spec([]string{"events", "actions"}, "actions", c("a", "events"), c("b", "actions")), 1},
		{"two ingress streams share the throughput", spec([]string{"a", "b", "out"}, "out", c("x", "a"), c("y", "a"), c("z", "a"), c("w", "b")), 2},
		{"only the action stream", spec([]string{"actions"}, "actions", c("a", "actions"), c("b", "actions")), 2},
	} {
		if got := FanOut(tc.spec); got != tc.want {
			t.Errorf("%s: fan-out %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestForLoop(t *testing.T) {
	spec := &loop.Spec{
		RetentionMs: 72 * 3600 * 1000, Throughput: loop.Throughput{BytesPerSecond: 2 << 20, PeakFactor: 3},
		Streams:   []loop.Stream{{Name: "events"}, {Name: "actions"}},
		Consumers: []loop.Consumer{{Principal: "User:n", Group: "n", Streams: []string{"events"}}},
		Action:    &loop.Action{Stream: "actions"},
	}
	in := ForLoop(spec, 18, catalog.Cluster{Name: "eu-1", Zones: []string{"a", "b", "c"}, ReplicationFactor: 3})
	if in.Prices != catalog.DefaultPriceList() {
		t.Errorf("a cluster without prices gets %+v, want the default list", in.Prices)
	}
	if in.Zones != 3 || in.ReplicationFactor != 3 || in.FanOut != 1 || in.Partitions != 18 || in.BytesPerSecond != 2<<20 {
		t.Errorf("input %+v", in)
	}
	e := Forecast(in)
	if e.MonthlyTotal <= 0 || !strings.Contains(e.Basis, "2 MiB/s steady, retention 3d, RF 3 over 3 zones, fan-out 1, 18 partitions") {
		t.Errorf("estimate %+v", e)
	}
}
