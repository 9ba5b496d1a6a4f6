// Command acting-service is the reference acting service of a loopgate
// loop: it consumes the loop's events in its consumer group and writes one
// action record per event to the action stream, with the header
// loopgate-origin-ts set to the triggering event's timestamp (milliseconds
// since the Unix epoch, decimal ASCII). loopgate samples the action stream
// and measures producer-to-action latency from that header (docs/slo.md).
//
// The credentials are the acting principal's, from `loopctl principal
// credentials TEAM/NAME`; the password is read from an environment variable
// so that it is not on the command line.
//
//	KAFKA_PASSWORD=... go run ./examples/acting-service \
//	  --brokers 127.0.0.1:9092 --user nudge-engine --group nudge-engine \
//	  --events growth.checkout-nudge.events --actions growth.checkout-nudge.actions
//
// --delay (and --jitter, a uniformly random extra) hold each action back,
// to inject latency. On SIGINT or SIGTERM it writes the actions already
// due, commits what it consumed and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// OriginHeader is the header loopgate reads on action records.
const OriginHeader = "loopgate-origin-ts"

func main() {
	brokers := flag.String("brokers", "", "bootstrap servers, comma-separated")
	user := flag.String("user", "", "SASL user (the acting principal's name without User:)")
	passwordEnv := flag.String("password-env", "KAFKA_PASSWORD", "environment variable holding the SASL password")
	mechanism := flag.String("mechanism", "SCRAM-SHA-512", "SCRAM-SHA-512 | SCRAM-SHA-256")
	group := flag.String("group", "", "consumer group")
	events := flag.String("events", "", "the topic to consume")
	actions := flag.String("actions", "", "the action topic to write")
	delay := flag.Duration("delay", 0, "hold each action back this long (latency injection)")
	jitter := flag.Duration("jitter", 0, "plus a uniformly random extra of up to this long")
	commit := flag.Duration("commit-interval", time.Second, "how often consumed offsets are committed")
	flag.Parse()
	if *brokers == "" || *user == "" || *group == "" || *events == "" || *actions == "" {
		flag.Usage()
		os.Exit(2)
	}
	auth := scram.Auth{User: *user, Pass: os.Getenv(*passwordEnv)}
	mech := auth.AsSha512Mechanism()
	if strings.EqualFold(*mechanism, "SCRAM-SHA-256") {
		mech = auth.AsSha256Mechanism()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.SASL(mech),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(*events),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.AutoCommitInterval(*commit),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.ProducerLinger(0),
		kgo.DefaultProduceTopic(*actions),
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var pending sync.WaitGroup
	var acted, failed atomic.Int64
	act := func(ev *kgo.Record) {
		rec := &kgo.Record{Key: ev.Key, Value: ev.Value,
			Headers: []kgo.RecordHeader{{Key: OriginHeader, Value: []byte(strconv.FormatInt(ev.Timestamp.UnixMilli(), 10))}}}
		cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				log.Printf("writing an action: %v", err)
			} else {
				acted.Add(1)
			}
			pending.Done()
		})
	}
	fmt.Fprintf(os.Stderr, "acting-service: consuming %s in group %s, acting on %s (delay %v, jitter %v)\n", *events, *group, *actions, *delay, *jitter)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				log.Printf("fetching %s[%d]: %v", t, p, err)
			}
		})
		fs.EachRecord(func(ev *kgo.Record) {
			pending.Add(1)
			d := *delay
			if *jitter > 0 {
				d += rand.N(*jitter)
			}
			if d <= 0 {
				act(ev)
				return
			}
			time.AfterFunc(d, func() { act(ev) })
		})
	}
	// Write what is due, then commit what was consumed.
	pending.Wait()
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = cl.Flush(fctx)
	if err := cl.CommitUncommittedOffsets(fctx); err != nil {
		log.Printf("committing offsets: %v", err)
	}
	cl.Close()
	fmt.Fprintf(os.Stderr, "acting-service: %d actions written, %d failed\n", acted.Load(), failed.Load())
}
