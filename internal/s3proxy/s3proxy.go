package s3proxy

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets the target and the fault probabilities. Probabilities are
// drawn once per request in this order: error, reset, lost response, delay;
// their sum should not exceed 1.
type Config struct {
	// Target is the server's base URL ("http://127.0.0.1:9000").
	Target string
	// Seed makes the sequence of decisions reproducible.
	Seed uint64
	// ErrorRate answers 503 SlowDown without forwarding.
	ErrorRate float64
	// ResetRate closes the connection with a TCP reset without forwarding.
	ResetRate float64
	// LostResponseRate forwards the request, then resets the connection
	// instead of returning the server's answer.
	LostResponseRate float64
	// DelayRate waits Delay before forwarding.
	DelayRate float64
	Delay     time.Duration
}

// Counts is what the proxy has done so far.
type Counts struct {
	Requests, Forwarded, Errors, Resets, LostResponses, Delays int64
}

// Proxy is an http.Handler that forwards to Config.Target with faults.
type Proxy struct {
	target *url.URL
	rp     *httputil.ReverseProxy

	mu  sync.Mutex
	cfg Config
	rng *rand.Rand

	requests, forwarded, errs, resets, lost, delays atomic.Int64
}

// New returns a proxy to cfg.Target.
func New(cfg Config) (*Proxy, error) {
	u, err := url.Parse(cfg.Target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("new s3 proxy: target %q is not an absolute URL", cfg.Target)
	}
	p := &Proxy{target: u, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// Requests are signed over the Host header the client used.
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64},
		// Passing bodies straight through keeps streamed downloads intact.
		FlushInterval: -1,
	}
	return p, nil
}

// SetRates changes the fault probabilities, e.g. to make every request fail.
func (p *Proxy) SetRates(errorRate, resetRate, lostResponseRate, delayRate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg.ErrorRate, p.cfg.ResetRate, p.cfg.LostResponseRate, p.cfg.DelayRate = errorRate, resetRate, lostResponseRate, delayRate
}

// Counts returns what was injected and forwarded so far.
func (p *Proxy) Counts() Counts {
	return Counts{
		Requests: p.requests.Load(), Forwarded: p.forwarded.Load(), Errors: p.errs.Load(),
		Resets: p.resets.Load(), LostResponses: p.lost.Load(), Delays: p.delays.Load(),
	}
}

// Close releases idle connections to the target.
func (p *Proxy) Close() {
	p.rp.Transport.(*http.Transport).CloseIdleConnections()
}

type fault int

const (
	none fault = iota
	slowDown
	reset
	lostResponse
	delay
)

func (p *Proxy) decide() (fault, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	x := p.rng.Float64()
	c := p.cfg
	switch {
	case x < c.ErrorRate:
		return slowDown, 0
	case x < c.ErrorRate+c.ResetRate:
		return reset, 0
	case x < c.ErrorRate+c.ResetRate+c.LostResponseRate:
		return lostResponse, 0
	case x < c.ErrorRate+c.ResetRate+c.LostResponseRate+c.DelayRate:
		return delay, c.Delay
	}
	return none, 0
}

const slowDownBody = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>s3proxy</RequestId></Error>`

// ServeHTTP forwards one request, perhaps with a fault.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	f, d := p.decide()
	switch f {
	case slowDown:
		p.errs.Add(1)
		// Read the body so the client sees the answer, not a broken pipe.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, slowDownBody)
		return
	case reset:
		p.resets.Add(1)
		resetConn(w)
		return
	case lostResponse:
		p.lost.Add(1)
		rec := &discardWriter{header: http.Header{}}
		p.rp.ServeHTTP(rec, r)
		p.forwarded.Add(1)
		resetConn(w)
		return
	case delay:
		p.delays.Add(1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	p.forwarded.Add(1)
	p.rp.ServeHTTP(w, r)
}

// resetConn closes the client connection with a TCP RST, as a crashed load
// balancer would.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("s3proxy: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// discardWriter swallows the response of a forwarded request whose answer
// is to be lost.
type discardWriter struct {
	header http.Header
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
