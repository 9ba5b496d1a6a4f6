// Command load-producer writes a steady stream of events to a loop's input
// stream, for trying a loop end to end with examples/acting-service. It
// stops after --count records, after --duration, or on SIGINT/SIGTERM.
//
//	KAFKA_PASSWORD=... go run ./examples/load-producer \
//	  --brokers 127.0.0.1:9092 --user checkout-api --topic growth.checkout-nudge.events --rate 50
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func main() {
	brokers := flag.String("brokers", "", "bootstrap servers, comma-separated")
	user := flag.String("user", "", "SASL user (the producing principal's name without User:)")
	passwordEnv := flag.String("password-env", "KAFKA_PASSWORD", "environment variable holding the SASL password")
	mechanism := flag.String("mechanism", "SCRAM-SHA-512", "SCRAM-SHA-512 | SCRAM-SHA-256")
	topic := flag.String("topic", "", "the topic to write")
	rate := flag.Int("rate", 50, "records per second")
	count := flag.Int("count", 0, "stop after this many records (0: no limit)")
	duration := flag.Duration("duration", 0, "stop after this long (0: no limit)")
	flag.Parse()
	if *brokers == "" || *user == "" || *topic == "" || *rate <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	auth := scram.Auth{User: *user, Pass: os.Getenv(*passwordEnv)}
	mech := auth.AsSha512Mechanism()
	if strings.EqualFold(*mechanism, "SCRAM-SHA-256") {
		mech = auth.AsSha256Mechanism()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...), kgo.SASL(mech),
		kgo.DefaultProduceTopic(*topic), kgo.ProducerLinger(0))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	var sent, failed atomic.Int64
	t := time.NewTicker(time.Second / time.Duration(*rate))
	defer t.Stop()
	fmt.Fprintf(os.Stderr, "load-producer: writing %d records/s to %s\n", *rate, *topic)
	for n := 0; *count == 0 || n < *count; n++ {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
		v := fmt.Sprintf(`{"user_id":"u%d","cart_value":%d.5}`, n%1000, n%300)
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprintf("u%d", n%1000)), Value: []byte(v)}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			} else {
				sent.Add(1)
			}
		})
	}
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = cl.Flush(fctx)
	fmt.Fprintf(os.Stderr, "load-producer: %d records written, %d failed\n", sent.Load(), failed.Load())
}
