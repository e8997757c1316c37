package resolve

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeTor records MapAddress calls and keeps the mapping table Tor would
// have; Resolve answers from a fixed table.
type fakeTor struct {
	mu       sync.Mutex
	maps     map[string]string // Tor's controller mappings: from → to
	calls    []string          // every MapAddress, "from=to", in order
	resolves []string          // every Resolve, "name" or "-x addr"
	answers  map[string]string // Resolve answers; key "name" or "-x addr"
	mapErr   error             // MapAddress fails with this when set
	gate     chan struct{}     // when set, MapAddress waits for a receive from it
	unmapGt  chan struct{}     // when set, MapAddress x=x waits for a receive from it
}

func newFakeTor() *fakeTor {
	return &fakeTor{maps: map[string]string{}, answers: map[string]string{}}
}

func (t *fakeTor) MapAddress(ctx context.Context, from, to string) (string, error) {
	t.mu.Lock()
	gate := t.gate
	if from == to {
		gate = t.unmapGt
	}
	t.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls = append(t.calls, from+"="+to)
	if t.mapErr != nil {
		return "", t.mapErr
	}
	if from == to { // control-spec §3.8: x=x removes the mapping
		delete(t.maps, from)
	} else {
		t.maps[from] = to
	}
	return from, nil
}

func (t *fakeTor) Resolve(ctx context.Context, name string, reverse bool) (string, error) {
	key := name
	if reverse {
		key = "-x " + name
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resolves = append(t.resolves, key)
	if a, ok := t.answers[key]; ok {
		return a, nil
	}
	return "", ErrNoAnswer
}

func (t *fakeTor) mapped(from string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.maps[from]
}

func (t *fakeTor) callLog() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.calls...)
}

func (t *fakeTor) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.maps = map[string]string{}
	t.calls = nil
}

// clock is an injectable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder is a dns.ResponseWriter that keeps what was written.
type recorder struct {
	remote net.Addr
	msgs   []*dns.Msg
}

func (r *recorder) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error {
	// Pack like the real writer does: an answer that cannot be packed is a bug.
	if _, err := m.Pack(); err != nil {
		return err
	}
	r.msgs = append(r.msgs, m)
	return nil
}
func (r *recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	r.msgs = append(r.msgs, m)
	return len(b), nil
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

var loopback = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// testConfig is a small all-automap config with an injected clock.
func testConfig(c *clock) Config {
	return Config{
		Automap:         AutomapAll,
		AutomapSuffixes: []string{".onion", ".exit"},
		VirtualIPv4:     netip.MustParsePrefix("127.192.0.0/10"),
		VirtualIPv6:     netip.MustParsePrefix("fd00:5ec5:d000::/48"),
		TTL:             60 * time.Second,
		MappingIdle:     time.Hour,
		Now:             c.Now,
	}
}

func newTestBridge(t testing.TB, cfg Config, tor Tor) *Bridge {
	t.Helper()
	b, err := New(cfg, tor, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// ask sends one query from loopback through ServeDNS and returns the answer.
func ask(t testing.TB, b *Bridge, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	return askMsg(t, b, loopback, q)
}

func askMsg(t testing.TB, b *Bridge, from net.Addr, q *dns.Msg) *dns.Msg {
	t.Helper()
	w := &recorder{remote: from}
	b.ServeDNS(w, q)
	if len(w.msgs) != 1 {
		t.Fatalf("query %v: %d answers, want 1", q.Question, len(w.msgs))
	}
	m := w.msgs[0]
	if m.Id != q.Id || !m.Response {
		t.Fatalf("answer id %d response %v, want id %d response", m.Id, m.Response, q.Id)
	}
	return m
}

// errUnpack: the wire message does not parse; miekg's server answers such a
// message FORMERR itself (after our allowReader), ServeDNS never sees it.
var errUnpack = fmt.Errorf("unpack failed")

// serveWire runs a wire-format query the way miekg's server does (unpack,
// acceptQuery, ServeDNS) and returns what was written, or nil.
func serveWire(b *Bridge, from net.Addr, wire []byte) (*dns.Msg, error) {
	req := new(dns.Msg)
	if err := req.Unpack(wire); err != nil {
		return nil, errUnpack
	}
	var dh dns.Header
	dh.Bits = uint16(wire[2])<<8 | uint16(wire[3])
	if acceptQuery(dh) != dns.MsgAccept {
		return nil, nil
	}
	w := &recorder{remote: from}
	b.ServeDNS(w, req)
	switch len(w.msgs) {
	case 0:
		return nil, nil
	case 1:
		return w.msgs[0], nil
	}
	return nil, fmt.Errorf("%d answers", len(w.msgs))
}

// onlyAddr returns the single A/AAAA answer of m.
func onlyAddr(t testing.TB, m *dns.Msg) netip.Addr {
	t.Helper()
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("want one answer, got rcode %s and %d answers", dns.RcodeToString[m.Rcode], len(m.Answer))
	}
	switch rr := m.Answer[0].(type) {
	case *dns.A:
		a, _ := netip.AddrFromSlice(rr.A.To4())
		return a
	case *dns.AAAA:
		a, _ := netip.AddrFromSlice(rr.AAAA)
		return a
	}
	t.Fatalf("answer %v is not an address", m.Answer[0])
	return netip.Addr{}
}
