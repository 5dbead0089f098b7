// Package kafka is a sink.Sink that produces every row as one JSON message
// to a Kafka topic, keyed by a chosen field so that all messages of one key
// (an alert, a user) land in the same partition in order.
//
// Writer.Write returns once every message of the batch is acknowledged by
// all in-sync replicas (acks=all), retrying retriable failures with
// exponential backoff; on error some messages may have been written, so a
// retry of the batch can duplicate them (at least once).
package kafka
