package kinesis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/streamd/streamd/internal/retry"
	"github.com/streamd/streamd/internal/sleep"
	"github.com/streamd/streamd/pkg/source"
)

// Reader reads one shard. It is used by one goroutine.
type Reader struct {
	s       *Source
	shard   string
	initial types.ShardIteratorType
	iter    *string

	// lastSeq is the last record delivered whole; an iterator is acquired
	// after it. atSeq and skipSub resume inside a KPL aggregate: the
	// iterator starts at atSeq, whose sub-records up to skipSub were
	// delivered before.
	lastSeq string
	atSeq   string
	skipSub int

	recs   []types.Record
	idx    int // next record of recs
	sub    int // next sub-record of recs[idx]
	ended  bool
	done   bool
	called time.Time

	deagg   deaggregator
	subSeqs []string // positions of the sub-records of recs[subFor]
	subFor  int
	keyBuf  []byte

	bo    *retry.Backoff
	timer sleep.Timer
	// unavailable is the last failed call while the shard cannot be read,
	// nil once a call succeeded; throttledSince is when the calls began to
	// be refused for exceeding a limit.
	unavailable    error
	throttledSince time.Time
	behind         prometheus.Gauge
	throttles      prometheus.Counter
	records        prometheus.Counter
	logger         *zap.Logger
}

var _ source.Reader = (*Reader)(nil)

// Open returns a reader of one shard. With a start position it resumes
// after the message at that position (see the package doc); without one
// it starts at the configured StartPosition, except that a shard descending
// from a shard this source read starts at its oldest record.
func (s *Source) Open(_ context.Context, split source.Split, start *source.Position) (source.Reader, error) {
	bo := retry.Exponential(max(s.cfg.PollInterval, 100*time.Millisecond), 10*time.Second, 0.5)
	r := &Reader{
		s:         s,
		shard:     split.ID,
		initial:   types.ShardIteratorType(s.cfg.StartPosition),
		subFor:    -1,
		bo:        bo,
		behind:    s.m.behind.WithLabelValues(s.stream, split.ID),
		throttles: s.m.throttles.WithLabelValues(s.stream),
		records:   s.m.records.WithLabelValues(s.stream),
		logger:    s.logger.With(zap.String("shard", split.ID)),
	}
	if r.initial == types.ShardIteratorTypeLatest && s.hasKnownParent(split.ID) {
		r.initial = types.ShardIteratorTypeTrimHorizon
	}
	if start != nil && start.Sequence != "" {
		seq, sub, ok := strings.Cut(start.Sequence, ":")
		if !ok {
			r.lastSeq = seq
		} else {
			n, err := strconv.Atoi(sub)
			if err != nil || n < 0 || seq == "" {
				return nil, fmt.Errorf("open shard %s: bad sequence %q", split.ID, start.Sequence)
			}
			r.atSeq, r.skipSub = seq, n
		}
	}
	return r, nil
}

// Read appends up to max messages to b, waiting for records until ctx is
// done. At the end of a closed shard it returns source.ErrEndOfSplit, and
// only on the call after the shard's last messages were returned, so those
// are handled before the shard's children start.
func (r *Reader) Read(ctx context.Context, b *source.Batch, max int) error {
	if r.done {
		return source.ErrEndOfSplit
	}
	if err := ctx.Err(); err != nil {
		return r.failure(err)
	}
	if max <= 0 {
		return nil
	}
	// Keys of the previous call's messages are dead now.
	r.keyBuf = r.keyBuf[:0]
	for {
		if r.deliver(b, max) > 0 {
			return nil
		}
		if r.ended {
			r.done = true
			r.s.finished(r.shard)
			return source.ErrEndOfSplit
		}
		if err := r.fetch(ctx); err != nil {
			return r.failure(err)
		}
	}
}

// throttleGrace is how long a shard's calls may be refused for exceeding
// a limit before its reads fail: short throttling is routine, but a shard
// that delivers nothing for longer is failing, not idle.
const throttleGrace = 10 * time.Second

