package config

import (
	"strings"
	"testing"
	"time"

	"github.com/loopgate/loopgate/catalog"
)

func TestCostConfigReachesTheCatalog(t *testing.T) {
	c, err := Load(write(t, `
priceLists:
  - name: aws-eu-west-1
    crossAzPerGB: 0.01
    blockStoragePerGBMonth: 0.088
    objectStoragePerGBMonth: 0.023
    objectPutPer1000: 0.005
    objectGetPer1000: 0.0004
    computePerMBpsMonth: 4.5
clusters:
  - name: eu-1
    region: eu
    bootstrapServers: [kafka-1:9092]
    priceList: aws-eu-west-1
    storage: {model: tiered, localRetention: 6h, fetchFromFollower: true, diskUtilization: 0.8}
  - name: us-1
    region: us
    bootstrapServers: [kafka-2:9092]
    storage: {model: shared, uploadInterval: 500ms, cacheHitRatio: 0.5}
  - name: us-2
    region: us
    bootstrapServers: [kafka-3:9092]
teams:
  - {name: growth, allowedRegions: [eu], costApprovalThreshold: 2000}
`))
	if err != nil {
		t.Fatal(err)
	}
	cat := c.Catalog()
	eu, _ := cat.ClusterByName("eu-1")
	if eu.Storage != (catalog.Storage{Model: catalog.StorageTiered, LocalRetention: 6 * time.Hour, FetchFromFollower: true, DiskUtilization: 0.8}) {
		t.Errorf("eu-1 storage %+v", eu.Storage)
	}
	if eu.Prices.Name != "aws-eu-west-1" || eu.Prices.Currency != "USD" || eu.Prices.BlockStoragePerGBMonth != 0.088 || eu.Prices.ComputePerMBpsMonth != 4.5 {
		t.Errorf("eu-1 prices %+v", eu.Prices)
	}
	us, _ := cat.ClusterByName("us-1")
	if us.Storage.Model != catalog.StorageShared || us.Storage.UploadInterval != 500*time.Millisecond || us.Prices != catalog.DefaultPriceList() {
		t.Errorf("us-1 %+v %+v", us.Storage, us.Prices)
	}
	us2, _ := cat.ClusterByName("us-2")
	if us2.Storage != (catalog.Storage{}) || us2.Prices != catalog.DefaultPriceList() {
		t.Errorf("a cluster without cost configuration: %+v %+v, want broker-local (zero) and the default list", us2.Storage, us2.Prices)
	}
	if team, _ := cat.Team("growth"); team.CostApprovalThreshold != 2000 {
		t.Errorf("threshold %v", team.CostApprovalThreshold)
	}
}

func TestEmbeddedClustersUseTheDefaultPrices(t *testing.T) {
	for _, cl := range Embedded("data").Catalog().Clusters {
		if cl.Prices != catalog.DefaultPriceList() || cl.Storage.Model != "" {
			t.Errorf("%s: %+v %+v", cl.Name, cl.Storage, cl.Prices)
		}
	}
}

func TestCostConfigErrorsNameTheField(t *testing.T) {
	_, err := Load(write(t, `
priceLists:
  - {name: cheap, currency: dollars, crossAzPerGB: -1}
  - {name: cheap}
clusters:
  - name: eu-1
    region: eu
    bootstrapServers: [kafka-1:9092]
    priceList: nowhere
    storage: {model: s3-only, localRetention: 6h, diskUtilization: 1.5, cacheHitRatio: -0.1, segmentBytes: -1}
teams:
  - {name: growth, allowedRegions: [eu], costApprovalThreshold: -5}
`))
	if err == nil {
		t.Fatal("invalid cost configuration accepted")
	}
	for _, want := range []string{
		`clusters[0].storage.model: "s3-only" is not broker-local, tiered, shared`,
		`clusters[0].priceList: unknown price list "nowhere" (price lists: aws-us-east-1, cheap)`,
		"clusters[0].storage.localRetention: only a tiered cluster",
		"clusters[0].storage.diskUtilization",
		"clusters[0].storage.cacheHitRatio",
		"clusters[0].storage.segmentBytes",
		"priceLists[0].currency",
		"priceLists[0].crossAzPerGB",
		`priceLists[1].name: duplicate price list "cheap"`,
		"teams[0].costApprovalThreshold",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestCostConfigIsStrict(t *testing.T) {
	_, err := Load(write(t, `
clusters:
  - name: eu-1
    region: eu
    bootstrapServers: [kafka-1:9092]
    storage: {modle: tiered}
`))
	if err == nil || !strings.Contains(err.Error(), "modle") {
		t.Errorf("a misspelt storage key: %v", err)
	}
}
