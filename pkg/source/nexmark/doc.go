// Package nexmark is a deterministic source of Nexmark auction events, the
// benchmark streaming engines are compared on (Tucker et al., "NEXMark – A
// Benchmark for Queries over Data Streams"; the generator model of the Beam
// and Flink Nexmark suites).
//
// The stream mixes three kinds of events in the paper's proportions: per 50
// events, 1 person, 3 auctions and 46 bids. Event n has event time
// BaseTime + n/Rate (Rate events per second of event time, 10,000 by
// default, as in the reference configuration), so a stream's time span
// depends only on its length. Bids go to "hot" auctions and come from "hot"
// bidders most of the time (hot auction ratio 2, hot bidder ratio 4, hot
// seller ratio 4); ids are drawn among the last 100 auctions and the last
// 1,000 people, plus a lead of 10 ids not created yet; prices are
// 10^U(0,6) dollars in cents; half the bids come through one of four hot
// channels, the rest through one of 10,000 channels whose URLs mostly
// carry a channel_id parameter; each event is padded with an "extra"
// string to the reference average size (person 200, auction 500, bid 100
// bytes of payload).
//
// Event n is a pure function of (Seed, n): every random choice comes from a
// splitmix64 stream seeded with both. A split is every Splits-th event
// (split s holds events s, s+Splits, …, as partitions of one topic would),
// so a reader opened at a position replays exactly what an earlier reader
// produced, and tests compute any event with Generator.Event.
//
// Events are written as one JSON object per line, the event object under
// its kind with the event time hoisted to the top, so every event has one:
//
//	{"event_type":2,"dateTime":1436918400020,"bid":{"auction":1000,"bidder":1001,"price":5318,
//	 "channel":"Google","url":"https://www.nexmark.com/…/item.htm?query=1","extra":"…"}}
//
// (event_type 0 is a person, 1 an auction, 2 a bid; times are epoch
// milliseconds). With FormatNative the source skips JSON altogether: each
// message carries only the event number and the Decoder builds the
// declared fields straight into the batch, which is what "pre-decoded"
// sources in other engines' Nexmark figures measure. A native message that
// is not an event number of the generator is dead-lettered with reason
// invalid_nexmark_event.
//
// Event times stay between 1973 and year 5138, where a timestamp field of
// format auto reads epoch numbers as milliseconds; an unbounded stream ends
// there.
package nexmark
