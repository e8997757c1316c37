package socks4

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"socksd/internal/testutil"
	"socksd/socksproto"
)

// encode is a SOCKS4/4a client's encoding of r.
func encode(r *Request) []byte {
	ip := r.IP.As4()
	b := []byte{4, byte(r.Command), byte(r.Port >> 8), byte(r.Port), ip[0], ip[1], ip[2], ip[3]}
	b = append(b, r.UserID...)
	b = append(b, 0)
	if r.Is4a() {
		b = append(b, r.Host...)
		b = append(b, 0)
	}
	return b
}

func FuzzStep(f *testing.F) {
	for _, tc := range validVectors {
		in := hx(f, tc.in)
		f.Add(in, []byte{})
		f.Add(in, []byte{0})
		f.Add(in, []byte{3, 1, 7})
	}
	for _, tc := range rejectVectors {
		f.Add(hx(f, tc.in), []byte{})
		f.Add(hx(f, tc.in), []byte{5, 63})
	}
	f.Fuzz(func(t *testing.T, in, split []byte) {
		whole := run(in, []int{len(in)})
		chunked := run(in, testutil.Chunks(split, len(in), 64))
		if whole != chunked {
			t.Fatalf("whole %+v != chunked %+v", whole, chunked)
		}
		if whole.consumed > len(in) || whole.consumed < 0 {
			t.Fatalf("consumed %d of %d", whole.consumed, len(in))
		}
		if strings.HasPrefix(whole.err, "unknown") {
			t.Fatalf("unexpected error %s", whole.err)
		}
		switch {
		case whole.short:
			if len(in) >= MaxMessage {
				t.Fatalf("still waiting with %d bytes", len(in))
			}
		case whole.done:
			var h Handshake
			if _, err := h.Step(in); err != nil {
				t.Fatal(err)
			}
			r := h.Request()
			if _, ok := hostOf([]byte(r.Host)); r.Is4a() != (r.Host != "") || !ok && r.Host != "" {
				t.Fatalf("inconsistent request %+v", *r)
			}
			if r.Command == socksproto.CmdConnect && r.Port == 0 || r.IP.As4() == [4]byte{} {
				t.Fatalf("accepted a forbidden request %+v", *r)
			}
			// Round trip: a client's encoding of the request parses to
			// the same request, and is the bytes the client sent unless
			// brackets were stripped from an IPv6 literal.
			enc := encode(r)
			if !strings.Contains(r.Host, ":") && !bytes.Equal(enc, in[:whole.consumed]) {
				t.Fatalf("re-encoded %x, sent %x", enc, in[:whole.consumed])
			}
			again := run(enc, []int{len(enc)})
			if !again.done || again.req != whole.req || again.consumed != len(enc) {
				t.Fatalf("round trip %+v, want %+v", again, whole)
			}
			if p := run(enc[:len(enc)-1], []int{len(enc)}); !p.short {
				t.Fatalf("strict prefix of a valid request: %+v", p)
			}
		case whole.err == socksproto.ErrVersion.Error():
			if in[0] == 4 || whole.reply != "" {
				t.Fatalf("version error on %x with reply %q", in[0], whole.reply)
			}
		default:
			if whole.reply != string(hx(t, rejectReply)) {
				t.Fatalf("rejection %+v without the 0x5b reply", whole)
			}
		}
	})
}

func TestHandshakeErrDoneSentinel(t *testing.T) {
	var h Handshake
	if _, err := h.Step(hx(t, "06")); !errors.Is(err, socksproto.ErrVersion) {
		t.Fatal(err)
	}
	if _, err := h.Step(hx(t, "04 01 0050 c0000201 00")); !errors.Is(err, socksproto.ErrHandshakeOver) {
		t.Fatalf("Step after a version error: %v, want socksproto.ErrHandshakeOver", err)
	}
}
