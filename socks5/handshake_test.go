package socks5

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"socksd/internal/testutil"
	"socksd/socksproto"
)

// outcome is everything a handshake run produces: what was written to the
// client, how it ended, the request and the optimistic data.
type outcome struct {
	written []byte
	err     error // nil when done; socksproto.ErrShortBuffer when it wants more
	req     Request
	early   []byte
}

// drive feeds in to h the way the dispatcher does: Step on all unconsumed
// bytes, write each Reply, loop until done, an error, or "need more".
func drive(h *Handshake, in []byte) outcome {
	var o outcome
	for {
		a, err := h.Step(in)
		if a.Consumed < 0 || a.Consumed > len(in) {
			panic("Consumed out of range")
		}
		o.written = append(o.written, a.Reply...)
		in = in[a.Consumed:]
		if err != nil {
			o.err = err
			return o
		}
		if a.Done {
			o.req = *h.Request()
			o.early = in
			return o
		}
	}
}

type wantReq struct {
	cmd        socksproto.Command
	ip         string // netip form, "" = invalid
	host       string
	port       uint16
	hasAuth    bool
	user, pass string
}

func TestHandshakeVectors(t *testing.T) {
	const (
		greetNo   = "05 01 00 "
		greetUP   = "05 01 02 "
		greetBoth = "05 02 00 02 "
		connectEx = "05 01 00 03 0b 'example.com' 0050 "
	)
	tests := []struct {
		name    string
		in      string
		written string // hex of every reply, in order
		err     error  // sentinel (errors.Is); nil = done
		code    Reply  // expected *ReplyError code when err is a request rejection
		req     wantReq
		early   string
	}{
		// Accepted.
		{name: "no-auth connect hostname", in: greetNo + connectEx, written: "05 00",
			req: wantReq{cmd: socksproto.CmdConnect, host: "example.com", port: 80}},
		{name: "connect ipv4", in: greetNo + "05 01 00 01 7f000001 1f90", written: "05 00",
			req: wantReq{cmd: socksproto.CmdConnect, ip: "127.0.0.1", port: 8080}},
		{name: "connect ipv6", in: greetNo + "05 01 00 04 00000000000000000000000000000001 0050", written: "05 00",
			req: wantReq{cmd: socksproto.CmdConnect, ip: "::1", port: 80}},
		{name: "connect ipv4-mapped ipv6 is unmapped", in: greetNo + "05 01 00 04 00000000000000000000ffff7f000001 0050", written: "05 00",
			req: wantReq{cmd: socksproto.CmdConnect, ip: "127.0.0.1", port: 80}},
		{name: "prefers user/pass when both offered", in: greetBoth + "01 05 'alice' 03 'pw1' " + connectEx, written: "05 02 01 00",
			req: wantReq{cmd: socksproto.CmdConnect, host: "example.com", port: 80, hasAuth: true, user: "alice", pass: "pw1"}},
		{name: "greeting+auth+request+data in one write", in: greetUP + "01 01 'u' 01 'p' " + connectEx + "'GET / HTTP/1.0' 0d0a0d0a",
			written: "05 02 01 00", early: "'GET / HTTP/1.0' 0d0a0d0a",
			req: wantReq{cmd: socksproto.CmdConnect, host: "example.com", port: 80, hasAuth: true, user: "u", pass: "p"}},
		{name: "empty username and password accepted", in: greetUP + "01 00 00 " + connectEx, written: "05 02 01 00",
			req: wantReq{cmd: socksproto.CmdConnect, host: "example.com", port: 80, hasAuth: true}},
		{name: "unsolicited auth after 0x00 accepted", in: greetNo + "01 01 'a' 01 'b' " + connectEx, written: "05 00 01 00",
			req: wantReq{cmd: socksproto.CmdConnect, host: "example.com", port: 80, hasAuth: true, user: "a", pass: "b"}},
		{name: "<torS0X>0 accepted", in: greetUP + "01 09 '<torS0X>0' 03 'key' " + connectEx, written: "05 02 01 00",
			req: wantReq{cmd: socksproto.CmdConnect, host: "example.com", port: 80, hasAuth: true, user: "<torS0X>0", pass: "key"}},
		{name: "resolve", in: greetNo + "05 f0 00 03 0c 'example.test' 0000", written: "05 00",
			req: wantReq{cmd: socksproto.CmdResolve, host: "example.test"}},
		{name: "resolve_ptr ipv4", in: greetNo + "05 f1 00 01 c6336407 0000", written: "05 00",
			req: wantReq{cmd: socksproto.CmdResolvePTR, ip: "198.51.100.7"}},
		{name: "resolve_ptr ipv6", in: greetNo + "05 f1 00 04 20010db8000000000000000000000001 0000", written: "05 00",
			req: wantReq{cmd: socksproto.CmdResolvePTR, ip: "2001:db8::1"}},
		{name: "resolve_ptr address literal as domainname (C Tor tor_addr_parse)", in: greetNo + "05 f1 00 03 0c '198.51.100.7' 0000", written: "05 00",
			req: wantReq{cmd: socksproto.CmdResolvePTR, ip: "198.51.100.7"}},
		{name: "resolve_ptr bare ::1 literal (tor accepts)", in: greetNo + "05 f1 00 03 03 '::1' 0000", written: "05 00",
			req: wantReq{cmd: socksproto.CmdResolvePTR, ip: "::1"}},
		{name: "resolve_ptr [::1] literal (tor accepts)", in: greetNo + "05 f1 00 03 05 '[::1]' 0000", written: "05 00",
			req: wantReq{cmd: socksproto.CmdResolvePTR, ip: "::1"}},
		{name: "ipv4 literal as hostname stays a hostname", in: greetNo + "05 01 00 03 08 '1.2.3.4.' 0050", written: "05 00",
			req: wantReq{cmd: socksproto.CmdConnect, host: "1.2.3.4.", port: 80}},
		{name: "onion hostname with trailing dot", in: greetNo + "05 01 00 03 08 'a.onion.' 0050", written: "05 00",
			req: wantReq{cmd: socksproto.CmdConnect, host: "a.onion.", port: 80}},
		{name: "both methods offered: user/pass chosen", in: greetBoth + "01 04 'user' 04 'good' " + connectEx, written: "05 02 01 00",
			req: wantReq{cmd: socksproto.CmdConnect, host: "example.com", port: 80, hasAuth: true, user: "user", pass: "good"}},

		// Hostile inputs, each with its exact reply or close.
		{name: "05 03 99 21 10: no acceptable method", in: "05 03 99 21 10", written: "05 ff", err: ErrNoAcceptableMethod},
		{name: "05 00: zero methods", in: "05 00", written: "05 ff", err: ErrNoAcceptableMethod},
		{name: "auth before negotiation: closed silently", in: "01 05 'alice' 03 'pw1' 05 01 00 01 7f000001 0050", err: socksproto.ErrVersion},
		{name: "version 6: closed silently", in: "06 01 00", err: socksproto.ErrVersion},
		{name: "version 6 request after negotiation: closed silently", in: greetNo + "06 01 00 01 7f000001 0050", written: "05 00", err: socksproto.ErrVersion},
		{name: "wrong auth sub-version", in: greetUP + "02 01 'u' 01 'p'", written: "05 02 01 01", err: ErrAuthVersion},
		{name: "request instead of solicited auth", in: greetUP + connectEx, written: "05 02 01 01", err: ErrAuthVersion},
		{name: "<torS0X>1 rejected", in: greetUP + "01 09 '<torS0X>1' 03 'obj' " + connectEx, written: "05 02 01 01", err: ErrTorExtension},
		{name: "<torS0X> without format rejected", in: greetUP + "01 08 '<torS0X>' 00 " + connectEx, written: "05 02 01 01", err: ErrTorExtension},
		{name: "<torS0X>0 with suffix rejected", in: greetUP + "01 0a '<torS0X>0x' 00 " + connectEx, written: "05 02 01 01", err: ErrTorExtension},
		{name: "bind", in: greetNo + "05 02 00 01 7f000001 0050", written: "05 00 05 07 00 01 00000000 0000", err: socksproto.ErrCommand, code: ReplyCommandUnsupported},
		{name: "udp associate", in: greetNo + "05 03 00 01 00000000 0000", written: "05 00 05 07 00 01 00000000 0000", err: socksproto.ErrCommand, code: ReplyCommandUnsupported},
		{name: "unknown command 0x42", in: greetNo + "05 42 00 01 7f000001 0050", written: "05 00 05 07 00 01 00000000 0000", err: socksproto.ErrCommand, code: ReplyCommandUnsupported},
		{name: "ATYP 0x23", in: greetNo + "05 01 00 23 7f000001 0050", written: "05 00 05 08 00 01 00000000 0000", err: ErrAddressType, code: ReplyAddressUnsupported},
		{name: "resolve_ptr of a hostname", in: greetNo + "05 f1 00 03 0b 'example.com' 0000", written: "05 00 05 08 00 01 00000000 0000", err: ErrAddressType, code: ReplyAddressUnsupported},
		{name: "empty hostname", in: greetNo + "05 01 00 03 00 0050", written: "05 00 05 01 00 01 00000000 0000", err: socksproto.ErrHostname, code: ReplyGeneralFailure},
		{name: "hostname with NUL", in: greetNo + "05 01 00 03 0c 'example.com' 00 0050", written: "05 00 05 01 00 01 00000000 0000", err: socksproto.ErrHostname, code: ReplyGeneralFailure},
		{name: "hostname invalid UTF-8", in: greetNo + "05 01 00 03 04 'ab' c328 0050", written: "05 00 05 01 00 01 00000000 0000", err: socksproto.ErrHostname, code: ReplyGeneralFailure},
		{name: "hostname ---", in: greetNo + "05 01 00 03 03 '---' 0050", written: "05 00 05 01 00 01 00000000 0000", err: socksproto.ErrHostname, code: ReplyGeneralFailure},
		{name: "hostname label starting with '_' (C Tor's rule)", in: greetNo + "05 01 00 03 12 '_dmarc.example.com' 0050", written: "05 00 05 01 00 01 00000000 0000", err: socksproto.ErrHostname, code: ReplyGeneralFailure},
		{name: "hostname with space", in: greetNo + "05 01 00 03 03 'a b' 0050", written: "05 00 05 01 00 01 00000000 0000", err: socksproto.ErrHostname, code: ReplyGeneralFailure},
		{name: "reserved byte not zero", in: greetNo + "05 01 01 01 7f000001 0050", written: "05 00 05 01 00 01 00000000 0000", err: ErrReserved, code: ReplyGeneralFailure},
		{name: "connect port 0", in: greetNo + "05 01 00 01 7f000001 0000", written: "05 00 05 01 00 01 00000000 0000", err: socksproto.ErrPortZero, code: ReplyGeneralFailure},
		{name: "second auth message (tor: 0x01)", in: greetNo + "01 01 'a' 01 'b' 01 01 'a' 01 'b'", written: "05 00 01 00 05 01 00 01 00000000 0000", err: ErrAuthRepeated, code: ReplyGeneralFailure},
		{name: "second auth after solicited auth (tor: 0x01)", in: greetUP + "01 01 'a' 01 'b' 01 01 'a' 01 'b'", written: "05 02 01 00 05 01 00 01 00000000 0000", err: ErrAuthRepeated, code: ReplyGeneralFailure},
		{name: "hostname [::1] (tor: 0x01)", in: greetNo + "05 01 00 03 05 '[::1]' 0050", written: "05 00 05 01 00 01 00000000 0000", err: socksproto.ErrHostname, code: ReplyGeneralFailure},
		{name: "hostname ::1 (tor: 0x01)", in: greetNo + "05 01 00 03 03 '::1' 0050", written: "05 00 05 01 00 01 00000000 0000", err: socksproto.ErrHostname, code: ReplyGeneralFailure},
		{name: "hostname a.b.. (tor: 0x01)", in: greetNo + "05 01 00 03 05 'a.b..' 0050", written: "05 00 05 01 00 01 00000000 0000", err: socksproto.ErrHostname, code: ReplyGeneralFailure},
		{name: "resolve empty hostname (tor: 0x01)", in: greetNo + "05 f0 00 03 00 0000", written: "05 00 05 01 00 01 00000000 0000", err: socksproto.ErrHostname, code: ReplyGeneralFailure},
		{name: "resolve_ptr [198.51.100.7] (tor: 0x08)", in: greetNo + "05 f1 00 03 0e '[198.51.100.7]' 0000", written: "05 00 05 08 00 01 00000000 0000", err: ErrAddressType, code: ReplyAddressUnsupported},
		{name: "resolve_ptr 198.51.100.7. (tor: 0x08)", in: greetNo + "05 f1 00 03 0d '198.51.100.7.' 0000", written: "05 00 05 08 00 01 00000000 0000", err: ErrAddressType, code: ReplyAddressUnsupported},
		{name: "resolve_ptr empty (tor: 0x08)", in: greetNo + "05 f1 00 03 00 0000", written: "05 00 05 08 00 01 00000000 0000", err: ErrAddressType, code: ReplyAddressUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Handshake{}
			in := testutil.Unhex(t, tt.in)
			o := drive(h, in)
			if got, want := o.written, testutil.Unhex(t, tt.written); !bytes.Equal(got, want) {
				t.Errorf("written % x, want % x", got, want)
			}
			if tt.err == nil {
				if o.err != nil {
					t.Fatalf("err %v, want done", o.err)
				}
				checkReq(t, o.req, tt.req)
				if want := testutil.Unhex(t, tt.early); !bytes.Equal(o.early, want) {
					t.Errorf("early % x, want % x", o.early, want)
				}
				return
			}
			if !errors.Is(o.err, tt.err) {
				t.Fatalf("err %v, want %v", o.err, tt.err)
			}
			var re *ReplyError
			isRE := errors.As(o.err, &re)
			if tt.code != 0 && (!isRE || re.Code != tt.code) || tt.code == 0 && isRE {
				t.Errorf("err %v, want ReplyError code %#02x", o.err, byte(tt.code))
			}
			// After a failure the handshake refuses to go on.
			if _, err := h.Step(in); !errors.Is(err, socksproto.ErrHandshakeOver) {
				t.Errorf("Step after failure: %v, want socksproto.ErrHandshakeOver", err)
			}
		})
	}
}

