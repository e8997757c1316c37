package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"socksd/chain"
	"socksd/dispatch"
	"socksd/internal/leakcheck"
	"socksd/internal/sockstest"
	"socksd/isolation"
)

func checkLeaks(t testing.TB) { t.Helper(); leakcheck.Check(t) }

// harness is socksd's dispatcher chained to a fake SOCKS5 upstream.
type harness struct {
	t     testing.TB
	srv   *dispatch.Server
	fake  *sockstest.Server
	addr  string // the dispatcher's listener, "127.0.0.1:port"
	reg   *prometheus.Registry
	up    *chain.Upstream
	stOpt dispatch.Settings
}

type hopt struct {
	settings  func(*dispatch.Settings)
	fake      *sockstest.Server
	resolver  dispatch.Resolver
	isVirtual func(netip.Addr) bool
	upstream  dispatch.Upstream
	policy    isolation.Policy
	appLookup func(net.Conn) (isolation.App, error)
	ptArgs    bool // the listener reads SOCKS credentials as pt-spec arguments
	log       *zap.Logger
}

func testSettings() dispatch.Settings {
	return dispatch.Settings{
		HandshakeTimeout: 5 * time.Second,
		UpstreamTimeout:  5 * time.Second,
		MaxConnections:   100,
		ExtendedErrors:   true,
		HTTPConnect:      true,
		RejectInternal:   false, // tests go to loopback destinations
		SafeLogging:      true,
	}
}

func newHarness(t testing.TB, o hopt) *harness {
	t.Helper()
	checkLeaks(t)
	h := &harness{t: t, reg: prometheus.NewRegistry()}
	h.fake = o.fake
	if h.fake == nil {
		h.fake = &sockstest.Server{}
	}
	if err := h.fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.fake.Close)
	h.up = chain.New(h.fake.Addr(), nil)
	var up dispatch.Upstream = h.up
	var res dispatch.Resolver = h.up
	if o.upstream != nil {
		up = o.upstream
	}
	if o.resolver != nil {
		res = o.resolver
	}
	srv, err := dispatch.New(dispatch.Options{Upstream: up, Resolver: res, IsVirtual: o.isVirtual, Registerer: h.reg, Log: o.log})
	if err != nil {
		t.Fatal(err)
	}
	st := testSettings()
	if o.settings != nil {
		o.settings(&st)
	}
	h.stOpt = st
	pol := o.policy
	if pol.Fields == 0 {
		pol = isolation.Policy{Fields: isolation.Default | isolation.SessionGroup, SessionGroup: "test"}
	}
	if err := srv.Configure(st, []dispatch.ListenerConfig{{Addr: "127.0.0.1:0", Policy: pol, AppLookup: o.appLookup, PTArgs: o.ptArgs}}); err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.addr = srv.Addrs()["127.0.0.1:0"].String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return h
}

func (h *harness) dial() net.Conn {
	h.t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	h.t.Cleanup(func() { c.Close() })
	return c
}

// counter sums the counters (or gauges) of the harness's registry named
// name whose labels match; labels as k, v pairs.
func (h *harness) counter(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if labelValue(m, labels[i]) != labels[i+1] {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
	}
	return sum
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func readN(t testing.TB, c net.Conn, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v (got %x)", n, err, b)
	}
	return b
}

func expectBytes(t testing.TB, c net.Conn, want []byte) {
	t.Helper()
	got := readN(t, c, len(want))
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

// expectClosed asserts the peer closes c without sending anything more.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	b, err := io.ReadAll(c)
	if len(b) != 0 || (err != nil && !isReset(err)) {
		t.Fatalf("want close, got %q, %v", b, err)
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

func hexb(s string) []byte {
	s = strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s)
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, c := range []byte(s[2*i : 2*i+2]) {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= c - '0'
			case c >= 'a' && c <= 'f':
				v |= c - 'a' + 10
			}
		}
		b[i] = v
	}
	return b
}

func port16(p uint16) []byte { return []byte{byte(p >> 8), byte(p)} }
