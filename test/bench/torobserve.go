package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// streamObserver is an outside view of stream attachment: its own control
// connection to the client tor with SETEVENTS STREAM (control-spec §4.1.2),
// timing each stream from NEW to SENTCONNECT as the events are read. For a
// socksd stream that interval holds socksd's ATTACHSTREAM and Tor acting on
// it (§3.13); for a stream straight into Tor's SocksPort it is Tor
// attaching by itself, so the two are comparable. It is a tiny line client
// of its own, timestamping each line as it is read, so no event queue
// between the socket and the clock adds delay.
type streamObserver struct {
	conn net.Conn
	port uint16 // only streams to this destination port count

	mu      sync.Mutex
	label   obsLabel               // who is making streams right now
	pending map[string]pendingNew  // stream id → NEW
	samples map[obsLabel][]float64 // NEW→SENTCONNECT, ms
	done    chan struct{}
}

// obsLabel attributes a stream to the target and phase that opened it; the
// bench opens one stream at a time, so the label set before a request is
// the label of the NEW event it causes.
type obsLabel struct {
	target string
	fresh  bool // first stream of an isolation identity (a new circuit)
}

type pendingNew struct {
	at    time.Time
	label obsLabel
}

// observeStreams connects to addr, authenticates with the cookie (§3.5,
// AUTHENTICATE with the hex cookie) and subscribes to STREAM events.
func observeStreams(ctx context.Context, addr, cookiePath string, port uint16) (*streamObserver, error) {
	cookie, err := os.ReadFile(cookiePath)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	for _, cmd := range []string{"AUTHENTICATE " + hex.EncodeToString(cookie), "SETEVENTS STREAM"} {
		fmt.Fprintf(conn, "%s\r\n", cmd)
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "250 ") {
			conn.Close()
			return nil, fmt.Errorf("control %s: %q %v", strings.Fields(cmd)[0], line, err)
		}
	}
	conn.SetDeadline(time.Time{})
	o := &streamObserver{conn: conn, port: port, pending: map[string]pendingNew{},
		samples: map[obsLabel][]float64{}, done: make(chan struct{})}
	go o.read(br)
	return o, nil
}

// setLabel names the streams opened from now on.
func (o *streamObserver) setLabel(l obsLabel) {
	o.mu.Lock()
	o.label = l
	o.mu.Unlock()
}

// read handles "650 STREAM <ID> <StreamStatus> <CircuitID> <Target> ..."
// (§4.1.2); nothing but events arrives after SETEVENTS.
func (o *streamObserver) read(br *bufio.Reader) {
	defer close(o.done)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		now := time.Now()
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "650" || f[1] != "STREAM" {
			continue
		}
		id, status, target := f[2], f[3], f[5]
		if i := strings.LastIndexByte(target, ':'); i < 0 || target[i+1:] != strconv.Itoa(int(o.port)) {
			continue
		}
		o.mu.Lock()
		switch status {
		case "NEW":
			o.pending[id] = pendingNew{at: now, label: o.label}
		case "SENTCONNECT":
			if p, ok := o.pending[id]; ok {
				delete(o.pending, id)
				o.samples[p.label] = append(o.samples[p.label], float64(now.Sub(p.at))/1e6)
			}
		case "FAILED", "CLOSED":
			delete(o.pending, id)
		}
		o.mu.Unlock()
	}
}

// close ends the connection and returns the samples.
func (o *streamObserver) close() map[obsLabel][]float64 {
	o.conn.Close()
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.samples
}

// histogram is a Prometheus histogram summed over scrapes: cumulative
// counts by bucket upper bound.
type histogram struct {
	buckets map[float64]float64 // le → cumulative count
	count   float64
}

// scrapeHistogram fetches http://addr/metrics and adds the buckets of
// metric (per value of label circuit) into into.
func scrapeHistogram(addr, metric string, into map[string]*histogram) error {
	cl := http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseHistogram(resp.Body, metric, into)
}

// parseHistogram reads the Prometheus text format (only the _bucket and
// _count lines of metric matter) and adds them into into, keyed by the
// value of the label circuit.
func parseHistogram(r io.Reader, metric string, into map[string]*histogram) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	found := false
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok || (name != metric+"_bucket" && name != metric+"_count") {
			continue
		}
		labels, val, ok := strings.Cut(rest, "} ")
		if !ok {
			return fmt.Errorf("unparsable metrics line %q", line)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return fmt.Errorf("unparsable metrics line %q", line)
		}
		kv := map[string]string{}
		for _, p := range strings.Split(labels, ",") {
			if k, v, ok := strings.Cut(p, "="); ok {
				kv[k] = strings.Trim(v, `"`)
			}
		}
		h := into[kv["circuit"]]
		if h == nil {
			h = &histogram{buckets: map[float64]float64{}}
			into[kv["circuit"]] = h
		}
		found = true
		if name == metric+"_count" {
			h.count += v
			continue
		}
		le, err := strconv.ParseFloat(kv["le"], 64) // "+Inf" parses as +Inf
		if err != nil {
			return fmt.Errorf("unparsable le in %q", line)
		}
		h.buckets[le] += v
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s not exported", metric)
	}
	return nil
}

// quantile is the upper bound of the first bucket holding the q-th
// fraction of observations (so an upper bound on the true quantile); +Inf
// when it lies beyond the last finite bucket, NaN without observations.
func (h *histogram) quantile(q float64) float64 {
	if h == nil || h.count == 0 {
		return math.NaN()
	}
	les := make([]float64, 0, len(h.buckets))
	for le := range h.buckets {
		les = append(les, le)
	}
	slices.Sort(les)
	for _, le := range les {
		if h.buckets[le] >= q*h.count {
			return le
		}
	}
	return math.Inf(1)
}

// waitHealthy polls socksd's /healthz until it answers 200 (Tor usable:
// control connection up, bootstrapped), bounded by timeout.
func waitHealthy(addr string, timeout time.Duration) error {
	cl := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		resp, err := cl.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("socksd not healthy after %s: %s", timeout, last)
}
