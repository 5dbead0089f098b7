package operator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/streamd/streamd/pkg/checkpoint/store"
	"github.com/streamd/streamd/pkg/record"
	"github.com/streamd/streamd/pkg/sink"
	"github.com/streamd/streamd/pkg/source"
)

// The scripted runtime drives the real Runtime — split tasks, the keyBy
// exchange, alignment, subtasks and chained stages — deterministically: it
// runs inside a testing/synctest bubble, hands one batch at a time to one
// split and waits until every goroutine is blocked again, so each batch is
// fully processed (and its watermark applied everywhere) before the next.
// Time is the bubble's fake clock, advanced only by the script.
//
// Golden scenarios (golden_test.go) and the differential tests
// (differential_test.go) both run on it.

// scriptInput is the schema of scripted records: a key, a value, a sender
// (per-sender watermarks) and a sequence number unique per record.
var scriptInput = record.MustSchema(
	record.Field{Name: "key", Type: record.TypeString},
	record.Field{Name: "value", Type: record.TypeFloat},
	record.Field{Name: "sender", Type: record.TypeString},
	record.Field{Name: "seq", Type: record.TypeInt},
)

// scriptRecord is one input record of a script.
type scriptRecord struct {
	T      int64 // event time, ms
	Key    string
	Value  float64
	Sender string
	Seq    int64
}

func (r scriptRecord) message() source.Message {
	v := fmt.Appendf(nil, "%d|%s|%s|%s|%d", r.T, r.Key, strconv.FormatFloat(r.Value, 'g', -1, 64), r.Sender, r.Seq)
	return source.Message{Value: v, Timestamp: 1}
}

// scriptDecoder decodes scriptRecord messages, event time included (any
// value, 0 and negative ones too).
type scriptDecoder struct{}

func (scriptDecoder) Schema() *record.Schema { return scriptInput }

func (scriptDecoder) Decode(msg []byte, _ int64, b *record.Batch) error {
	parts := bytes.Split(msg, []byte("|"))
	if len(parts) != 5 {
		return errors.New("scripted record: want time|key|value|sender|seq")
	}
	ts, err := strconv.ParseInt(string(parts[0]), 10, 64)
	if err != nil {
		return fmt.Errorf("scripted record: time: %w", err)
	}
	parts = parts[1:]
	v, err := strconv.ParseFloat(string(parts[1]), 64)
	if err != nil {
		return fmt.Errorf("scripted record: value: %w", err)
	}
	seq, err := strconv.ParseInt(string(parts[3]), 10, 64)
	if err != nil {
		return fmt.Errorf("scripted record: seq: %w", err)
	}
	row := b.AppendRow(ts)
	row[0] = record.String(b.Intern(parts[0]))
	row[1] = record.Float(v)
	if len(parts[2]) > 0 {
		row[2] = record.String(b.Intern(parts[2]))
	}
	row[3] = record.Int(seq)
	return nil
}

// scriptSource has fixed splits whose readers deliver what the script
// hands them, and end when the script ends them.
type scriptSource struct {
	ids   []string
	feeds map[string]chan []source.Message
	ends  map[string]chan struct{}
	// down makes a split's reads fail at once, as those of a split whose
	// broker is unreachable do, while it holds an error.
	down map[string]*atomic.Pointer[error]
}

func newScriptSource(ids ...string) *scriptSource {
	s := &scriptSource{ids: ids, feeds: map[string]chan []source.Message{}, ends: map[string]chan struct{}{}, down: map[string]*atomic.Pointer[error]{}}
	for _, id := range ids {
		s.feeds[id] = make(chan []source.Message)
		s.ends[id] = make(chan struct{})
		s.down[id] = &atomic.Pointer[error]{}
	}
	return s
}

func (s *scriptSource) Splits(context.Context) ([]source.Split, error) {
	out := make([]source.Split, len(s.ids))
	for i, id := range s.ids {
		out[i] = source.Split{ID: id}
	}
	return out, nil
}

func (s *scriptSource) Open(_ context.Context, sp source.Split, _ *source.Position) (source.Reader, error) {
	return &scriptReader{feed: s.feeds[sp.ID], end: s.ends[sp.ID], down: s.down[sp.ID]}, nil
}

func (s *scriptSource) Close(context.Context) error { return nil }

type scriptReader struct {
	feed <-chan []source.Message
	end  <-chan struct{}
	down *atomic.Pointer[error]
	// rest holds what did not fit into the last Read.
	rest []source.Message
	next int64
}

