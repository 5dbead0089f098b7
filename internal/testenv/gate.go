package testenv

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Gate makes servers unreachable for an outage and reachable again, as
// servers that go away and come back with their data: the servers stay up
// in the test process (kfake keeps its log in memory and cannot be
// restarted with it), and the listeners behind the gate drop every
// connection and refuse new ones with a TCP reset while it is closed —
// what an outage looks like from a client. Listen puts a kfake broker
// behind it; Forward puts any TCP server behind it with a proxy.
type Gate struct {
	mu    sync.Mutex
	down  bool
	addrs map[string]bool // listener addresses closed one by one
	conns map[*gatedConn]struct{}
}

// NewGate returns an open gate.
func NewGate() *Gate {
	return &Gate{addrs: make(map[string]bool), conns: make(map[*gatedConn]struct{})}
}

// Listen is kfake's ListenFn: a listener behind the gate.
func (g *Gate) Listen(network, addr string) (net.Listener, error) {
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	return &gatedListener{Listener: l, g: g}, nil
}

// Forward listens on a loopback port and forwards every connection to
// target through the gate; it returns the address to use instead of
// target and stops in t.Cleanup.
func (g *Gate) Forward(t testing.TB, target string) string {
	t.Helper()
	l, err := g.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("gate: listen: %v", err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		g.closeWhere(func(*gatedConn) bool { return true })
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { pipe(c, target) })
		}
	})
	return l.Addr().String()
}

// pipe copies between c and a new connection to target until either ends.
func pipe(c net.Conn, target string) {
	defer c.Close()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	_ = up.Close()
	_ = c.Close()
	<-done
}

// Close drops every connection and refuses new ones until Open.
func (g *Gate) Close() {
	g.mu.Lock()
	g.down = true
	g.mu.Unlock()
	g.closeWhere(func(*gatedConn) bool { return true })
}

// Open accepts connections again on every listener.
func (g *Gate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.down = false
	clear(g.addrs)
}

// CloseAddr is Close for the one listener at addr (one broker of a
// cluster).
func (g *Gate) CloseAddr(addr string) {
	g.mu.Lock()
	g.addrs[addr] = true
	g.mu.Unlock()
	g.closeWhere(func(c *gatedConn) bool { return c.addr == addr })
}

func (g *Gate) closeWhere(match func(*gatedConn) bool) {
	g.mu.Lock()
	var drop []*gatedConn
	for c := range g.conns {
		if match(c) {
			drop = append(drop, c)
			delete(g.conns, c)
		}
	}
	g.mu.Unlock()
	for _, c := range drop {
		_ = c.Conn.Close()
	}
}

type gatedListener struct {
	net.Listener
	g *Gate
}

func (l *gatedListener) Accept() (net.Conn, error) {
	addr := l.Addr().String()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.g.mu.Lock()
		if l.g.down || l.g.addrs[addr] {
			l.g.mu.Unlock()
			if tcp, ok := c.(*net.TCPConn); ok {
				_ = tcp.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		gc := &gatedConn{Conn: c, g: l.g, addr: addr}
		l.g.conns[gc] = struct{}{}
		l.g.mu.Unlock()
		return gc, nil
	}
}

type gatedConn struct {
	net.Conn
	g    *Gate
	addr string
}

func (c *gatedConn) Close() error {
	c.g.mu.Lock()
	delete(c.g.conns, c)
	c.g.mu.Unlock()
	return c.Conn.Close()
}

// StartGatedKafka runs a three-broker kfake cluster (StartKafkaCluster
// with opts) behind a gate. Broker i listens on ListenAddrs()[i].
func StartGatedKafka(t testing.TB, opts ...kfake.Opt) (*kfake.Cluster, *Gate) {
	t.Helper()
	g := NewGate()
	c := StartKafkaCluster(t, append([]kfake.Opt{kfake.ListenFn(g.Listen)}, opts...)...)
	return c, g
}