// failure turns the end of a read's deadline while the shard cannot be
// read into the shard's failure: a split waiting out a failed call is
// failing, not quiet.
func (r *Reader) failure(err error) error {
	if r.unavailable != nil && errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, source.ErrUnavailable) {
		return fmt.Errorf("read shard %s: %w: %w", r.shard, source.ErrUnavailable, r.unavailable)
	}
	return err
}

// answered records a call the endpoint answered.
func (r *Reader) answered() {
	if r.unavailable != nil {
		r.logger.Info("kinesis shard readable again")
	}
	r.unavailable, r.throttledSince = nil, time.Time{}
}

// refused records a throttled call; after throttleGrace of them in a row
// the shard counts as unavailable.
func (r *Reader) refused(err error) {
	now := time.Now()
	if r.throttledSince.IsZero() {
		r.throttledSince = now
	}
	if d := now.Sub(r.throttledSince); d >= throttleGrace {
		r.unavailable = fmt.Errorf("refused for %s: %w", d.Round(time.Second), err)
	}
}

// deliver moves up to max messages from the fetched records into b.
func (r *Reader) deliver(b *source.Batch, max int) int {
	n := 0
	for r.idx < len(r.recs) && n < max {
		rec := &r.recs[r.idx]
		seq := aws.ToString(rec.SequenceNumber)
		var ts int64
		if rec.ApproximateArrivalTimestamp != nil {
			ts = rec.ApproximateArrivalTimestamp.UnixMilli()
		}
		resume := r.atSeq != "" && seq == r.atSeq
		if isAggregate(rec.Data) {
			users, err := r.deagg.split(rec.Data)
			if err == nil {
				if resume && r.sub <= r.skipSub {
					r.sub = r.skipSub + 1
				}
				seqs := r.subSequences(seq, len(users))
				for ; r.sub < len(users) && n < max; r.sub++ {
					u := users[r.sub]
					b.Messages = append(b.Messages, source.Message{
						Value: u.data, Key: u.key, Timestamp: ts,
						Position: source.Position{Sequence: seqs[r.sub]},
					})
					n++
				}
				if r.sub < len(users) {
					return n
				}
				r.next(seq)
				continue
			}
			r.logger.Debug("delivering malformed KPL aggregate as one message", zap.String("sequence", seq))
		}
		if resume {
			// Delivered whole before the restart.
			r.next(seq)
			continue
		}
		k := len(r.keyBuf)
		r.keyBuf = append(r.keyBuf, aws.ToString(rec.PartitionKey)...)
		b.Messages = append(b.Messages, source.Message{
			Value: rec.Data, Key: r.keyBuf[k:len(r.keyBuf):len(r.keyBuf)], Timestamp: ts,
			Position: source.Position{Sequence: seq},
		})
		n++
		r.next(seq)
	}
	return n
}

// next moves past the current record, delivered whole.
func (r *Reader) next(seq string) {
	r.idx++
	r.sub = 0
	r.lastSeq = seq
	if seq == r.atSeq {
		r.atSeq = ""
	}
}

// subSequences returns the positions "<seq>:<i>" of an aggregate's user
// records, built in one allocation per aggregate.
func (r *Reader) subSequences(seq string, n int) []string {
	if r.subFor == r.idx && len(r.subSeqs) == n {
		return r.subSeqs
	}
	var buf []byte
	ends := make([]int, 0, n)
	for i := range n {
		buf = append(buf, seq...)
		buf = append(buf, ':')
		buf = strconv.AppendInt(buf, int64(i), 10)
		ends = append(ends, len(buf))
	}
	all := string(buf)
	r.subSeqs = r.subSeqs[:0]
	start := 0
	for _, end := range ends {
		r.subSeqs = append(r.subSeqs, all[start:end])
		start = end
	}
	r.subFor = r.idx
	return r.subSeqs
}

// noRetry leaves throttling to the reader's own backoff, so every refused
// call is counted and spaced out with jitter.
func noRetry(o *kinesis.Options) { o.RetryMaxAttempts = 1 }

// callTimeout bounds one Kinesis API call.
const callTimeout = 30 * time.Second

