// Package kafkaconn builds the connection settings shared by the Kafka source
// and sink: TLS (server verification and client certificates), SASL
// (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), and the kafka-go dialer and
// transport that carry them. It also turns broker and metadata failures into
// one error that names the broker or topic and says what to fix, so a
// misconfigured pipeline fails at start with an actionable message.
package kafkaconn