func checkReq(t *testing.T, got Request, w wantReq) {
	t.Helper()
	var ip netip.Addr
	if w.ip != "" {
		ip = netip.MustParseAddr(w.ip)
	}
	if got.Command != w.cmd || got.IP != ip || string(got.Host) != w.host || got.Port != w.port ||
		got.HasAuth != w.hasAuth || string(got.Username) != w.user || string(got.Password) != w.pass {
		t.Errorf("request %+v (host %q user %q pass %q), want %+v", got, got.Host, got.Username, got.Password, w)
	}
	if w.host == "" && got.Host != nil {
		t.Errorf("Host %q set with IP request", got.Host)
	}
}

// TestHandshakeStrictPrefixes: every strict prefix of each valid message
// is "need more" and consumes nothing, in every phase (C Tor test_socks.c
// truncated cases).
func TestHandshakeStrictPrefixes(t *testing.T) {
	type phase struct {
		setup string // messages already accepted before this one
		msg   string
	}
	phases := []phase{
		{"", "05 01 00"},
		{"", "05 03 00 01 02"},
		{"05 01 02", "01 05 'alice' 03 'pw1'"},
		{"05 01 02", "01 00 00"},
		{"05 01 00", "01 01 'a' 01 'b'"},
		{"05 01 00", "05 01 00 01 7f000001 0050"},
		{"05 01 00", "05 01 00 04 00000000000000000000000000000001 0050"},
		{"05 01 00", "05 01 00 03 0b 'example.com' 0050"},
		{"05 01 00", "05 f0 00 03 0c 'example.test' 0000"},
		{"05 01 00", "05 f1 00 01 c6336407 0000"},
		{"05 01 00", "05 01 00 03 ff '" + strings.Repeat("a", 255) + "' 0050"},
		{"", "05 02 02 97"},
		{"05 01 97", "01 0000"},
		{"05 01 97", "01 0002 0009 'isolation' 0003 'tok' 0005 'fresh' 0001 '1'"},
		{"05 01 97", "01 0002 0008 'USERNAME' 0001 'u' 0006 'PASSWD' 0000"},
	}
	for _, p := range phases {
		msg := testutil.Unhex(t, p.msg)
		for n := 0; n < len(msg); n++ {
			h := &Handshake{}
			if o := drive(h, testutil.Unhex(t, p.setup)); p.setup != "" && !errors.Is(o.err, socksproto.ErrShortBuffer) {
				t.Fatalf("setup %q: %v", p.setup, o.err)
			}
			a, err := h.Step(msg[:n])
			if !errors.Is(err, socksproto.ErrShortBuffer) || a.Consumed != 0 || a.Reply != nil || a.Done {
				t.Fatalf("%s prefix %d/%d: %+v %v, want socksproto.ErrShortBuffer consuming nothing", p.msg, n, len(msg), a, err)
			}
		}
		h := &Handshake{}
		drive(h, testutil.Unhex(t, p.setup))
		if a, err := h.Step(msg); err != nil || a.Consumed != len(msg) {
			t.Fatalf("%s whole: %+v %v", p.msg, a, err)
		}
	}
}

