package e2e

import (
	"bufio"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"socksd/internal/endpoint"
)

// torObserver is the tests' own control connection to a tor: it records
// every STREAM and CIRC event (control-spec §4.1.1, §4.1.2) so a test can
// say which circuit a stream really used, independently of what socksd
// claims. It is deliberately separate from socksd's torctl (the code under
// test) and from tornet.Control (which drops events).
type torObserver struct {
	conn net.Conn

	replies chan torCtlReply // one per command, in order (control-spec §2.1)
	cmdMu   sync.Mutex       // one command in flight

	mu      sync.Mutex
	streams []torStreamEv // every STREAM event, in order
	circs   map[string]torCircEv
	changed chan struct{} // closed and replaced on every event
	readErr error
}

type torCtlReply struct {
	code  string
	lines []string
}

// torStreamEv is one "650 STREAM ID Status CircID Target [k=v...]".
type torStreamEv struct {
	ID, Status, Circ, Target string
	KV                       map[string]string
	At                       time.Time
}

// torCircEv is the latest "650 CIRC ID Status [Path] [k=v...]" of a circuit;
// Purposes collects every PURPOSE it was reported with.
type torCircEv struct {
	ID, Status, Path string
	KV               map[string]string
	Purposes         map[string]bool
	Launched         bool // its LAUNCHED event was seen on this connection
}

// exitFP returns the fingerprint of the circuit's last isoHop ("" if no path).
func (c torCircEv) exitFP() string {
	hops := strings.Split(c.Path, ",")
	last := strings.TrimPrefix(hops[len(hops)-1], "$")
	fp, _, _ := strings.Cut(last, "~")
	fp, _, _ = strings.Cut(fp, "=")
	return fp
}

// torDialObserver connects to addr ("host:port" or "unix:/path"),
// authenticates with the cookie and subscribes to STREAM and CIRC.
func torDialObserver(t *testing.T, addr, cookiePath string) *torObserver {
	t.Helper()
	o, err := torTryObserver(addr, cookiePath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.conn.Close() })
	if _, err := o.do("SETEVENTS STREAM CIRC"); err != nil {
		t.Fatal(err)
	}
	return o
}

// torRawObserver connects without authenticating.
func torRawObserver(addr string) (*torObserver, error) {
	network, address := endpoint.Split(addr)
	conn, err := net.DialTimeout(network, address, 5*time.Second)
	if err != nil {
		return nil, err
	}
	o := &torObserver{conn: conn, replies: make(chan torCtlReply, 1), circs: map[string]torCircEv{}, changed: make(chan struct{})}
	go o.read()
	return o, nil
}

// read demultiplexes replies and 650 events (control-spec §2.3, §4.1).
func (o *torObserver) read() {
	r := bufio.NewReader(o.conn)
	var cur []string
	var data bool
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			o.mu.Lock()
			o.readErr = err
			close(o.changed)
			o.changed = make(chan struct{})
			o.mu.Unlock()
			close(o.replies)
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if data { // inside a "+" data block, up to "."
			if line == "." {
				data = false
			} else {
				cur[len(cur)-1] += "\n" + strings.TrimPrefix(line, ".")
			}
			continue
		}
		if len(line) < 4 {
			continue
		}
		code, sep, text := line[:3], line[3], line[4:]
		cur = append(cur, text)
		switch sep {
		case '+':
			data = true
			continue
		case '-':
			continue
		}
		if code == "650" {
			o.event(cur[0])
		} else {
			o.replies <- torCtlReply{code: code, lines: cur}
		}
		cur = nil
	}
}

func (o *torObserver) event(text string) {
	f := strings.Fields(text)
	if len(f) < 3 {
		return
	}
	kv := torParseKV(text)
	o.mu.Lock()
	defer o.mu.Unlock()
	switch f[0] {
	case "STREAM":
		if len(f) < 5 {
			return
		}
		o.streams = append(o.streams, torStreamEv{ID: f[1], Status: f[2], Circ: f[3], Target: f[4], KV: kv, At: time.Now()})
	case "CIRC":
		c := o.circs[f[1]]
		c.ID, c.Status, c.KV = f[1], f[2], kv
		if c.Purposes == nil {
			c.Purposes = map[string]bool{}
		}
		if p := kv["PURPOSE"]; p != "" {
			c.Purposes[p] = true
		}
		if f[2] == "LAUNCHED" {
			c.Launched = true
		}
		if len(f) > 3 && !strings.Contains(f[3], "=") {
			c.Path = f[3]
		}
		o.circs[f[1]] = c
	default:
		return
	}
	close(o.changed)
	o.changed = make(chan struct{})
}

// torParseKV returns the KEY=VALUE pairs of an event line; quoted values are
// unescaped (control-spec §2.1 QuotedString).
func torParseKV(s string) map[string]string {
	kv := map[string]string{}
	for i := 0; i < len(s); {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '=' {
			j++
		}
		if j >= len(s) || s[j] != '=' {
			for j < len(s) && s[j] != ' ' {
				j++
			}
			i = j
			continue
		}
		key := s[i:j]
		j++
		var val strings.Builder
		if j < len(s) && s[j] == '"' {
			j++
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				val.WriteByte(s[j])
				j++
			}
			j++
		} else {
			for j < len(s) && s[j] != ' ' {
				val.WriteByte(s[j])
				j++
			}
		}
		kv[key] = val.String()
		i = j
	}
	return kv
}

