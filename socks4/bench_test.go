package socks4

import "testing"

func benchStep(b *testing.B, in []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	h := new(Handshake)
	for b.Loop() {
		*h = Handshake{}
		act, err := h.Step(in)
		if err != nil || !act.Done {
			b.Fatal(act, err)
		}
	}
}

// SOCKS4a CONNECT with a userid, as Tor Browser-era clients send it. One
// allocation: the Host string.
func BenchmarkStep4aConnect(b *testing.B) {
	benchStep(b, hx(b, "04 01 01bb 00000001 <isolation-key-1234> 00 <www.example.com> 00"))
}

// Plain SOCKS4 CONNECT: no allocation at all.
func BenchmarkStep4Connect(b *testing.B) {
	benchStep(b, hx(b, "04 01 01bb c0000201 <isolation-key-1234> 00"))
}

// A fresh Handshake per request, as the dispatcher does per connection.
func BenchmarkStep4aConnectNewHandshake(b *testing.B) {
	in := hx(b, "04 01 01bb 00000001 <isolation-key-1234> 00 <www.example.com> 00")
	b.ReportAllocs()
	for b.Loop() {
		h := new(Handshake)
		if act, err := h.Step(in); err != nil || !act.Done {
			b.Fatal(act, err)
		}
	}
}
