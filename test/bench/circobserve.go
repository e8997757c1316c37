package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"socksd/internal/endpoint"
)

// circObserver is a passive controller of one client tor: it subscribes to
// CIRC, CIRC_MINOR and STREAM events (control-spec §4.1.1, §4.1.2, §4.1.13)
// and counts circuits by purpose, which circuits carried streams, and
// whether any was a conflux leg. It sends no command after SETEVENTS, so
// the tor decides everything by itself.
type circObserver struct {
	conn net.Conn
	done chan struct{}

	mu    sync.Mutex
	circs map[string]*circInfo // by circuit id, while open
	// isoHosts: for streams whose target host starts with isoPrefix, the
	// hosts each circuit carried (kept after the circuit closes).
	isoHosts map[string]map[string]bool
	counts   circCounts
	started  time.Time
}

type circInfo struct {
	purpose string
	built   bool
	streams int
	conflux bool
}

// circCounts are an observer's totals since it started (or since reset).
type circCounts struct {
	Launched      map[string]int // by purpose at launch
	Built         map[string]int // by purpose when BUILT
	Failed        map[string]int // by "PURPOSE REASON[/REMOTE_REASON]"
	Streams       int            // streams that SUCCEEDED
	StreamsOn     map[string]int // by the purpose of the circuit they used
	ConfluxLegs   int            // circuits built with a CONFLUX_ID
	ConfluxStream int            // streams on a conflux leg
}

func newCircCounts() circCounts {
	return circCounts{Launched: map[string]int{}, Built: map[string]int{}, StreamsOn: map[string]int{}, Failed: map[string]int{}}
}

// BuiltTotal is every circuit built, of any purpose.
func (c circCounts) BuiltTotal() int {
	n := 0
	for _, v := range c.Built {
		n += v
	}
	return n
}

// observeCircuits connects to a control address ("unix:/path" or
// "host:port"), authenticates with the cookie and subscribes.
func observeCircuits(ctx context.Context, addr, cookiePath string) (*circObserver, error) {
	cookie, err := os.ReadFile(cookiePath)
	if err != nil {
		return nil, err
	}
	network, address := endpoint.Split(addr)
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	o := &circObserver{conn: conn, done: make(chan struct{}), circs: map[string]*circInfo{}, isoHosts: map[string]map[string]bool{}, counts: newCircCounts(), started: time.Now()}
	// The circuits open already (control-spec §3.9 GETINFO circuit-status:
	// a data block of "ID STATUS PATH KEY=VALUE..." lines), so a stream on
	// one of them is attributed; the events then keep the set current.
	for _, cmd := range []string{"AUTHENTICATE " + hex.EncodeToString(cookie), "GETINFO circuit-status", "SETEVENTS CIRC CIRC_MINOR STREAM"} {
		fmt.Fprintf(conn, "%s\r\n", cmd)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				conn.Close()
				return nil, err
			}
			line = strings.TrimRight(line, "\r\n")
			if strings.HasPrefix(line, "250+") || strings.HasPrefix(line, "250-") {
				if strings.HasPrefix(line, "250+") {
					if err := o.readCircuitStatus(br); err != nil {
						conn.Close()
						return nil, err
					}
				}
				continue
			}
			if !strings.HasPrefix(line, "250 ") {
				conn.Close()
				return nil, fmt.Errorf("control %s: %q", strings.Fields(cmd)[0], line)
			}
			break
		}
	}
	conn.SetDeadline(time.Time{})
	o.started = time.Now()
	go o.read(br)
	return o, nil
}

// readCircuitStatus reads the data block of GETINFO circuit-status up to
// its "." line, as if each line were a CIRC event (a circuit already BUILT
// is known but not counted as built during the measurement).
func (o *circObserver) readCircuitStatus(br *bufio.Reader) error {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "." {
			return nil
		}
		o.mu.Lock()
		o.handle("650 CIRC " + line)
		o.mu.Unlock()
	}
}

func (o *circObserver) read(br *bufio.Reader) {
	defer close(o.done)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		o.mu.Lock()
		o.handle(strings.TrimRight(line, "\r\n"))
		o.mu.Unlock()
	}
}

