// Package cost forecasts what a loop costs per month on its cluster's
// storage model, from the loop's declared steady throughput, retention,
// partitions and fan-out and the cluster's price list (docs/cost.md has the
// formula, every assumption and the worked example the tests reproduce).
//
// It is pure arithmetic: nothing here talks to a cluster, a store or the
// API. Forecast computes an Estimate from an Input; ForLoop builds the Input
// of a loop on a catalog cluster.
package cost

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/loop"
)

// Units and the month every amount is per.
const (
	// HoursPerMonth is the month of every forecast: 730 hours (8,760 / 12),
	// the month cloud price lists bill hourly resources by.
	HoursPerMonth = 730
	// SecondsPerMonth is HoursPerMonth in seconds.
	SecondsPerMonth = HoursPerMonth * 3600
	// GB is the gigabyte of price lists: 10^9 bytes. MB is 10^6 bytes.
	GB = 1e9
	MB = 1e6
	// secondsPerDay is one day of data for replays.
	secondsPerDay = 86400
	// foreverRetention is what "keep forever" (retention -1) is priced as:
	// the data held after one year.
	foreverRetention = 365 * 24 * time.Hour
)

// Defaults of catalog.Storage's zero fields.
const (
	DefaultZones           = 3 // zones of a cluster whose catalog entry lists none
	DefaultDiskUtilization = 0.7
	DefaultUploadInterval  = 250 * time.Millisecond
	DefaultMaxObjectBytes  = 8 << 20
	DefaultSegmentBytes    = 1 << 30
	DefaultRemoteReadBytes = 4 << 20
)

// Components of an estimate (Item.Component).
const (
	Storage       = "storage"        // block storage on brokers
	ObjectStorage = "object-storage" // data kept in object storage
	CrossAZ       = "cross-az"       // traffic between availability zones
	ObjectPut     = "object-put"     // object-store PUT requests
	ObjectGet     = "object-get"     // object-store GET requests
	Compute       = "compute"        // the loop's share of broker compute
)

// Input is what a forecast is computed from.
type Input struct {
	// BytesPerSecond is the declared steady ingress; the peak factor does
	// not enter a monthly cost.
	BytesPerSecond int64
	// RetentionMs is how long records are kept; negative is "forever".
	RetentionMs int64
	// Partitions of all the loop's topics: reported in the basis, not a
	// price driver (every component is per byte or per request).
	Partitions int32
	// FanOut is how many consumer groups read each ingress byte (FanOut).
	FanOut float64
	// ReplicationFactor and Zones of the cluster (at least 1 each).
	ReplicationFactor int
	Zones             int
	Storage           catalog.Storage
	Prices            catalog.PriceList
}

// Estimate is a monthly cost forecast. Its JSON encoding is what policy sees
// as input.derived.cost.
type Estimate struct {
	// Model is the storage model the forecast is for.
	Model string `json:"model"`
	// Currency of every amount.
	Currency string `json:"currency"`
	// PriceList names the price list used.
	PriceList string `json:"priceList"`
	// MonthlyTotal is the sum of Items, per month of 730 hours.
	MonthlyTotal float64 `json:"monthlyTotal"`
	// Items are the parts of the forecast, in a fixed order per model.
	Items []Item `json:"items"`
	// ReplayPerDay is what re-reading one day of the loop's data once
	// costs, on top of MonthlyTotal.
	ReplayPerDay float64 `json:"replayPerDay"`
	// Basis says in one line what the forecast assumed.
	Basis string `json:"basis"`
}

// Item is one component of an estimate.
type Item struct {
	Component string  `json:"component"`
	Detail    string  `json:"detail"`
	Monthly   float64 `json:"monthly"`
}

// Item returns the amount of a component (0 when the estimate has none).
func (e Estimate) Item(component string) float64 {
	for _, it := range e.Items {
		if it.Component == component {
			return it.Monthly
		}
	}
	return 0
}

