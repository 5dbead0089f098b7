package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamd/streamd/pkg/source"
)

// testTimeout bounds every wait of a test.
const testTimeout = 30 * time.Second

// produce writes recs synchronously; a record's Partition is used as is.
func produce(t testing.TB, brokers []string, recs []*kgo.Record, opts ...kgo.Opt) {
	t.Helper()
	all := append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	}, opts...)
	cl, err := kgo.NewClient(all...)
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
}

// records makes n records per partition with values "p<partition>-<i>".
func records(topic string, partitions, n int) []*kgo.Record {
	var recs []*kgo.Record
	for p := range partitions {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(p), Value: fmt.Appendf(nil, "p%d-%d", p, i)})
		}
	}
	return recs
}

func testConfig(brokers []string, topics ...string) Config {
	cfg := DefaultConfig()
	cfg.Brokers = brokers
	cfg.Topics = topics
	cfg.MaxWait = 100 * time.Millisecond
	cfg.SessionTimeout = 6 * time.Second
	cfg.HeartbeatInterval = 200 * time.Millisecond
	return cfg
}

// seen is what a runner read: per split, the offsets in read order.
type seen struct {
	mu      sync.Mutex
	offsets map[string][]int64
	values  map[string][]string
	total   int
	changed chan struct{}
}

func newSeen() *seen {
	return &seen{offsets: map[string][]int64{}, values: map[string][]string{}, changed: make(chan struct{}, 1)}
}

func (s *seen) add(split string, msgs []source.Message) {
	s.mu.Lock()
	for _, m := range msgs {
		s.offsets[split] = append(s.offsets[split], m.Position.Offset)
		s.values[split] = append(s.values[split], string(m.Value))
		s.total++
	}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds under the lock, failing after testTimeout.
func (s *seen) waitFor(t testing.TB, what string, cond func(*seen) bool) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond(s)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// readSplit reads one split until ctx is done.
func readSplit(ctx context.Context, r source.Reader, split string, out *seen) error {
	var b source.Batch
	for {
		b.Reset()
		err := r.Read(ctx, &b, 500)
		out.add(split, b.Messages)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// runner plays the runtime for a Dynamic source: it opens a reader per
// assigned split and drains and closes it on revoke before returning.
type runner struct {
	t      testing.TB
	src    *Source
	out    *seen
	mu     sync.Mutex
	active map[string]func()
	events []source.Event
	wg     sync.WaitGroup
	evCh   chan struct{}
	// commitOnRevoke makes the revocation commit the drained reader's
	// position, as the runtime's checkpoint of a revoked split does.
	commitOnRevoke bool
	readers        map[string]*Reader
	committed      map[string]int64
	commitErrs     []error
}

func startRunner(ctx context.Context, t testing.TB, src *Source, out *seen) *runner {
	r := newRunner(t, src, out)
	r.start(ctx)
	return r
}

func newRunner(t testing.TB, src *Source, out *seen) *runner {
	return &runner{t: t, src: src, out: out, active: map[string]func(){}, evCh: make(chan struct{}, 1), readers: map[string]*Reader{}, committed: map[string]int64{}}
}

// start watches the source until ctx is done, then stops every reader.
func (r *runner) start(ctx context.Context) {
	r.wg.Go(func() {
		err := r.src.Watch(ctx, r.handle)
		r.mu.Lock()
		stops := r.active
		r.active = map[string]func(){}
		r.mu.Unlock()
		for _, stop := range stops {
			stop()
		}
		if err != nil {
			r.t.Errorf("watch: %v", err)
		}
	})
}

func (r *runner) handle(ev source.Event) error {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	defer func() {
		select {
		case r.evCh <- struct{}{}:
		default:
		}
	}()
	if ev.Revoked {
		r.mu.Lock()
		stop := r.active[ev.Split.ID]
		delete(r.active, ev.Split.ID)
		r.mu.Unlock()
		if stop == nil {
			return fmt.Errorf("revoke of split %s that is not open", ev.Split.ID)
		}
		stop()
		if r.commitOnRevoke {
			r.mu.Lock()
			pos := r.readers[ev.Split.ID].Position().Offset
			r.mu.Unlock()
			err := r.src.Commit(context.Background(), map[string]int64{ev.Split.ID: pos})
			r.mu.Lock()
			if err != nil {
				r.commitErrs = append(r.commitErrs, err)
			} else {
				r.committed[ev.Split.ID] = pos
			}
			r.mu.Unlock()
		}
		return nil
	}
	rd, err := r.src.Open(context.Background(), ev.Split, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := readSplit(ctx, rd, ev.Split.ID, r.out); err != nil && !errors.Is(err, context.Canceled) {
			r.t.Errorf("read %s: %v", ev.Split.ID, err)
		}
	}()
	r.mu.Lock()
	r.readers[ev.Split.ID] = rd.(*Reader)
	r.active[ev.Split.ID] = func() {
		cancel()
		<-done
		_ = rd.Close()
	}
	r.mu.Unlock()
	return nil
}

// waitActive waits until the runner reads exactly n splits.
func (r *runner) waitActive(t testing.TB, n int) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got := len(r.active)
		r.mu.Unlock()
		if got == n {
			return
		}
		select {
		case <-r.evCh:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d active splits, have %d", n, got)
		}
	}
}

func (r *runner) revoked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if ev.Revoked {
			out = append(out, ev.Split.ID)
		}
	}
	return out
}
