package window

import (
	"runtime"
	"slices"

	"github.com/streamd/streamd/pkg/keyed"
)

// AsyncSnapshot is a snapshot taken without stopping the subtask: the
// barrier only records which keys hold state; a background goroutine
// encodes them while processing goes on, and a key about to change is
// encoded first by the subtask itself (copy-on-write per key).
//
// Each key carries an atomic state: 2e+1 means "encoded, or not part of,
// snapshot e"; 2e means "being encoded for snapshot e". Whoever moves a key
// from an older state to 2e encodes it and then stores 2e+1; the subtask
// waits for a key the background goroutine is encoding (one key's worth of
// work) before changing it.
type AsyncSnapshot struct {
	op    *Operator
	epoch int64
	// base is what pane starts are written relative to (snapshotBase).
	base int64
	// keys are the ids the snapshot walks: those handed out at the
	// barrier (no id is reused until the snapshot finishes).
	keys keySlab
	// own holds what the subtask encoded, bg what the background goroutine
	// encoded: per key group, the key count and the encoded keys.
	own, bg map[uint16]*groupBuf
	done    chan struct{}
}

type groupBuf struct {
	n   uint64
	buf []byte
}

// BeginSnapshot starts an asynchronous snapshot of the current state and
// returns at once; the subtask keeps processing. Call Done to learn when
// the background work has finished and Finish (on the subtask's goroutine)
// to collect the result. Only one snapshot may be in progress.
func (o *Operator) BeginSnapshot() keyed.PendingSnapshot {
	if o.async != nil {
		panic("window: a snapshot is already in progress")
	}
	o.epoch++
	a := &AsyncSnapshot{op: o, epoch: o.epoch, base: o.snapshotBase(), own: make(map[uint16]*groupBuf), bg: make(map[uint16]*groupBuf), done: make(chan struct{})}
	// One copy of the slab's chunk list is the whole pause; keys added after it
	// start out as "not part of this snapshot" (see newKey).
	a.keys = keySlab{chunks: slices.Clone(o.slab.chunks), n: o.slab.n}
	o.async = a
	go a.background()
	return a
}

// Done is closed when the background goroutine has finished.
func (a *AsyncSnapshot) Done() <-chan struct{} { return a.done }

func (a *AsyncSnapshot) background() {
	defer close(a.done)
	for id := range a.keys.n {
		a.claim(a.keys.at(id), a.bg)
	}
}

// claim encodes ks into dst if nobody has; it reports whether it did.
func (a *AsyncSnapshot) claim(ks *keyState, dst map[uint16]*groupBuf) bool {
	for {
		s := ks.snap.Load()
		if s >= 2*a.epoch {
			return false
		}
		if ks.snap.CompareAndSwap(s, 2*a.epoch) {
			if len(ks.panes) == 0 {
				// Empty (or dropped) at the barrier: nothing to save. The
				// subtask only adds panes after claiming, so this is the
				// state at the barrier.
				ks.snap.Store(2*a.epoch + 1)
				return true
			}
			g := dst[ks.kg]
			if g == nil {
				g = &groupBuf{}
				dst[ks.kg] = g
			}
			g.n++
			g.buf = a.op.appendKey(g.buf, ks, a.base)
			ks.snap.Store(2*a.epoch + 1)
			return true
		}
	}
}

// touch is called by the subtask before it changes a key.
func (a *AsyncSnapshot) touch(ks *keyState) {
	if ks.snap.Load() == 2*a.epoch+1 {
		return
	}
	if a.claim(ks, a.own) {
		return
	}
	for ks.snap.Load() != 2*a.epoch+1 {
		runtime.Gosched() // the background goroutine is encoding this key
	}
}

// Finish waits for the background goroutine and returns the snapshot per
// key group, in the format Restore reads. It must be called on the
// subtask's goroutine; afterwards a new snapshot may begin.
func (a *AsyncSnapshot) Finish() map[uint16][]byte {
	<-a.done
	a.op.async = nil
	out := make(map[uint16][]byte, len(a.bg)+len(a.own))
	for _, parts := range []map[uint16]*groupBuf{a.bg, a.own} {
		for kg := range parts {
			if _, ok := out[kg]; ok {
				continue
			}
			var n uint64
			size := 0
			for _, p := range []map[uint16]*groupBuf{a.bg, a.own} {
				if g := p[kg]; g != nil {
					n += g.n
					size += len(g.buf)
				}
			}
			buf := make([]byte, 0, size+31)
			buf = a.op.appendHeader(buf, a.base, n)
			for _, p := range []map[uint16]*groupBuf{a.bg, a.own} {
				if g := p[kg]; g != nil {
					buf = append(buf, g.buf...)
				}
			}
			out[kg] = buf
		}
	}
	return out
}