// handle applies one event line; o.mu is held.
func (o *circObserver) handle(line string) {
	f := strings.Fields(line)
	if len(f) < 4 || f[0] != "650" {
		return
	}
	kw := map[string]string{}
	for _, x := range f[3:] {
		if k, v, ok := strings.Cut(x, "="); ok {
			kw[k] = v
		}
	}
	switch f[1] {
	case "CIRC":
		id, status := f[2], f[3]
		c := o.circs[id]
		if c == nil {
			c = &circInfo{}
			o.circs[id] = c
		}
		if p := kw["PURPOSE"]; p != "" {
			c.purpose = p
		}
		if kw["CONFLUX_ID"] != "" {
			c.conflux = true
		}
		switch status {
		case "LAUNCHED":
			o.counts.Launched[c.purpose]++
		case "BUILT":
			if !c.built {
				c.built = true
				o.counts.Built[c.purpose]++
				if c.conflux {
					o.counts.ConfluxLegs++
				}
			}
		case "FAILED":
			reason := c.purpose + " " + kw["REASON"]
			if r := kw["REMOTE_REASON"]; r != "" {
				reason += "/" + r // DESTROYED: what the relay that destroyed it said
			}
			o.counts.Failed[reason]++
			delete(o.circs, id)
		case "CLOSED":
			delete(o.circs, id)
		}
	case "CIRC_MINOR":
		// "650 CIRC_MINOR ID PURPOSE_CHANGED ... PURPOSE=NEW OLD_PURPOSE=OLD"
		if c := o.circs[f[2]]; c != nil {
			if p := kw["PURPOSE"]; p != "" {
				c.purpose = p
			}
			if kw["CONFLUX_ID"] != "" || strings.HasPrefix(c.purpose, "CONFLUX") {
				c.conflux = true
			}
		}
	case "STREAM":
		// "650 STREAM ID STATUS CIRCID TARGET ...". SENTCONNECT is the
		// stream placed on its circuit, still with the name the client
		// asked for (by SUCCEEDED Tor may report the address instead).
		if len(f) < 6 {
			return
		}
		if f[3] == "SENTCONNECT" {
			host, _, _ := strings.Cut(f[5], ":")
			if host = strings.ToLower(host); strings.HasPrefix(host, isoPrefix) {
				if o.isoHosts[f[4]] == nil {
					o.isoHosts[f[4]] = map[string]bool{}
				}
				o.isoHosts[f[4]][host] = true
			}
		}
		if f[3] != "SUCCEEDED" {
			return
		}
		o.counts.Streams++
		c := o.circs[f[4]]
		if c == nil {
			o.counts.StreamsOn["?"]++
			return
		}
		c.streams++
		o.counts.StreamsOn[c.purpose]++
		if c.conflux || strings.HasPrefix(c.purpose, "CONFLUX") {
			o.counts.ConfluxStream++
		}
	}
}

// snapshot returns the totals, how long they cover, and the circuits open
// now that are built and never carried a stream, by purpose.
func (o *circObserver) snapshot() (circCounts, time.Duration, map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := newCircCounts()
	c.Streams, c.ConfluxLegs, c.ConfluxStream = o.counts.Streams, o.counts.ConfluxLegs, o.counts.ConfluxStream
	for k, v := range o.counts.Failed {
		c.Failed[k] = v
	}
	for k, v := range o.counts.Launched {
		c.Launched[k] = v
	}
	for k, v := range o.counts.Built {
		c.Built[k] = v
	}
	for k, v := range o.counts.StreamsOn {
		c.StreamsOn[k] = v
	}
	unused := map[string]int{}
	for _, ci := range o.circs {
		if ci.built && ci.streams == 0 {
			unused[ci.purpose]++
		}
	}
	return c, time.Since(o.started), unused
}

// isoPrefix starts the host name of every stream of the isolation check:
// "iso<identity>.example.test", so Tor's own STREAM events say which
// identity a stream belongs to.
const isoPrefix = "iso"

// isolation returns how many circuits carried isolation-check streams and
// which of them carried more than one identity (circuit id → hosts).
func (o *circObserver) isolation() (int, map[string][]string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	mixed := map[string][]string{}
	for id, hosts := range o.isoHosts {
		if len(hosts) > 1 {
			for h := range hosts {
				mixed[id] = append(mixed[id], h)
			}
			slices.Sort(mixed[id])
		}
	}
	return len(o.isoHosts), mixed
}

// reset starts the totals afresh (circuits already open stay known).
func (o *circObserver) reset() {
	o.mu.Lock()
	o.counts = newCircCounts()
	o.started = time.Now()
	o.mu.Unlock()
}

func (o *circObserver) close() {
	o.conn.Close()
	<-o.done
}
