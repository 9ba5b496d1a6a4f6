package cost

import (
	"math"
	"slices"
	"sync"
)

// Forecast computes the monthly cost of in. Missing values take their
// defaults (broker-local, DefaultZones, replication factor 1, the storage
// defaults above); a price of 0 makes its component 0. Amounts are rounded
// to cents; MonthlyTotal is the sum of the rounded items.
//
// Forecast is a pure function of in, and formatting the items' details is
// most of its cost (listing 1,000 loops with their forecasts spent ~10 ms
// here), while an estate has few distinct inputs (loops of one shape on
// one cluster share theirs): the estimates of the last inputs are kept and
// returned again, each caller getting its own Items.
func Forecast(in Input) Estimate {
	if !memoizable(in) {
		return forecast(in)
	}
	forecasts.Lock()
	e, ok := forecasts.m[in]
	forecasts.Unlock()
	if !ok {
		e = forecast(in)
		forecasts.Lock()
		if forecasts.m == nil || len(forecasts.m) >= maxForecasts {
			forecasts.m = make(map[Input]Estimate)
		}
		forecasts.m[in] = e
		forecasts.Unlock()
	}
	e.Items = slices.Clone(e.Items)
	return e
}

// maxForecasts bounds the memo; it starts over when full.
const maxForecasts = 4096

var forecasts struct {
	sync.Mutex
	m map[Input]Estimate
}

// memoizable is false for the inputs == cannot tell apart when Forecast
// could: a float that is NaN (never equal) or −0 (equal to 0, yet it may
// print as "-0"). TestMemoizableCoversEveryFloat keeps the list complete.
func memoizable(in Input) bool {
	for _, f := range [...]float64{
		in.FanOut, in.Storage.DiskUtilization, in.Storage.CacheHitRatio,
		in.Prices.CrossAZPerGB, in.Prices.BlockStoragePerGBMonth, in.Prices.ObjectStoragePerGBMonth,
		in.Prices.ObjectPutPer1000, in.Prices.ObjectGetPer1000, in.Prices.ComputePerMBpsMonth,
	} {
		if math.IsNaN(f) || (f == 0 && math.Signbit(f)) {
			return false
		}
	}
	return true
}