// FanOut is how many consumer groups read the loop's ingress, on average per
// ingress byte. The ingress streams are the streams other than the action
// stream (all of them when the action stream is the only one); the declared
// throughput is shared equally between them, and each is read by the
// distinct consumer groups of the consumers that list it. So one ingress
// stream read by groups a, b and c has fan-out 3; two ingress streams, one
// read by 3 groups and one by 1, have fan-out 2. The action stream's volume
// is not declared and is not priced.
func FanOut(spec *loop.Spec) float64 {
	var ingress []string
	for _, s := range spec.Streams {
		if spec.Action == nil || s.Name != spec.Action.Stream {
			ingress = append(ingress, s.Name)
		}
	}
	if len(ingress) == 0 {
		for _, s := range spec.Streams {
			ingress = append(ingress, s.Name)
		}
	}
	if len(ingress) == 0 {
		return 0
	}
	total := 0
	for _, name := range ingress {
		groups := map[string]bool{}
		for _, c := range spec.Consumers {
			for _, s := range c.Streams {
				if s == name {
					g := c.Group
					if g == "" {
						g = "principal:" + c.Principal // not yet defaulted
					}
					groups[g] = true
				}
			}
		}
		total += len(groups)
	}
	return float64(total) / float64(len(ingress))
}

// ForLoop is the Input of a loop spec on a catalog cluster; partitions is the
// loop's total (as derived by provisioning). A cluster without a price list
// (no name) uses catalog.DefaultPriceList.
func ForLoop(spec *loop.Spec, partitions int32, cl catalog.Cluster) Input {
	prices := cl.Prices
	if prices == (catalog.PriceList{}) {
		prices = catalog.DefaultPriceList()
	}
	return Input{
		BytesPerSecond: spec.Throughput.BytesPerSecond, RetentionMs: spec.RetentionMs,
		Partitions: partitions, FanOut: FanOut(spec),
		ReplicationFactor: int(cl.ReplicationFactor), Zones: len(cl.Zones),
		Storage: cl.Storage, Prices: prices,
	}
}

// forecast is Forecast, computed (memo.go keeps what it returned).
func forecast(in Input) Estimate {
	m := newModel(in)
	e := Estimate{Model: m.model, Currency: in.Prices.Currency, PriceList: in.Prices.Name}
	if e.Currency == "" {
		e.Currency = "USD"
	}
	switch m.model {
	case catalog.StorageTiered:
		e.Items = []Item{m.blockStorage(m.local), m.objectStorage(), m.crossAZ(), m.tieredPuts(), m.compute()}
		e.ReplayPerDay = m.replayCrossAZ() + m.tieredReplayGets()
	case catalog.StorageShared:
		e.Items = []Item{m.objectStorage(), m.sharedCrossAZ(), m.sharedPuts(), m.sharedGets(), m.compute()}
		e.ReplayPerDay = m.sharedReplayGets()
	default:
		e.Items = []Item{m.blockStorage(m.retention), m.crossAZ(), m.compute()}
		e.ReplayPerDay = m.replayCrossAZ()
	}
	total := 0.0
	for i := range e.Items {
		e.Items[i].Monthly = cents(e.Items[i].Monthly)
		total += e.Items[i].Monthly
	}
	e.MonthlyTotal = cents(total)
	e.ReplayPerDay = cents(e.ReplayPerDay)
	e.Basis = m.basis()
	return e
}

// model is an Input with its defaults applied and its derived quantities.
type model struct {
	in        Input
	model     string
	w         float64 // bytes per second
	retention float64 // seconds of data kept
	forever   bool
	local     float64 // seconds kept on broker disks (tiered)
	rf, zones int
	fanOut    float64
	st        catalog.Storage
	p         catalog.PriceList
}

func newModel(in Input) *model {
	m := &model{in: in, model: in.Storage.Model, w: float64(max(in.BytesPerSecond, 0)), st: in.Storage, p: in.Prices,
		rf: max(in.ReplicationFactor, 1), zones: in.Zones, fanOut: max(in.FanOut, 0)}
	if m.model == "" {
		m.model = catalog.StorageBrokerLocal
	}
	if m.zones <= 0 {
		m.zones = DefaultZones
	}
	switch {
	case in.RetentionMs < 0:
		m.forever = true
		m.retention = foreverRetention.Seconds()
	default:
		m.retention = float64(in.RetentionMs) / 1000
	}
	m.local = m.retention
	if l := m.st.LocalRetention.Seconds(); l > 0 && l < m.retention {
		m.local = l
	}
	if m.st.DiskUtilization <= 0 || m.st.DiskUtilization > 1 {
		m.st.DiskUtilization = DefaultDiskUtilization
	}
	if m.st.UploadInterval <= 0 {
		m.st.UploadInterval = DefaultUploadInterval
	}
	if m.st.MaxObjectBytes <= 0 {
		m.st.MaxObjectBytes = DefaultMaxObjectBytes
	}
	if m.st.SegmentBytes <= 0 {
		m.st.SegmentBytes = DefaultSegmentBytes
	}
	if m.st.RemoteReadBytes <= 0 {
		m.st.RemoteReadBytes = DefaultRemoteReadBytes
	}
	m.st.CacheHitRatio = min(max(m.st.CacheHitRatio, 0), 1)
	return m
}

