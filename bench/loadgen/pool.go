package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// conn holds what one connection has received since the last reset. The mutex is
// uncontended except when the controller resets or reports.
type conn struct {
	mu        sync.Mutex
	latencies []int64 // nanoseconds, one per delivered update
	delivered int64
	snapshots int64
	other     int64 // data events without a received_ns (Centrifugo's connect reply, pings)
	stale     int64 // updates stamped before the measured window began
	bytes     int64
}

type pool struct {
	o         options
	symbols   []string
	conns     []*conn
	connected atomic.Int64
	dialErr   atomic.Int64
	statusErr atomic.Int64
	dropped   atomic.Int64 // streams that ended after having connected
	since     atomic.Int64 // updates with an older received_ns are not measured
	errMu     sync.Mutex
	errSample []string
}

func newPool(o options, symbols []string) *pool {
	p := &pool{o: o, symbols: symbols, conns: make([]*conn, o.clients)}
	for i := range p.conns {
		p.conns[i] = &conn{}
	}
	return p
}

func (p *pool) errorCount() int64 {
	return p.dialErr.Load() + p.statusErr.Load() + p.dropped.Load()
}

func (p *pool) noteError(err error) {
	p.errMu.Lock()
	if len(p.errSample) < 5 {
		p.errSample = append(p.errSample, err.Error())
	}
	p.errMu.Unlock()
}

// path is the request target for client i.
func (p *pool) path(i int) string {
	if i < p.o.all && p.o.target == "tickwire" {
		return "/v1/stream?symbols=*"
	}
	subs := subscription(p.symbols, i, p.o.perClient)
	if p.o.target == "tickwire" {
		return "/v1/stream?symbols=" + url.QueryEscape(strings.Join(subs, ","))
	}
	var b strings.Builder
	b.WriteString(`{"subs":{`)
	for j, s := range subs {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:{}", s)
	}
	b.WriteString(`}}`)
	return "/connection/uni_sse?cf_connect=" + url.QueryEscape(b.String())
}

// connectAll opens every connection (a bounded number of attempts in flight, each
// retried a few times) and returns once each has either answered 200 or failed.
func (p *pool) connectAll() {
	sem := make(chan struct{}, p.o.concurrency)
	var wg sync.WaitGroup
	deadline := time.Now().Add(p.o.connectWait)
	for i := range p.conns {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			ready := make(chan struct{})
			go p.run(i, deadline, ready)
			<-ready
			<-sem
			wg.Done()
		}(i)
	}
	wg.Wait()
}

func (p *pool) open(i int) (*sseReader, error) {
	nc, err := net.DialTimeout("tcp", p.o.addr, 10*time.Second)
	if err != nil {
		p.dialErr.Add(1)
		return nil, err
	}
	req := "GET " + p.path(i) + " HTTP/1.1\r\nHost: " + p.o.addr +
		"\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err = nc.Write([]byte(req)); err != nil {
		nc.Close()
		p.dialErr.Add(1)
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		nc.Close()
		p.dialErr.Add(1)
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		nc.Close()
		p.statusErr.Add(1)
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	_ = nc.SetDeadline(time.Time{})
	return newSSEReader(resp.Body, 8192), nil
}

// run connects client i (signalling ready once it is connected or has given up) and
// then reads its stream until the process exits or the server ends it.
func (p *pool) run(i int, deadline time.Time, ready chan<- struct{}) {
	var sse *sseReader
	var err error
	for attempt := 1; ; attempt++ {
		sse, err = p.open(i)
		if err == nil {
			break
		}
		p.noteError(err)
		if attempt >= 5 || time.Now().After(deadline) {
			close(ready)
			return
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
	p.connected.Add(1)
	close(ready)
	c := p.conns[i]
	for {
		ev, err := sse.next()
		if err != nil {
			p.connected.Add(-1)
			p.dropped.Add(1)
			p.noteError(fmt.Errorf("stream ended: %w", err))
			return
		}
		now := time.Now().UnixNano()
		sent, ok := receivedNs(ev.data)
		c.mu.Lock()
		c.bytes += int64(len(ev.data))
		switch {
		case string(ev.name) == "snapshot" || string(ev.name) == "reset":
			c.snapshots++
		case ok && sent < p.since.Load():
			c.stale++
		case ok:
			c.delivered++
			c.latencies = append(c.latencies, now-sent)
		default:
			c.other++
		}
		c.mu.Unlock()
	}
}

// reset forgets everything received so far; from now on only updates stamped at or
// after sinceNs count (so warm-up updates still in flight do not enter the window).
func (p *pool) reset(sinceNs int64) {
	p.since.Store(sinceNs)
	for _, c := range p.conns {
		c.mu.Lock()
		c.latencies = c.latencies[:0]
		c.delivered, c.other, c.stale, c.bytes = 0, 0, 0, 0 // snapshots: counted since connecting
		c.mu.Unlock()
	}
}

func (p *pool) totals() (delivered, snapshots int64) {
	for _, c := range p.conns {
		c.mu.Lock()
		delivered += c.delivered
		snapshots += c.snapshots
		c.mu.Unlock()
	}
	return delivered, snapshots
}

func percentile(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	idx := int(q/100*float64(len(sorted)-1) + 0.5)
	return float64(sorted[idx]) / 1e6
}

// report sums every connection's counters and gives latency percentiles in ms.
func (p *pool) report() map[string]any {
	var all []int64
	var delivered, snapshots, other, stale, bytes int64
	for _, c := range p.conns {
		c.mu.Lock()
		all = append(all, c.latencies...)
		delivered += c.delivered
		snapshots += c.snapshots
		other += c.other
		stale += c.stale
		bytes += c.bytes
		c.mu.Unlock()
	}
	slices.Sort(all)
	var sum float64
	for _, v := range all {
		sum += float64(v)
	}
	mean := 0.0
	if len(all) > 0 {
		mean = sum / float64(len(all)) / 1e6
	}
	p.errMu.Lock()
	samples := slices.Clone(p.errSample)
	p.errMu.Unlock()
	return map[string]any{
		"clients":       p.o.clients,
		"connected":     p.connected.Load(),
		"delivered":     delivered,
		"snapshots":     snapshots,
		"other_events":  other,
		"stale_updates": stale,
		"data_bytes":    bytes,
		"latency_ms":    map[string]float64{"p50": percentile(all, 50), "p90": percentile(all, 90), "p99": percentile(all, 99), "p999": percentile(all, 99.9), "max": percentile(all, 100), "mean": mean},
		"errors":        p.errorCount(),
		"dial_errors":   p.dialErr.Load(),
		"status_errors": p.statusErr.Load(),
		"streams_ended": p.dropped.Load(),
		"error_samples": samples,
	}
}
