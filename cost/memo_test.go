package cost

import (
	"math"
	"reflect"
	"testing"

	"github.com/loopgate/loopgate/catalog"
)

// TestMemoizableCoversEveryFloat: every float of Input, set to −0 or NaN,
// makes it unmemoizable (a float added to Input must join the list).
func TestMemoizableCoversEveryFloat(t *testing.T) {
	var floats func(v reflect.Value, path string, visit func(reflect.Value, string))
	floats = func(v reflect.Value, path string, visit func(reflect.Value, string)) {
		switch v.Kind() {
		case reflect.Float32, reflect.Float64:
			visit(v, path)
		case reflect.Struct:
			for i := range v.NumField() {
				floats(v.Field(i), path+"."+v.Type().Field(i).Name, visit)
			}
		}
	}
	n := 0
	floats(reflect.ValueOf(&Input{}).Elem(), "Input", func(_ reflect.Value, path string) {
		n++
		for _, bad := range []float64{math.Copysign(0, -1), math.NaN()} {
			in := workedExample(catalog.Storage{})
			floats(reflect.ValueOf(&in).Elem(), "Input", func(f reflect.Value, p string) {
				if p == path {
					f.SetFloat(bad)
				}
			})
			if memoizable(in) {
				t.Errorf("%s = %v: memoizable, want not", path, bad)
			}
		}
	})
	if n < 9 {
		t.Fatalf("found %d floats in Input", n)
	}
	if !memoizable(workedExample(catalog.Storage{})) {
		t.Fatal("the worked example is not memoizable")
	}
}

// TestForecastMemo: a remembered estimate is the computed one, and a
// caller's changes to its Items do not reach the next caller.
func TestForecastMemo(t *testing.T) {
	for _, st := range []catalog.Storage{
		{}, {Model: catalog.StorageTiered, LocalRetention: 3600e9}, {Model: catalog.StorageShared, CacheHitRatio: 0.5},
		{FetchFromFollower: true},
	} {
		in := workedExample(st)
		want := forecast(in)
		for range 3 {
			got := Forecast(in)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%+v: Forecast\n%+v\nwant\n%+v", st, got, want)
			}
			got.Items[0].Monthly, got.Items[0].Detail = -1, "changed"
		}
	}
	// A −0 price is not answered with the 0 price's estimate (nor kept).
	in := workedExample(catalog.Storage{})
	in.Prices.ComputePerMBpsMonth = 0
	Forecast(in)
	in.Prices.ComputePerMBpsMonth = math.Copysign(0, -1)
	if got, want := Forecast(in), forecast(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("−0 price: %+v, want %+v", got, want)
	}
}
