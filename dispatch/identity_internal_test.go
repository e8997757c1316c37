package dispatch

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"socksd/isolation"
)

type nopUpstream struct{}

func (nopUpstream) Open(context.Context, *Request, []byte) (Stream, error) { return nil, net.ErrClosed }

// fillKey puts the client's IP (never its port, IPv4-mapped unmapped) in
// the key, whatever form the net.Addr has.
func TestFillKeyClientAddr(t *testing.T) {
	s, err := New(Options{Upstream: nopUpstream{}})
	if err != nil {
		t.Fatal(err)
	}
	lc := &ListenerConfig{Addr: "127.0.0.1:9050", Policy: isolation.Policy{Fields: isolation.Default}}
	want := func(ip string) isolation.Key {
		in := isolation.Input{Protocol: "socks5", DestHost: "example.com", DestPort: 80}
		if ip != "" {
			in.ClientAddr = netip.MustParseAddr(ip)
		}
		return lc.Policy.Key(in)
	}
	for _, tc := range []struct {
		name string
		addr net.Addr
		ip   string
	}{
		{"tcp v4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}, "127.0.0.2"},
		{"tcp v4 other port", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 1}, "127.0.0.2"},
		{"tcp v4-mapped v6", &net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.3"), Port: 5}, "127.0.0.3"},
		{"tcp v6", &net.TCPAddr{IP: net.IPv6loopback, Port: 5}, "::1"},
		{"unix", &net.UnixAddr{Name: "@", Net: "unix"}, ""},
		{"nil", nil, ""},
	} {
		req := &Request{Protocol: ProtoSOCKS5, Command: CmdConnect, Host: "example.com", Port: 80, ClientAddr: tc.addr}
		s.fillKey(req, lc, nil)
		if req.Key != want(tc.ip) {
			t.Errorf("%s: key %v, want the key of client %q", tc.name, req.Key, tc.ip)
		}
	}
	a := &Request{Protocol: ProtoSOCKS5, Host: "example.com", Port: 80, ClientAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	b := &Request{Protocol: ProtoSOCKS5, Host: "example.com", Port: 80, ClientAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}
	s.fillKey(a, lc, nil)
	s.fillKey(b, lc, nil)
	if a.Key == b.Key {
		t.Error("two client addresses share a key under IsolateClientAddr")
	}
}

// fillKey carries the listener's keep_alive with the key, so the upstream
// sees the value of the listener's current configuration (a reload that
// changes it applies to the next stream) and keep_alive never changes
// which streams share a circuit.
func TestFillKeyKeepAlive(t *testing.T) {
	s, err := New(Options{Upstream: nopUpstream{}})
	if err != nil {
		t.Fatal(err)
	}
	var keys []isolation.Key
	for _, keep := range []bool{false, true} {
		lc := &ListenerConfig{Addr: "127.0.0.1:9050", Policy: isolation.Policy{Fields: isolation.Default, KeepAlive: keep}}
		req := &Request{Protocol: ProtoSOCKS5, Command: CmdConnect, Host: "example.com", Port: 80}
		s.fillKey(req, lc, nil)
		if req.KeepAlive != keep {
			t.Errorf("listener keep_alive %v: request has %v", keep, req.KeepAlive)
		}
		keys = append(keys, req.Key)
	}
	if keys[0] != keys[1] {
		t.Error("keep_alive changed the isolation key")
	}
}