func (r *scriptReader) Read(ctx context.Context, b *source.Batch, max int) error {
	if err := r.down.Load(); err != nil {
		return *err
	}
	if len(r.rest) == 0 {
		select {
		case msgs := <-r.feed:
			r.rest = msgs
		case <-r.end:
			return source.ErrEndOfSplit
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n := min(max, len(r.rest))
	for _, m := range r.rest[:n] {
		m.Position = source.Position{Offset: r.next}
		r.next++
		b.Messages = append(b.Messages, m)
	}
	r.rest = r.rest[n:]
	return nil
}

func (r *scriptReader) Close() error { return nil }

func (r *scriptReader) Position() source.Position { return source.Position{Offset: r.next} }

// collected is one row written to a collecting sink.
type collected struct {
	stream string
	time   int64
	row    []record.Value
}

// collector gathers the rows of every stream it is attached to, in the
// order they were written.
type collector struct {
	mu   sync.Mutex
	rows []collected
	// block makes writes block until their context ends.
	block atomic.Bool
	// retrying is what the sinks' Retrying reports.
	retrying atomic.Pointer[store.RetryError]
}

// take returns and forgets what was collected so far.
func (c *collector) take() []collected {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.rows
	c.rows = nil
	return out
}

// collectSink is one stream's sink into a collector.
type collectSink struct {
	c      *collector
	stream string
}

func (s collectSink) NewWriter(string, *record.Schema) (sink.Writer, error) {
	return collectWriter(s), nil
}

func (s collectSink) Close(context.Context) error { return nil }

// Retrying implements sink.Retrier.
func (s collectSink) Retrying() error {
	if err := s.c.retrying.Load(); err != nil {
		return err
	}
	return nil
}

type collectWriter collectSink

func (w collectWriter) Write(ctx context.Context, b *record.Batch) error {
	if w.c.block.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	for i := 0; i < b.Len(); i++ {
		row := slices.Clone(b.Row(i))
		for j := range row {
			row[j] = row[j].Clone()
		}
		w.c.rows = append(w.c.rows, collected{stream: w.stream, time: b.Times[i], row: row})
	}
	return nil
}

func (w collectWriter) Close(context.Context) error { return nil }

// scripted is a Runtime running inside a synctest bubble.
type scripted struct {
	t    *testing.T
	rt   *Runtime
	src  *scriptSource
	out  *collector
	wm   WatermarkConfig
	done chan error
	stop context.CancelFunc
	// reg, when set before start, receives the runtime's metrics.
	reg *prometheus.Registry
}

// scriptTick is the runtime's tick interval in scripted runs; wall-clock
// steps of scripts are multiples of it.
const scriptTick = 100 * time.Millisecond

// startScripted runs job (its sources replaced by one scripted source named
// "in" with the given splits, every stage's results, late records and the
// alert stream collected) and returns once every split has joined. It must
// be called inside a synctest bubble.
func startScripted(t *testing.T, job Job, wm WatermarkConfig, splits ...string) *scripted {
	t.Helper()
	s := &scripted{t: t, src: newScriptSource(splits...), out: &collector{}, wm: wm}
	s.start(job)
	return s
}

func (s *scripted) start(job Job) {
	t := s.t
	s.done = make(chan error, 1)
	wm := s.wm
	job.Sources = []SourceSpec{{
		Name:       "in",
		Source:     s.src,
		Watermark:  wm,
		NewDecoder: func() (Decoder, error) { return scriptDecoder{}, nil },
	}}
	job.TickInterval = scriptTick
	job.Sinks = nil
	for _, st := range job.Stages {
		job.Sinks = append(job.Sinks,
			SinkSpec{Name: st.Name, Input: st.Name, Sink: collectSink{c: s.out, stream: st.Name}},
			SinkSpec{Name: st.Name + ".late", Input: st.Name + "." + StreamLate, Sink: collectSink{c: s.out, stream: st.Name + ".late"}},
		)
	}
	job.Sinks = append(job.Sinks, SinkSpec{Name: "alerts", Input: StreamAlerts, Sink: collectSink{c: s.out, stream: StreamAlerts}})
	var reg prometheus.Registerer
	if s.reg != nil {
		reg = s.reg
	}
	rt, err := New(job, nil, reg)
	require.NoError(t, err)
	s.rt = rt
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() { s.done <- rt.Run(ctx) }()
	synctest.Wait()
}

// restart stops the runtime with a savepoint (job must configure
// checkpoints with SavepointOnStop) and starts job from it: the splits keep
// their watermarks and the stages their state; what was emitted stays
// emitted.
func (s *scripted) restart(job Job) time.Duration {
	began := time.Now()
	s.stop()
	select {
	case err := <-s.done:
		require.NoError(s.t, err)
	case <-time.After(time.Hour):
		s.t.Fatal("runtime did not stop")
	}
	synctest.Wait()
	old := s.src
	s.src = newScriptSource(old.ids...)
	for _, id := range old.ids {
		select {
		case <-old.ends[id]:
			close(s.src.ends[id])
		default:
		}
	}
	s.start(job)
	return time.Since(began)
}

// feed hands recs to a split as one read and waits until they are processed.
func (s *scripted) feed(split string, recs []scriptRecord) {
	msgs := make([]source.Message, len(recs))
	for i, r := range recs {
		msgs[i] = r.message()
	}
	s.src.feeds[split] <- msgs
	synctest.Wait()
}

// wall advances the fake clock and waits until everything due has run.
func (s *scripted) wall(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// fail makes a split's reads fail with err until recover.
func (s *scripted) fail(split string, err error) {
	s.src.down[split].Store(&err)
	synctest.Wait()
}

// recover makes a split readable again.
func (s *scripted) recover(split string) {
	s.src.down[split].Store(nil)
	synctest.Wait()
}

// endSplit ends one split.
func (s *scripted) endSplit(split string) {
	close(s.src.ends[split])
	synctest.Wait()
}

// end ends every open split and waits for the runtime to finish.
func (s *scripted) end() {
	for _, id := range s.src.ids {
		select {
		case <-s.src.ends[id]:
		default:
			close(s.src.ends[id])
		}
	}
	select {
	case err := <-s.done:
		require.NoError(s.t, err)
	case <-time.After(time.Hour):
		s.t.Fatal("runtime did not finish after the end of its input")
	}
	synctest.Wait()
}
