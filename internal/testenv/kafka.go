package testenv

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// KafkaDefaultPartitions is the partition count of a topic given to
// StartKafka without one.
const KafkaDefaultPartitions = 4

// StartKafka runs an in-process Kafka-protocol cluster (kfake, three brokers)
// on random loopback ports, creates the topics ("name" or
// "name:partitions"), and closes it in t.Cleanup. It returns the broker
// addresses.
func StartKafka(t testing.TB, topics ...string) (brokers []string) {
	t.Helper()
	opts, err := KafkaTopicOpts(topics...)
	if err != nil {
		t.Fatal(err)
	}
	return StartKafkaCluster(t, opts...).ListenAddrs()
}

// StartKafkaCluster is StartKafka with raw kfake options, for tests that
// need SASL, TLS or control over the cluster. Ports are random loopback
// ports unless opts set them.
func StartKafkaCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	all := append([]kfake.Opt{kfake.NumBrokers(3), kfake.Ports(0, 0, 0)}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatalf("start kafka: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// KafkaTopicOpts turns "name" or "name:partitions" specs into kfake options.
func KafkaTopicOpts(topics ...string) ([]kfake.Opt, error) {
	var opts []kfake.Opt
	for _, spec := range topics {
		name, parts, err := ParseKafkaTopic(spec)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kfake.SeedTopics(int32(parts), name))
	}
	return opts, nil
}

// ParseKafkaTopic parses "name" or "name:partitions".
func ParseKafkaTopic(spec string) (name string, partitions int, err error) {
	name, p, found := strings.Cut(spec, ":")
	if name == "" {
		return "", 0, fmt.Errorf("parse topic %q: empty name", spec)
	}
	if !found {
		return name, KafkaDefaultPartitions, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 {
		return "", 0, fmt.Errorf("parse topic %q: partitions must be a positive integer", spec)
	}
	return name, n, nil
}

// MustKafkaTopicOpts is KafkaTopicOpts for tests: a bad spec fails t.
func MustKafkaTopicOpts(t testing.TB, topics ...string) []kfake.Opt {
	t.Helper()
	opts, err := KafkaTopicOpts(topics...)
	if err != nil {
		t.Fatalf("kafka topics: %v", err)
	}
	return opts
}
