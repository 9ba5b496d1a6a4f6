package catalog

import "time"

// Storage models of a cluster (Storage.Model): how a loop's bytes are kept
// and moved, which decides what it costs (package cost, docs/cost.md).
const (
	// StorageBrokerLocal keeps replication-factor copies on broker disks
	// (block storage) spread across availability zones.
	StorageBrokerLocal = "broker-local"
	// StorageTiered keeps a local retention on broker disks and one copy of
	// the full retention in object storage (Kafka tiered storage, KIP-405).
	StorageTiered = "tiered"
	// StorageShared keeps the data in object storage only, written through
	// brokers that batch uploads, with AZ-aware clients (AutoMQ style).
	StorageShared = "shared"
)

// StorageModels lists the valid Storage.Model values.
var StorageModels = []string{StorageBrokerLocal, StorageTiered, StorageShared}

// Storage is how a cluster stores data, for the cost forecast. Zero fields
// take the defaults of package cost (docs/cost.md).
type Storage struct {
	// Model is StorageBrokerLocal (the default), StorageTiered or
	// StorageShared.
	Model string `yaml:"model"`
	// LocalRetention is how long a tiered cluster keeps data on broker
	// disks; 0 means the whole retention (Kafka's local.retention.ms -2).
	LocalRetention time.Duration `yaml:"localRetention"`
	// FetchFromFollower: consumers read from a replica in their own zone
	// (KIP-392), so consumer fetches do not cross zones.
	FetchFromFollower bool `yaml:"fetchFromFollower"`
	// DiskUtilization is the share of provisioned block storage data may
	// fill (headroom); 0 means 0.7.
	DiskUtilization float64 `yaml:"diskUtilization"`
	// UploadInterval is how often a shared-storage broker in each zone
	// uploads what it has batched; 0 means 250ms.
	UploadInterval time.Duration `yaml:"uploadInterval"`
	// MaxObjectBytes caps one uploaded object of shared storage (a batch
	// is uploaded early when it reaches it); 0 means 8 MiB.
	MaxObjectBytes int64 `yaml:"maxObjectBytes"`
	// SegmentBytes is the size of a tiered segment (one upload); 0 means
	// Kafka's default segment.bytes, 1 GiB.
	SegmentBytes int64 `yaml:"segmentBytes"`
	// RemoteReadBytes is the size of one GET when reading tiered data
	// back from object storage; 0 means 4 MiB.
	RemoteReadBytes int64 `yaml:"remoteReadBytes"`
	// CacheHitRatio is the share of shared-storage consumer reads served
	// from the brokers' cache instead of object storage; 0 (the default)
	// assumes every read is a GET.
	CacheHitRatio float64 `yaml:"cacheHitRatio"`
}

// PriceList is what the resources a loop uses cost, in one currency. A
// price left 0 makes its component free (and says so in the forecast).
type PriceList struct {
	// Name identifies the list, e.g. "aws-us-east-1".
	Name string `yaml:"name"`
	// Currency of every price, e.g. "USD".
	Currency string `yaml:"currency"`
	// CrossAZPerGB is charged per GB (10^9 bytes) crossing zones, on each
	// side: a GB sent to another zone costs twice this.
	CrossAZPerGB float64 `yaml:"crossAzPerGB"`
	// BlockStoragePerGBMonth is the price of provisioned broker disk.
	BlockStoragePerGBMonth float64 `yaml:"blockStoragePerGBMonth"`
	// ObjectStoragePerGBMonth is the price of data kept in object storage.
	ObjectStoragePerGBMonth float64 `yaml:"objectStoragePerGBMonth"`
	// ObjectPutPer1000 and ObjectGetPer1000 price object-store requests.
	ObjectPutPer1000 float64 `yaml:"objectPutPer1000"`
	ObjectGetPer1000 float64 `yaml:"objectGetPer1000"`
	// ComputePerMBpsMonth is the compute share of one MB/s (10^6 bytes per
	// second) of steady ingress per month; 0 when brokers are not priced.
	ComputePerMBpsMonth float64 `yaml:"computePerMBpsMonth"`
}

// DefaultPriceListName names DefaultPriceList.
const DefaultPriceListName = "aws-us-east-1"

// DefaultPriceList is the price list of clusters that name none: AWS
// us-east-1 list prices (cross-AZ $0.01/GB each direction, EBS gp3
// $0.08/GB-month, S3 Standard $0.023/GB-month, PUT $0.005 and GET $0.0004
// per 1,000 requests), in USD, with no compute price.
func DefaultPriceList() PriceList {
	return PriceList{
		Name: DefaultPriceListName, Currency: "USD",
		CrossAZPerGB: 0.01, BlockStoragePerGBMonth: 0.08, ObjectStoragePerGBMonth: 0.023,
		ObjectPutPer1000: 0.005, ObjectGetPer1000: 0.0004,
	}
}