// monthGB is the ingress of a month in GB.
func (m *model) monthGB() float64 { return m.w * SecondsPerMonth / GB }

// crossZoneShare is the probability that a client and the broker it talks
// to are in different zones: (Z−1)/Z.
func (m *model) crossZoneShare() float64 { return float64(m.zones-1) / float64(m.zones) }

// replicaCopiesCrossing is how many follower copies of each byte land in
// another zone than the leader's: RF − ceil(RF/Z) with replicas spread
// evenly (RF−1 when RF ≤ Z).
func (m *model) replicaCopiesCrossing() float64 {
	inLeaderZone := (m.rf + m.zones - 1) / m.zones
	return float64(m.rf - inLeaderZone)
}

// consumerCrossShare is the share of one consumer group's fetches that
// cross zones: (Z−1)/Z from the leader; with fetch-from-follower only when
// no replica is in the consumer's zone, (Z − min(RF, Z))/Z.
func (m *model) consumerCrossShare() float64 {
	if m.st.FetchFromFollower {
		return float64(m.zones-min(m.rf, m.zones)) / float64(m.zones)
	}
	return m.crossZoneShare()
}

func (m *model) crossAZ() Item {
	prod, repl, cons := m.crossZoneShare(), m.replicaCopiesCrossing(), m.fanOut*m.consumerCrossShare()
	gb := m.monthGB() * (prod + repl + cons)
	how := "from the leader"
	if m.st.FetchFromFollower {
		how = "fetch-from-follower"
	}
	return Item{Component: CrossAZ, Monthly: gb * 2 * m.p.CrossAZPerGB, Detail: fmt.Sprintf(
		"%s GB/month × (produce %s + replication %s + consume %s×%s %s) = %s GB crossing zones × %s/GB each side",
		num(m.monthGB()), num(prod), num(repl), num(m.fanOut), num(m.consumerCrossShare()), how, num(gb), m.price(m.p.CrossAZPerGB))}
}

func (m *model) blockStorage(seconds float64) Item {
	data := m.w * seconds * float64(m.rf) / GB
	prov := data / m.st.DiskUtilization
	what := "retention"
	if m.model == catalog.StorageTiered {
		what = "local retention"
	}
	return Item{Component: Storage, Monthly: prov * m.p.BlockStoragePerGBMonth, Detail: fmt.Sprintf(
		"%s × RF %d = %s GB on broker disks, provisioned at %s%% use = %s GB × %s/GB-month",
		what+" "+dur(seconds), m.rf, num(data), num(m.st.DiskUtilization*100), num(prov), m.price(m.p.BlockStoragePerGBMonth))}
}

func (m *model) objectStorage() Item {
	gb := m.w * m.retention / GB
	return Item{Component: ObjectStorage, Monthly: gb * m.p.ObjectStoragePerGBMonth, Detail: fmt.Sprintf(
		"one copy of %s = %s GB × %s/GB-month", dur(m.retention), num(gb), m.price(m.p.ObjectStoragePerGBMonth))}
}

func (m *model) tieredPuts() Item {
	puts := m.w * SecondsPerMonth / float64(m.st.SegmentBytes)
	return Item{Component: ObjectPut, Monthly: puts / 1000 * m.p.ObjectPutPer1000, Detail: fmt.Sprintf(
		"one upload per %s segment: %s PUTs/month × %s/1k", bytesString(m.st.SegmentBytes), num(puts), m.price(m.p.ObjectPutPer1000))}
}

// uploadsPerSecond is how many objects shared storage uploads for the
// loop: each zone's broker uploads what the loop's producers in its zone
// wrote every UploadInterval, or sooner when a batch reaches MaxObjectBytes.
func (m *model) uploadsPerSecond() float64 {
	if m.w == 0 {
		return 0
	}
	perZone := max(1/m.st.UploadInterval.Seconds(), m.w/float64(m.zones)/float64(m.st.MaxObjectBytes))
	return perZone * float64(m.zones)
}

func (m *model) sharedCrossAZ() Item {
	return Item{Component: CrossAZ, Detail: "none: AZ-aware clients talk to brokers in their own zone and object storage replicates"}
}

