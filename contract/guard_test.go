package contract_test

import (
	"strconv"
	"testing"

	"github.com/loopgate/loopgate/catalog"
	"github.com/loopgate/loopgate/contract"
	"github.com/loopgate/loopgate/loop"
	"github.com/loopgate/loopgate/provisioning"
)

// TestAgreesWithProvisioning guards the assumptions this package makes
// about how provisioning sizes topics, which it cannot import.
func TestAgreesWithProvisioning(t *testing.T) {
	if contract.TightLatencyMs != provisioning.TightLatencyMs {
		t.Errorf("TightLatencyMs %d, provisioning %d", contract.TightLatencyMs, provisioning.TightLatencyMs)
	}
	if contract.PartitionBudgetBytes != provisioning.PartitionBudgetBytes {
		t.Errorf("PartitionBudgetBytes %d, provisioning %d", contract.PartitionBudgetBytes, provisioning.PartitionBudgetBytes)
	}
	if contract.MaxDerivedPartitions != provisioning.MaxDerivedPartitions {
		t.Errorf("MaxDerivedPartitions %d, provisioning %d", contract.MaxDerivedPartitions, provisioning.MaxDerivedPartitions)
	}
	if contract.MaxBatchBytes > provisioning.KafkaDefaultMaxMessageBytes {
		t.Errorf("MaxBatchBytes %d exceeds Kafka's default max.message.bytes %d", contract.MaxBatchBytes, provisioning.KafkaDefaultMaxMessageBytes)
	}

	cl := catalog.Cluster{Name: "eu", ReplicationFactor: 1}
	for _, tc := range []struct {
		p99, bps, record int64
		peakFactor       float64
	}{
		{2000, 1 << 20, 600, 1.5},
		{2000, 3 << 20, 600, 1},
		{500, 700 << 10, 600, 3},
		{5000, 40 << 20, 2 << 20, 1},
		{200, 10 << 20, 5 << 20, 2},
		{2000, 100 << 20, 800, 2}, // 200 MiB/s: capped at 64 partitions
	} {
		l := &loop.Loop{
			Metadata: loop.Metadata{Team: "growth", Name: "nudge"},
			Spec: loop.Spec{
				SLO:        loop.SLO{LatencyP99Ms: tc.p99},
				Throughput: loop.Throughput{BytesPerSecond: tc.bps, PeakFactor: tc.peakFactor, RecordBytes: tc.record},
				Streams:    []loop.Stream{{Name: "events"}},
			},
		}
		res := provisioning.Derive(l, cl)
		topic := res.Topics[0]
		in := contract.Input{Loop: l, Principal: "User:api", Produce: []string{topic.Name}}
		estimated := contract.Build(in)
		in.Partitions = map[string]int32{topic.Name: topic.Partitions}
		exact := contract.Build(in)

		// Without partition counts, Build sizes batches for the partitions
		// provisioning derives.
		est, _ := estimated.Setting("batch.size")
		ex, _ := exact.Setting("batch.size")
		if est != ex {
			t.Errorf("%+v: batch.size %s without partitions, %s with the derived %d", tc, est, ex, topic.Partitions)
		}
		// Large records: max.request.size is the topic's max.message.bytes.
		maxReq, ok := exact.Setting("max.request.size")
		if topicMax, has := topic.Configs[provisioning.ConfigMaxMessageBytes]; has != ok || maxReq != topicMax {
			t.Errorf("%+v: max.request.size %q (%v), topic max.message.bytes %q (%v)", tc, maxReq, ok, topicMax, has)
		}
	}
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