// TestHandshakeChunked feeds every vector byte by byte and checks the
// outcome equals the one-write outcome.
func TestHandshakeChunked(t *testing.T) {
	for _, v := range seedVectors {
		in := testutil.Unhex(t, v)
		whole := drive(&Handshake{}, in)
		bytewise := driveChunks(&Handshake{}, in, func(int) int { return 1 })
		if err := sameOutcome(whole, bytewise); err != "" {
			t.Errorf("%s: %s", v, err)
		}
	}
}

func TestHandshakeResetReuses(t *testing.T) {
	h := &Handshake{}
	in := testutil.Unhex(t, "05 01 02 01 01 'a' 01 'b' 05 01 00 03 0b 'example.com' 0050")
	o := drive(h, in)
	if o.err != nil || string(o.req.Host) != "example.com" {
		t.Fatalf("first: %v", o.err)
	}
	h.Reset()
	o = drive(h, testutil.Unhex(t, "05 01 00 05 01 00 01 7f000001 0050"))
	if o.err != nil || o.req.HasAuth || o.req.Host != nil || o.req.IP != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("after Reset: %+v %v", o.req, o.err)
	}
}

func TestHandshakeReplyBuffersStayValid(t *testing.T) {
	// Replies of earlier phases must survive later Steps: a caller may
	// batch the writes.
	h := &Handshake{}
	in := testutil.Unhex(t, "05 01 02 01 01 'a' 01 'b' 05 01 00 01 7f000001 0050")
	a1, _ := h.Step(in)
	a2, _ := h.Step(in[a1.Consumed:])
	if _, err := h.Step(in[a1.Consumed+a2.Consumed:]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a1.Reply, []byte{5, 2}) || !bytes.Equal(a2.Reply, []byte{1, 0}) {
		t.Fatalf("replies changed: % x % x", a1.Reply, a2.Reply)
	}
}