// fetch gets the next records of the shard, pacing calls PollInterval
// apart. It returns nil without records after a throttle or an expired
// iterator, which the caller retries.
func (r *Reader) fetch(ctx context.Context) error {
	if r.iter == nil {
		if err := r.acquire(ctx); err != nil || r.iter == nil {
			return err
		}
	}
	if wait := time.Until(r.called.Add(r.s.cfg.PollInterval)); wait > 0 {
		if err := r.sleep(ctx, wait); err != nil {
			return err
		}
	}
	in := &kinesis.GetRecordsInput{ShardIterator: r.iter, Limit: aws.Int32(r.s.cfg.Limit)}
	if r.s.cfg.StreamARN != "" {
		in.StreamARN = aws.String(r.s.cfg.StreamARN)
	}
	// The caller's ctx may be a short read deadline (the runtime checks
	// idleness between reads); a GetRecords cut off by it would be retried
	// with the same iterator forever on a slow endpoint. The call gets its
	// own bounded context, and its records are kept for the next Read.
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	out, err := r.s.client.GetRecords(callCtx, in, noRetry)
	cancel()
	r.called = time.Now()
	if err != nil {
		// A refusal counts even when ctx ended meanwhile.
		if throttled(err) {
			r.throttles.Inc()
			r.refused(err)
			return r.sleep(ctx, r.bo.Next())
		}
		var expired *types.ExpiredIteratorException
		if errors.As(err, &expired) {
			r.answered()
			r.logger.Info("shard iterator expired; acquiring a new one", zap.String("after", r.lastSeq))
			r.iter = nil
			return nil
		}
		// The call had its own deadline: its failure is the endpoint's,
		// even when ctx ended meanwhile.
		r.unavailable = err
		return fmt.Errorf("get records of shard %s: %w: %w", r.shard, source.ErrUnavailable, err)
	}
	r.answered()
	r.bo.Reset()
	r.recs, r.idx, r.sub, r.subFor = out.Records, 0, 0, -1
	r.records.Add(float64(len(out.Records)))
	if out.MillisBehindLatest != nil {
		r.behind.Set(float64(*out.MillisBehindLatest) / 1000)
	}
	r.iter = out.NextShardIterator
	if r.iter == nil {
		r.ended = true
	}
	return nil
}

// acquire gets a shard iterator for where reading continues.
func (r *Reader) acquire(ctx context.Context) error {
	in := &kinesis.GetShardIteratorInput{ShardId: aws.String(r.shard)}
	if r.s.cfg.StreamARN != "" {
		in.StreamARN = aws.String(r.s.cfg.StreamARN)
	} else {
		in.StreamName = aws.String(r.s.cfg.Stream)
	}
	switch {
	case r.lastSeq != "":
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(r.lastSeq)
	case r.atSeq != "":
		in.ShardIteratorType = types.ShardIteratorTypeAtSequenceNumber
		in.StartingSequenceNumber = aws.String(r.atSeq)
	default:
		in.ShardIteratorType = r.initial
		if r.initial == types.ShardIteratorTypeAtTimestamp {
			in.Timestamp = aws.Time(r.s.cfg.Timestamp)
		}
	}
	callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	out, err := r.s.client.GetShardIterator(callCtx, in, noRetry)
	cancel()
	if err != nil {
		if throttled(err) {
			r.throttles.Inc()
			r.refused(err)
			return r.sleep(ctx, r.bo.Next())
		}
		r.unavailable = err
		return fmt.Errorf("get iterator of shard %s (%s): %w: %w", r.shard, in.ShardIteratorType, source.ErrUnavailable, err)
	}
	r.answered()
	r.iter = out.ShardIterator
	if r.iter == nil {
		// A closed shard positioned past its last record.
		r.ended = true
	}
	return nil
}

// throttled tells whether Kinesis refused a call for exceeding a limit.
func throttled(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case "ProvisionedThroughputExceededException", "LimitExceededException",
		"ThrottlingException", "KMSThrottlingException":
		return true
	}
	return false
}

func (r *Reader) sleep(ctx context.Context, d time.Duration) error {
	return r.timer.Sleep(ctx, d)
}

// Close releases the reader; Kinesis holds nothing for it.
func (r *Reader) Close() error {
	r.timer.Stop()
	return nil
}