// do sends one command and returns its reply lines; a non-2xx reply is an
// error.
func (o *torObserver) do(cmd string) ([]string, error) {
	o.cmdMu.Lock()
	defer o.cmdMu.Unlock()
	o.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(o.conn, "%s\r\n", cmd); err != nil {
		return nil, err
	}
	select {
	case r, ok := <-o.replies:
		if !ok {
			return nil, fmt.Errorf("control connection closed: %v", o.err())
		}
		if r.code[0] != '2' {
			return r.lines, fmt.Errorf("%s: %s %s", cmd, r.code, strings.Join(r.lines, "; "))
		}
		return r.lines, nil
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s: no reply in 30s", cmd)
	}
}

func (o *torObserver) err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.readErr
}

// getInfo returns one GETINFO value (control-spec §3.9).
func (o *torObserver) getInfo(t *testing.T, key string) string {
	t.Helper()
	v, err := o.info(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mark is a position in the event log: streams NEW after it.
func (o *torObserver) mark() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.streams)
}

// waitFor polls cond (under the lock, after every event) until it returns
// true or timeout passes.
func (o *torObserver) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		ok, ch := cond(), o.changed
		o.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// userStreams returns the IDs of client streams (PURPOSE=USER, CONNECT:
// NEW, not NEWRESOLVE) first seen after mark, in order.
func (o *torObserver) userStreams(mark int) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.userStreamsLocked(mark)
}

func (o *torObserver) userStreamsLocked(mark int) []string {
	var ids []string
	for _, e := range o.streams[mark:] {
		if e.Status == "NEW" && e.KV["PURPOSE"] == "USER" {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// streamEvents returns the events of one stream.
func (o *torObserver) streamEvents(id string) []torStreamEv {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []torStreamEv
	for _, e := range o.streams {
		if e.ID == id {
			out = append(out, e)
		}
	}
	return out
}

// circ returns what the events said about circuit id.
func (o *torObserver) circ(id string) (torCircEv, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, ok := o.circs[id]
	c.Purposes = maps.Clone(c.Purposes) // the reader adds to it under o.mu
	return c, ok
}

// streamsSince waits until n client streams NEW after mark have all
// SUCCEEDED and returns their circuits, in order. It fails the test (with
// the events seen) otherwise.
func (o *torObserver) streamsSince(t *testing.T, mark, n int) []string {
	t.Helper()
	var circs []string
	ok := o.waitFor(60*time.Second, func() bool {
		ids := o.userStreamsLocked(mark)
		if len(ids) < n {
			return false
		}
		circs = circs[:0]
		for _, id := range ids {
			c := ""
			for _, e := range o.streams {
				if e.ID == id && e.Status == "SUCCEEDED" {
					c = e.Circ
				}
			}
			if c == "" {
				return false
			}
			circs = append(circs, c)
		}
		return true
	})
	if !ok || len(circs) != n {
		t.Fatalf("want %d client streams to succeed after mark %d; events:\n%s", n, mark, o.dump(mark))
	}
	return circs
}

// dump formats the STREAM events after mark (for failure messages).
func (o *torObserver) dump(mark int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	for _, e := range o.streams[mark:] {
		fmt.Fprintf(&b, "  STREAM %s %s %s %s %s\n", e.ID, e.Status, e.Circ, e.Target, e.KV["PURPOSE"])
	}
	return b.String()
}

// circInfo returns what Tor says about circuit id: its CIRC events when
// the observer saw it launched, else its GETINFO circuit-status line (a
// circuit built before the observer connected).
func (o *torObserver) circInfo(t *testing.T, id string) (torCircEv, bool) {
	t.Helper()
	var c torCircEv
	if o.waitFor(2*time.Second, func() bool {
		c = o.circs[id]
		// The reader keeps adding to this map under o.mu: hand out a copy.
		c.Purposes = maps.Clone(c.Purposes)
		return c.Path != "" && c.KV["PURPOSE"] != ""
	}) {
		return c, true
	}
	if now, found := o.circStatus(t, id); found {
		return now, true
	}
	return c, false
}

// circStatus returns circuit id's line of GETINFO circuit-status.
func (o *torObserver) circStatus(t *testing.T, id string) (torCircEv, bool) {
	t.Helper()
	status, err := o.info("circuit-status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(status) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == id {
			kv := torParseKV(line)
			return torCircEv{ID: id, Status: f[1], Path: f[2], KV: kv, Purposes: map[string]bool{kv["PURPOSE"]: true}}, true
		}
	}
	return torCircEv{}, false
}

// wantSocksdCircuit fails unless circuit id is one socksd built: Tor
// reports it with PURPOSE=CONTROLLER. Tor never gives that purpose to a
// circuit of its own; only a controller does (EXTENDCIRCUIT, then
// SETCIRCUITPURPOSE, control-spec §3.10-3.11), and socksd is the only
// controller of this tor that builds circuits (the observer never does).
func (o *torObserver) wantSocksdCircuit(t *testing.T, id string) torCircEv {
	t.Helper()
	c, ok := o.circInfo(t, id)
	if ok && !c.Purposes["CONTROLLER"] {
		// socksd sets the purpose right after EXTENDCIRCUIT answers; on a
		// loaded box BUILT can come first, and the change itself raises
		// only a CIRC_MINOR event: ask Tor for the circuit's purpose now.
		if now, found := o.circStatus(t, id); found {
			c = now
		}
	}
	if !ok || !c.Purposes["CONTROLLER"] {
		t.Fatalf("circuit %s: %+v (known %v); want one socksd built (PURPOSE=CONTROLLER)", id, c, ok)
	}
	return c
}
