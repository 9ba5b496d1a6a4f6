package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/loopgate/loopgate/catalog"
)

// Cost forecast configuration (docs/cost.md): price lists, each cluster's
// storage model and price list, and each team's costApprovalThreshold.
//
//	priceLists:
//	  - name: aws-eu-west-1
//	    currency: USD
//	    crossAzPerGB: 0.01            # charged on each side
//	    blockStoragePerGBMonth: 0.088
//	    objectStoragePerGBMonth: 0.023
//	    objectPutPer1000: 0.005
//	    objectGetPer1000: 0.0004
//	    computePerMBpsMonth: 0        # optional compute share
//	clusters:
//	  - name: eu-1
//	    ...
//	    priceList: aws-eu-west-1
//	    storage: {model: tiered, localRetention: 6h, fetchFromFollower: true}
//	teams:
//	  - name: growth
//	    costApprovalThreshold: 2000   # per month; above it a loop needs approval

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// priceList resolves a cluster's price list name: a configured list, else
// the built-in default (also for an empty name).
func (c *Config) priceList(name string) catalog.PriceList {
	if name == "" {
		name = catalog.DefaultPriceListName
	}
	for _, p := range c.PriceLists {
		if p.Name == name {
			if p.Currency == "" {
				p.Currency = "USD"
			}
			return p
		}
	}
	return catalog.DefaultPriceList()
}

// validateCost checks the price lists, the clusters' storage and price list
// references and the teams' cost thresholds.
func (c *Config) validateCost() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	nonNegative := func(field string, v float64) {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			bad(field, "%v: want a price of 0 or more", v)
		}
	}
	names := map[string]bool{catalog.DefaultPriceListName: true}
	configured := map[string]bool{}
	for i, p := range c.PriceLists {
		f := fmt.Sprintf("priceLists[%d]", i)
		if !nameRE.MatchString(p.Name) {
			bad(f+".name", "%q must match %s", p.Name, nameRE)
		}
		if configured[p.Name] {
			bad(f+".name", "duplicate price list %q", p.Name)
		}
		configured[p.Name], names[p.Name] = true, true
		if p.Currency != "" && !currencyRE.MatchString(p.Currency) {
			bad(f+".currency", "%q is not an ISO 4217 code such as USD or EUR", p.Currency)
		}
		nonNegative(f+".crossAzPerGB", p.CrossAZPerGB)
		nonNegative(f+".blockStoragePerGBMonth", p.BlockStoragePerGBMonth)
		nonNegative(f+".objectStoragePerGBMonth", p.ObjectStoragePerGBMonth)
		nonNegative(f+".objectPutPer1000", p.ObjectPutPer1000)
		nonNegative(f+".objectGetPer1000", p.ObjectGetPer1000)
		nonNegative(f+".computePerMBpsMonth", p.ComputePerMBpsMonth)
	}
	known := make([]string, 0, len(names))
	for n := range names {
		known = append(known, n)
	}
	slices.Sort(known)
	for i, cl := range c.Clusters {
		f := fmt.Sprintf("clusters[%d]", i)
		if cl.PriceList != "" && !names[cl.PriceList] {
			bad(f+".priceList", "unknown price list %q (price lists: %s)", cl.PriceList, strings.Join(known, ", "))
		}
		st := cl.Storage
		switch st.Model {
		case "", catalog.StorageBrokerLocal, catalog.StorageTiered, catalog.StorageShared:
		default:
			bad(f+".storage.model", "%q is not %s", st.Model, strings.Join(catalog.StorageModels, ", "))
		}
		if st.LocalRetention < 0 {
			bad(f+".storage.localRetention", "%s: want a positive duration (0 = the whole retention)", st.LocalRetention)
		}
		if st.LocalRetention > 0 && st.Model != catalog.StorageTiered {
			bad(f+".storage.localRetention", "only a tiered cluster keeps a local retention (storage.model is %q)", orDefault(st.Model, catalog.StorageBrokerLocal))
		}
		if st.DiskUtilization < 0 || st.DiskUtilization > 1 {
			bad(f+".storage.diskUtilization", "%v: want a share of the disk above 0 and at most 1 (0 = 0.7)", st.DiskUtilization)
		}
		if st.CacheHitRatio < 0 || st.CacheHitRatio > 1 {
			bad(f+".storage.cacheHitRatio", "%v: want a share from 0 to 1", st.CacheHitRatio)
		}
		if st.UploadInterval < 0 {
			bad(f+".storage.uploadInterval", "%s: want a positive duration (0 = 250ms)", st.UploadInterval)
		}
		for _, b := range []struct {
			key string
			v   int64
		}{{"maxObjectBytes", st.MaxObjectBytes}, {"segmentBytes", st.SegmentBytes}, {"remoteReadBytes", st.RemoteReadBytes}} {
			if b.v < 0 {
				bad(f+".storage."+b.key, "%d: want a size in bytes (0 = the default)", b.v)
			}
		}
	}
	for i, t := range c.Teams {
		if v := t.CostApprovalThreshold; v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			bad(fmt.Sprintf("teams[%d].costApprovalThreshold", i), "%v: want an amount per month, or 0 for none", v)
		}
	}
	return errs
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
