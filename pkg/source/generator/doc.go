// Package generator is a deterministic source of line-monitoring data points,
// for demos, load tests and end-to-end tests without Kafka.
//
// Each split ("gen-0" … "gen-N-1") is an infinite (or Count-long) sequence of
// JSON messages such as
//
//	{"version":1,"timestamp":1763726400000,"equipmentId":"3f2a…","tag":"water_temperature",
//	 "value":13.45,"quality":"Ok","meta":{"sequenceNumber":123,"sourceId":"filling_machine_3"}}
//
// Record n of a split is a pure function of (seed, split, n): every random
// choice comes from a splitmix64 hash of those three numbers rather than
// from a stateful generator. So a reader opened at position n replays
// exactly what an earlier reader produced from n on, which is what makes
// checkpoint-and-restore tests meaningful, and tests can compute the expected
// content of any record with Generator.Point and Generator.AppendRecord.
//
// Machines are spread over splits (machine m lives in split m mod Splits),
// as a Kafka topic keyed by equipment id would be, and each machine reports
// its tags round-robin. A machine's values follow a smooth signal (a sine of
// event time with a per machine and tag phase and period, plus a little
// noise) so that thresholds in rules are crossed now and then.
//
// Configured fractions of records are late (event time shifted back by
// LateBy) or malformed (truncated JSON, a missing equipmentId, a string where
// the value should be a number, or a timestamp in year 9999).
package generator
