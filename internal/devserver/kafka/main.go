// Command kafka runs a three-broker Kafka-protocol server (kfake) on fixed
// loopback ports for local development: streamd pipelines, kcat and other
// Kafka clients connect to it as to a real cluster. Data lives in memory and
// is gone when it stops.
//
//	go run ./internal/devserver/kafka -topic logs:4 -topic alerts:1
//
// It prints "ready" followed by the broker addresses once it listens, and
// exits cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamd/streamd/internal/testenv"
)

type topicFlags []string

func (t *topicFlags) String() string { return strings.Join(*t, ",") }

func (t *topicFlags) Set(v string) error {
	if _, _, err := testenv.ParseKafkaTopic(v); err != nil {
		return err
	}
	*t = append(*t, v)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kafka dev server:", err)
		os.Exit(1)
	}
}

func run() error {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 19092, "port of the first broker; the others use the next ports")
	brokers := flag.Int("brokers", 3, "number of brokers")
	autoCreate := flag.Bool("auto-create-topics", false, "create topics on first use, like auto.create.topics.enable")
	var topics topicFlags
	flag.Var(&topics, "topic", "topic to create at start, name or name:partitions (repeatable)")
	flag.Parse()
	if *brokers < 1 {
		return fmt.Errorf("parse flags: -brokers %d must be >= 1", *brokers)
	}

	ports := make([]int, *brokers)
	for i := range ports {
		ports[i] = *port + i
	}
	opts, err := testenv.KafkaTopicOpts(topics...)
	if err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	listenHost := *host
	opts = append(opts,
		kfake.Ports(ports...),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			// kfake listens on 127.0.0.1 with the given port; honour -host.
			_, p, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(listenHost, p))
		}),
	)
	if *autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	defer c.Close()

	addrs := make([]string, len(ports))
	for i, p := range ports {
		addrs[i] = net.JoinHostPort(listenHost, strconv.Itoa(p))
	}
	fmt.Printf("ready %s\n", strings.Join(addrs, ","))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	fmt.Println("stopping")
	return nil
}
