package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// rateResult is one connection-rate run: dial, handshake, CONNECT, 1-byte
// echo, close, by `workers` concurrent workers for a bounded time.
type rateResult struct {
	Conns    int
	Errors   int
	Elapsed  time.Duration
	P50, P99 time.Duration
	CPU      float64 // proxy tree CPU seconds during the run
	CPUAll   float64 // every process's CPU seconds: client, sink, proxies
}

func (r rateResult) PerSec() float64 { return float64(r.Conns) / r.Elapsed.Seconds() }

// connRate runs workers loops until dur has passed or maxConns connections
// were attempted, whichever comes first.
func connRate(t *running, proto Proto, dst netip.AddrPort, workers int, dur time.Duration, maxConns int) rateResult {
	var attempted, errs atomic.Int64
	lats := make([][]time.Duration, workers)
	cpu0, all0 := t.cpu(), cpuAll()
	start := time.Now()
	stop := start.Add(dur)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := dialer{proto: proto, proxy: t.addr, src: w + 1}
			var one [1]byte
			for time.Now().Before(stop) && attempted.Add(1) <= int64(maxConns) {
				t0 := time.Now()
				c, err := d.dial(dst, 5*time.Second)
				if err != nil {
					errs.Add(1)
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				one[0] = 'x'
				_, err = c.Write(one[:])
				if err == nil {
					_, err = io.ReadFull(c, one[:])
				}
				c.Close()
				if err != nil || one[0] != 'x' {
					errs.Add(1)
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	all := slices.Concat(lats...)
	slices.Sort(all)
	r := rateResult{Conns: len(all), Errors: int(errs.Load()), Elapsed: el, CPU: t.cpu() - cpu0, CPUAll: cpuAll() - all0}
	if len(all) > 0 {
		r.P50 = all[len(all)/2]
		r.P99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return r
}

// bulkResult is one throughput run.
type bulkResult struct {
	Bytes   int64
	Elapsed time.Duration
	CPU     float64
	CPUAll  float64
	Err     error
}

func (r bulkResult) GBps() float64 { return float64(r.Bytes) / r.Elapsed.Seconds() / 1e9 }

// bulk moves total bytes over streams parallel connections through the
// target: down = the sink's source writes, the client reads; up = the
// client writes to the discard sink, which answers the count it got. The
// clock stops when every byte has been accounted for end to end.
func bulk(t *running, proto Proto, sink *sinkAddrs, streams int, total int64, up bool, timeout time.Duration) bulkResult {
	per := total / int64(streams)
	cpu0, all0 := t.cpu(), cpuAll()
	start := time.Now()
	deadline := start.Add(timeout)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	var moved atomic.Int64
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := bulkStream(proto, t.addr, sink, i+1, per, up, deadline)
			moved.Add(n)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return bulkResult{Bytes: moved.Load(), Elapsed: time.Since(start), CPU: t.cpu() - cpu0, CPUAll: cpuAll() - all0, Err: firstErr}
}

func bulkStream(proto Proto, proxy string, sink *sinkAddrs, src int, n int64, up bool, deadline time.Time) (int64, error) {
	dst := sink.source
	if up {
		dst = sink.discard
	}
	d := dialer{proto: proto, proxy: proxy, src: 200 + src}
	c, err := d.dial(dst, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(n))
	if _, err := c.Write(hdr[:]); err != nil {
		return 0, err
	}
	if up {
		left := n
		for left > 0 {
			w, err := c.Write(block[:min(left, int64(len(block)))])
			left -= int64(w)
			if err != nil {
				return n - left, err
			}
		}
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return n, fmt.Errorf("reading the sink's count: %w", err)
		}
		if got := binary.BigEndian.Uint64(hdr[:]); got != uint64(n) {
			return int64(got), fmt.Errorf("sink got %d bytes of %d", got, n)
		}
		return n, nil
	}
	buf := make([]byte, 256<<10)
	var got int64
	for {
		r, err := c.Read(buf)
		got += int64(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			return got, err
		}
	}
	if got != n {
		return got, fmt.Errorf("got %d bytes of %d", got, n)
	}
	return got, nil
}

// idleResult is the proxy's cost of holding N idle proxied connections.
type idleResult struct {
	N                 int
	Opened            int
	Before, After     procUsage
	RSSPer, PSSPer    float64 // KiB per connection
	FDPer, ThreadsPer float64
	OpenRate          float64 // connections per second while opening
	Err               error
}

// idle opens n proxied connections to the echo sink (each proves it works
// with a 1-byte echo), waits until the proxy's descriptor count is stable,
// samples its memory and descriptors, then closes everything.
func idle(t *running, proto Proto, dst netip.AddrPort, n int, timeout time.Duration, atPeak func()) idleResult {
	res := idleResult{N: n}
	var err error
	if res.Before, err = t.usage(); err != nil {
		res.Err = err
		return res
	}
	conns := make([]*net.TCPConn, n)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(timeout)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := dialer{proto: proto, proxy: t.addr, src: 400 + w}
			var one [1]byte
			for time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				// Spread sources wider: 16 workers × 256 source IPs.
				d.src = 400 + int(i%4096)
				c, err := d.dial(dst, 5*time.Second)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				one[0] = 'i'
				_, err = c.Write(one[:])
				if err == nil {
					_, err = io.ReadFull(c, one[:])
				}
				if err != nil || one[0] != 'i' {
					// Not a working proxied connection: do not count it.
					c.Close()
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("echo: %v", err))
					continue
				}
				c.SetDeadline(time.Time{})
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	res.OpenRate = float64(n) / time.Since(start).Seconds()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for _, c := range conns {
		if c != nil {
			res.Opened++
		}
	}
	if res.Opened < n*95/100 {
		res.Err = fmt.Errorf("opened only %d of %d connections (%d failed, first: %v)", res.Opened, n, failed.Load(), firstErr.Load())
	}
	// Settle: the proxy may still be finishing handshakes; wait (bounded)
	// until two samples 200 ms apart agree on the descriptor count.
	var last procUsage
	for i := 0; i < 25; i++ {
		u, err := t.usage()
		if err != nil {
			res.Err = err
			return res
		}
		if i > 0 && u.FDs == last.FDs {
			break
		}
		last = u
		time.Sleep(200 * time.Millisecond)
	}
	res.After, _ = t.usage()
	atPeak()
	k := float64(max(res.Opened, 1))
	res.RSSPer = (res.After.RSSKiB - res.Before.RSSKiB) / k
	res.PSSPer = (res.After.PSSKiB - res.Before.PSSKiB) / k
	res.FDPer = float64(res.After.FDs-res.Before.FDs) / k
	res.ThreadsPer = float64(res.After.Threads-res.Before.Threads) / k
	return res
}