func (m *model) sharedPuts() Item {
	ups := m.uploadsPerSecond()
	return Item{Component: ObjectPut, Monthly: ups * SecondsPerMonth / 1000 * m.p.ObjectPutPer1000, Detail: fmt.Sprintf(
		"%d zones × one batch per %s (at most %s) = %s PUTs/s × %s/1k",
		m.zones, m.st.UploadInterval, bytesString(m.st.MaxObjectBytes), num(ups), m.price(m.p.ObjectPutPer1000))}
}

func (m *model) sharedGets() Item {
	gets := m.fanOut * m.uploadsPerSecond() * (1 - m.st.CacheHitRatio)
	return Item{Component: ObjectGet, Monthly: gets * SecondsPerMonth / 1000 * m.p.ObjectGetPer1000, Detail: fmt.Sprintf(
		"fan-out %s × one GET per uploaded object × %s%% not cached = %s GETs/s × %s/1k",
		num(m.fanOut), num((1-m.st.CacheHitRatio)*100), num(gets), m.price(m.p.ObjectGetPer1000))}
}

func (m *model) compute() Item {
	mbps := m.w / MB
	if m.p.ComputePerMBpsMonth == 0 {
		return Item{Component: Compute, Detail: "no compute price in the price list"}
	}
	return Item{Component: Compute, Monthly: mbps * m.p.ComputePerMBpsMonth, Detail: fmt.Sprintf(
		"%s MB/s × %s per MB/s-month", num(mbps), m.price(m.p.ComputePerMBpsMonth))}
}

// dayGB is one day of the loop's ingress in GB.
func (m *model) dayGB() float64 { return m.w * secondsPerDay / GB }

// replayCrossAZ is one consumer re-reading one day across zones.
func (m *model) replayCrossAZ() float64 {
	return m.dayGB() * m.consumerCrossShare() * 2 * m.p.CrossAZPerGB
}

// tieredReplayGets reads back one day no longer on broker disks (one GET
// per RemoteReadBytes); a day still local costs no request.
func (m *model) tieredReplayGets() float64 {
	if m.local >= m.retention {
		return 0
	}
	return m.w * secondsPerDay / float64(m.st.RemoteReadBytes) / 1000 * m.p.ObjectGetPer1000
}

// sharedReplayGets reads back one day's uploaded objects, one GET each.
func (m *model) sharedReplayGets() float64 {
	return m.uploadsPerSecond() * secondsPerDay / 1000 * m.p.ObjectGetPer1000
}

func (m *model) basis() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/s steady, retention %s", bytesString(int64(m.w)), dur(m.retention))
	if m.forever {
		b.WriteString(" (forever: priced as one year of data)")
	}
	if m.model == catalog.StorageTiered {
		fmt.Fprintf(&b, " (%s local)", dur(m.local))
	}
	zones := "zones"
	if m.zones == 1 {
		zones = "zone"
	}
	fmt.Fprintf(&b, ", RF %d over %d %s, fan-out %s, %d partitions", m.rf, m.zones, zones, num(m.fanOut), m.in.Partitions)
	if m.st.FetchFromFollower {
		b.WriteString(", fetch-from-follower")
	}
	name := m.p.Name
	if name == "" {
		name = "unnamed"
	}
	fmt.Fprintf(&b, "; prices %s; month = 730 h, GB = 10^9 bytes", name)
	return b.String()
}

func (m *model) price(p float64) string {
	if p == 0 {
		return "no price"
	}
	s := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.6f", p), "0"), ".")
	if m.p.Currency == "" || m.p.Currency == "USD" {
		return "$" + s
	}
	return s + " " + m.p.Currency
}

func cents(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return math.Round(x*100) / 100
}

// num formats a quantity compactly: at most 3 significant decimals.
func num(x float64) string {
	switch {
	case x == math.Trunc(x) && math.Abs(x) < 1e15:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 100:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 1:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", x), "0"), ".")
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", x), "0"), ".")
}

// dur formats seconds of data as days or hours.
func dur(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d > 0 && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d > 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// bytesString formats a byte count in binary units when it is a whole
// number of them (as loop specs write sizes), else in bytes.
func bytesString(b int64) string {
	for _, u := range []struct {
		n    int64
		unit string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if b >= u.n && b%u.n == 0 {
			return fmt.Sprintf("%d %s", b/u.n, u.unit)
		}
	}
	if b >= MB {
		return fmt.Sprintf("%s MB", num(float64(b)/MB))
	}
	return fmt.Sprintf("%d B", b)
}
