package socks5

import (
	"net/netip"
	"testing"

	"socksd/internal/testutil"
	"socksd/socksproto"
)

// BenchmarkHandshakeConnect: greeting + CONNECT by hostname, parsed by a
// reused Handshake. A reused Handshake is meant to allocate nothing per
// request (0 allocs/op), so the figure to watch is allocs/op.
func BenchmarkHandshakeConnect(b *testing.B) {
	greeting := testutil.Unhex(b, "05 01 00")
	request := testutil.Unhex(b, "05 01 00 03 0b 'example.com' 0050")
	h := &Handshake{}
	b.ReportAllocs()
	b.SetBytes(int64(len(greeting) + len(request)))
	for b.Loop() {
		h.Reset()
		if _, err := h.Step(greeting); err != nil {
			b.Fatal(err)
		}
		if a, err := h.Step(request); err != nil || !a.Done {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandshakeConnectAuth: the pipelined form socksd's own clients
// and Tor Browser use: greeting offering 0x02, credentials, CONNECT.
func BenchmarkHandshakeConnectAuth(b *testing.B) {
	in := testutil.Unhex(b, "05 01 02 01 09 '<torS0X>0' 10 '0123456789abcdef' 05 01 00 03 0b 'example.com' 0050")
	h := &Handshake{}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		h.Reset()
		rest := in
		for {
			a, err := h.Step(rest)
			if err != nil {
				b.Fatal(err)
			}
			rest = rest[a.Consumed:]
			if a.Done {
				break
			}
		}
	}
}

func BenchmarkAppendReply(b *testing.B) {
	buf := make([]byte, 0, 32)
	addr := netip.MustParseAddr("127.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendReply(buf[:0], ReplySucceeded, addr, 0)
	}
}

// BenchmarkClientRequestEncode: the upstream's pipelined write into a
// reused buffer (0 allocs/op).
func BenchmarkClientRequestEncode(b *testing.B) {
	buf := make([]byte, 0, 1024)
	user := []byte("<torS0X>0")
	pass := []byte("0123456789abcdef0123456789abcdef")
	early := []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendClientRequest(buf[:0], user, pass, socksproto.CmdConnect, "example.com", netip.Addr{}, 80, early)
	}
}

// BenchmarkClientReply: parsing Tor's three answers to a CONNECT.
func BenchmarkClientReply(b *testing.B) {
	in := testutil.Unhex(b, "05 02 01 00 05 00 00 01 00000000 0000")
	c := &Client{Command: socksproto.CmdConnect}
	b.ReportAllocs()
	for b.Loop() {
		c.Reset()
		if r, err := c.Step(in); err != nil || !r.Done {
			b.Fatal(err)
		}
	}
}
