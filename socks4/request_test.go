package socks4

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"socksd/socksproto"
)

// hx decodes a hex vector; spaces are ignored, and "<text>" inserts the
// text's bytes verbatim so hostnames stay readable.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for len(s) > 0 {
		if s[0] == '<' {
			end := strings.IndexByte(s, '>')
			out = append(out, s[1:end]...)
			s = s[end+1:]
			continue
		}
		end := strings.IndexByte(s, '<')
		if end < 0 {
			end = len(s)
		}
		b, err := hex.DecodeString(strings.ReplaceAll(s[:end], " ", ""))
		if err != nil {
			t.Fatalf("bad vector %q: %v", s, err)
		}
		out = append(out, b...)
		s = s[end:]
	}
	return out
}

var rejectReply = "005b000000000000"

func rep(n int, c byte) string { return strings.Repeat(string([]byte{c}), n) }

type wantReq struct {
	cmd  socksproto.Command
	port uint16
	ip   string
	host string
	user string
	is4a bool
}

var validVectors = []struct {
	name     string
	in       string
	consumed int // 0 = len(in)
	want     wantReq
}{
	{"socks4 connect", "04 01 0050 c0000201 00", 0,
		wantReq{socksproto.CmdConnect, 80, "192.0.2.1", "", "", false}},
	{"socks4 connect with userid", "04 01 01bb c0000201 <alice> 00", 0,
		wantReq{socksproto.CmdConnect, 443, "192.0.2.1", "", "alice", false}},
	{"socks4 userid raw bytes kept", "04 01 0050 c0000201 fffe01 00", 0,
		wantReq{socksproto.CmdConnect, 80, "192.0.2.1", "", "\xff\xfe\x01", false}},
	{"socks4 resolve", "04 f0 0000 c0000201 00", 0,
		wantReq{socksproto.CmdResolve, 0, "192.0.2.1", "", "", false}},
	{"socks4a connect", "04 01 0050 00000001 00 <example.com> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", "example.com", "", true}},
	{"socks4a connect 0.0.0.255 with userid", "04 01 0050 000000ff <u> 00 <example.com> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.255", "example.com", "u", true}},
	{"socks4a resolve port 0", "04 f0 0000 00000001 00 <example.com> 00", 0,
		wantReq{socksproto.CmdResolve, 0, "0.0.0.1", "example.com", "", true}},
	{"socks4a onion", "04 01 0050 00000001 00 <www.2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", "www.2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion", "", true}},
	{"socks4a exit notation", "04 01 0050 00000001 00 <www.example.com.exampletornode.exit> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", "www.example.com.exampletornode.exit", "", true}},
	{"socks4a fqdn trailing dot", "04 01 0050 00000001 00 <example.com.> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", "example.com.", "", true}},
	{"socks4a underscore and inner hyphen", "04 01 0050 00000001 00 <a_b.c-.x--y> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", "a_b.c-.x--y", "", true}},
	{"socks4a ipv4 literal", "04 01 0050 00000001 00 <192.0.2.7> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", "192.0.2.7", "", true}},
	{"socks4a ipv6 literal", "04 01 0050 00000001 00 <2001:db8::1> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", "2001:db8::1", "", true}},
	{"socks4a bracketed ipv6 literal", "04 01 0050 00000001 00 <[2001:db8::1]> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", "2001:db8::1", "", true}},
	{"socks4a punycode", "04 01 0050 00000001 00 <xn--bcher-kva.de> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", "xn--bcher-kva.de", "", true}},
	{"socks4a 255-byte hostname", "04 01 0050 00000001 00 <" + label255() + "> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", label255(), "", true}},
	{"512-byte message exactly", "04 01 0050 00000001 <" + rep(247, 'u') + "> 00 <" + label255() + "> 00", 0,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", label255(), rep(247, 'u'), true}},
	{"socks4 early data kept", "04 01 0050 c0000201 00 <GET / HTTP/1.0\r\n\r\n>", 9,
		wantReq{socksproto.CmdConnect, 80, "192.0.2.1", "", "", false}},
	{"socks4a early data kept", "04 01 0050 00000001 00 <example.com> 00 <hello>", 21,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", "example.com", "", true}},
	// A NUL cannot be inside a SOCKS4a hostname: the first NUL ends it and
	// what follows is the client's early data. This is the framing of the
	// protocol (C Tor reads it the same way); the early data then goes to
	// "exa", never to "exa\x00mple.com".
	{"socks4a NUL ends hostname", "04 01 0050 00000001 00 <exa> 00 <mple.com> 00", 13,
		wantReq{socksproto.CmdConnect, 80, "0.0.0.1", "exa", "", true}},
}

// label255 is a valid 255-byte hostname: 63-byte labels joined by dots.
func label255() string {
	l := rep(63, 'a')
	return l + "." + l + "." + l + "." + rep(63, 'b') // 4*63+3 = 255
}

var rejectVectors = []struct {
	name     string
	in       string
	consumed int // 0 = len(in)
	err      error
}{
	{"socks4 BIND", "04 02 0050 c0000201 00", 0, socksproto.ErrCommand},
	{"socks4a BIND", "04 02 0050 00000001 00 <example.com> 00", 0, socksproto.ErrCommand},
	{"command 0x00", "04 00 0050 c0000201 00", 0, socksproto.ErrCommand},
	{"command 0x03", "04 03 0050 c0000201 00", 0, socksproto.ErrCommand},
	{"RESOLVE_PTR is socks5-only", "04 f1 0050 c0000201 00", 0, socksproto.ErrCommand},
	{"command 0xff", "04 ff 0050 c0000201 00", 0, socksproto.ErrCommand},
	{"socks4 IP 0", "04 01 0050 00000000 00", 0, ErrZeroIP},
	{"socks4 IP 0 resolve", "04 f0 0000 00000000 00", 0, ErrZeroIP},
	{"socks4 IP 0 with userid", "04 01 0050 00000000 <bob> 00", 0, ErrZeroIP},
	{"port 0 connect", "04 01 0000 c0000201 00", 0, socksproto.ErrPortZero},
	{"port 0 socks4a connect", "04 01 0000 00000001 00 <example.com> 00", 0, socksproto.ErrPortZero},
	{"2000-byte userid", "04 01 0050 c0000201 <" + rep(2000, 'u') + "> 00", MaxMessage, ErrTooLong},
	{"userid unterminated at 512", "04 01 0050 c0000201 <" + rep(504, 'u') + ">", MaxMessage, ErrTooLong},
	{"2000-byte socks4a hostname", "04 01 0050 00000001 00 <" + rep(2000, 'h') + "> 00", 9 + 256, ErrHostnameTooLong},
	{"256-byte socks4a hostname unterminated", "04 01 0050 00000001 00 <" + rep(256, 'h') + ">", 9 + 256, ErrHostnameTooLong},
	{"256-byte socks4a hostname terminated", "04 01 0050 00000001 00 <" + rep(256, 'h') + "> 00", 9 + 256, ErrHostnameTooLong},
	{"unterminated hostname at 512", "04 01 0050 00000001 <" + rep(300, 'u') + "> 00 <" + rep(203, 'h') + ">", MaxMessage, ErrTooLong},
	{"hostname ---", "04 01 0050 00000001 00 <---> 00", 0, socksproto.ErrHostname},
	{"empty hostname", "04 01 0050 00000001 00 00", 0, socksproto.ErrHostname},
	{"hostname invalid UTF-8", "04 01 0050 00000001 00 ff fe <.com> 00", 0, socksproto.ErrHostname},
	{"hostname UTF-8 not punycode", "04 01 0050 00000001 00 <b> c3bc <cher.de> 00", 0, socksproto.ErrHostname},
	{"hostname control byte", "04 01 0050 00000001 00 <exa> 01 <mple.com> 00", 0, socksproto.ErrHostname},
	{"hostname space", "04 01 0050 00000001 00 <exa mple.com> 00", 0, socksproto.ErrHostname},
	{"hostname empty label", "04 01 0050 00000001 00 <a..b> 00", 0, socksproto.ErrHostname},
	{"hostname leading dot", "04 01 0050 00000001 00 <.a> 00", 0, socksproto.ErrHostname},
	{"hostname dot only", "04 01 0050 00000001 00 <.> 00", 0, socksproto.ErrHostname},
	{"hostname two trailing dots", "04 01 0050 00000001 00 <a..> 00", 0, socksproto.ErrHostname},
	{"hostname label starts with hyphen", "04 01 0050 00000001 00 <a.-b> 00", 0, socksproto.ErrHostname},
	{"hostname label starts with underscore", "04 01 0050 00000001 00 <_dmarc.example.com> 00", 0, socksproto.ErrHostname},
	{"hostname with port", "04 01 0050 00000001 00 <example.com:80> 00", 0, socksproto.ErrHostname},
	{"hostname ipv6 with zone", "04 01 0050 00000001 00 <fe80::1%eth0> 00", 0, socksproto.ErrHostname},
	{"hostname bracketed name", "04 01 0050 00000001 00 <[example.com]> 00", 0, socksproto.ErrHostname},
	{"hostname bracketed ipv4", "04 01 0050 00000001 00 <[192.0.2.1]> 00", 0, socksproto.ErrHostname},
	{"hostname unbalanced bracket", "04 01 0050 00000001 00 <[::1> 00", 0, socksproto.ErrHostname},
	{"hostname percent-encoded", "04 01 0050 00000001 00 <exa%6dple.com> 00", 0, socksproto.ErrHostname},
}

func TestStepValid(t *testing.T) {
	for _, tc := range validVectors {
		t.Run(tc.name, func(t *testing.T) {
			in := hx(t, tc.in)
			want := tc.consumed
			if want == 0 {
				want = len(in)
			}
			var h Handshake
			if h.Request() != nil {
				t.Fatal("Request before Step is not nil")
			}
			act, err := h.Step(in)
			if err != nil {
				t.Fatalf("Step: %v", err)
			}
			if !act.Done || act.Consumed != want || act.Reply != nil {
				t.Fatalf("action = %+v, want Done, Consumed %d, no reply", act, want)
			}
			r := h.Request()
			if r == nil {
				t.Fatal("Request() = nil after Done")
			}
			w := tc.want
			if r.Command != w.cmd || r.Port != w.port || r.IP != netip.MustParseAddr(w.ip) ||
				r.Host != w.host || string(r.UserID) != w.user || r.Is4a() != w.is4a {
				t.Fatalf("request = %+v (4a %v), want %+v", *r, r.Is4a(), w)
			}
			if w.user == "" && r.UserID != nil {
				t.Fatalf("empty userid is %q, want nil", r.UserID)
			}
			// The userid must not alias the caller's buffer, which the
			// caller reuses for the relay.
			for i := range in {
				in[i] = 0xAA
			}
			if string(r.UserID) != w.user || r.Host != w.host {
				t.Fatalf("request changed when the input buffer was overwritten: %+v", *r)
			}
			if _, err := h.Step(in); !errors.Is(err, socksproto.ErrHandshakeOver) {
				t.Fatalf("Step after Done: %v, want socksproto.ErrHandshakeOver", err)
			}
		})
	}
}

func TestStepReject(t *testing.T) {
	for _, tc := range rejectVectors {
		t.Run(tc.name, func(t *testing.T) {
			in := hx(t, tc.in)
			want := tc.consumed
			if want == 0 {
				want = len(in)
			}
			var h Handshake
			act, err := h.Step(in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			var re *ReplyError
			if !errors.As(err, &re) || re.Code != ReplyRejected {
				t.Fatalf("err = %#v, want *ReplyError with 0x5b", err)
			}
			if got := hex.EncodeToString(act.Reply); got != rejectReply {
				t.Fatalf("reply = %s, want %s", got, rejectReply)
			}
			if act.Done || act.Consumed != want {
				t.Fatalf("action = %+v, want not done, Consumed %d", act, want)
			}
			if h.Request() != nil {
				t.Fatal("Request() != nil after rejection")
			}
			if _, err := h.Step(in); !errors.Is(err, socksproto.ErrHandshakeOver) {
				t.Fatalf("Step after rejection: %v, want socksproto.ErrHandshakeOver", err)
			}
		})
	}
}

// Not SOCKS4 at all: close without a reply.
func TestStepVersion(t *testing.T) {
	for _, v := range []string{
		"06 01 0050 c0000201 00", // version 6
		"05 01 00",               // a SOCKS5 greeting sent to the SOCKS4 parser
		"00",
		"47 45 54 20", // "GET "
	} {
		var h Handshake
		act, err := h.Step(hx(t, v))
		if !errors.Is(err, socksproto.ErrVersion) {
			t.Fatalf("%s: err = %v, want socksproto.ErrVersion", v, err)
		}
		var re *ReplyError
		if errors.As(err, &re) || act.Reply != nil || act.Done || act.Consumed != 0 {
			t.Fatalf("%s: action %+v err %v, want a bare close", v, act, err)
		}
	}
}

// C Tor's test_socks.c "truncated" cases: every strict prefix of a valid
// request is incomplete and consumes nothing.
func TestStepStrictPrefixes(t *testing.T) {
	for _, tc := range validVectors {
		in := hx(t, tc.in)
		n := tc.consumed
		if n == 0 {
			n = len(in)
		}
		for i := 0; i < n; i++ {
			var h Handshake
			act, err := h.Step(in[:i])
			if !errors.Is(err, socksproto.ErrShortBuffer) || act.Consumed != 0 || act.Done || act.Reply != nil {
				t.Fatalf("%s: prefix %d/%d: action %+v err %v, want socksproto.ErrShortBuffer", tc.name, i, n, act, err)
			}
		}
	}
}

// Feeding a vector one byte at a time into a growing buffer must give the
// same outcome as one read.
func TestStepByteAtATime(t *testing.T) {
	var all []string
	for _, tc := range validVectors {
		all = append(all, tc.in)
	}
	for _, tc := range rejectVectors {
		all = append(all, tc.in)
	}
	for _, v := range all {
		in := hx(t, v)
		whole := run(in, []int{len(in)})
		ones := make([]int, len(in))
		for i := range ones {
			ones[i] = 1
		}
		if got := run(in, ones); got != whole {
			t.Fatalf("%q: byte at a time %+v, whole %+v", v, got, whole)
		}
	}
}

func TestAppendReply(t *testing.T) {
	for _, tc := range []struct {
		code Reply
		ip   netip.Addr
		port uint16
		want string
	}{
		{ReplyGranted, netip.Addr{}, 0, "005a000000000000"},
		{ReplyGranted, netip.MustParseAddr("192.0.2.1"), 0x1234, "005a1234c0000201"},
		{ReplyGranted, netip.MustParseAddr("::ffff:192.0.2.1"), 80, "005a0050c0000201"},
		{ReplyGranted, netip.MustParseAddr("2001:db8::1"), 80, "005a005000000000"},
		{ReplyRejected, netip.Addr{}, 0, rejectReply},
		{ReplyNoIdentd, netip.Addr{}, 0, "005c000000000000"},
		{ReplyIdentdMismatch, netip.Addr{}, 0, "005d000000000000"},
	} {
		got := AppendReply([]byte{0xEE}, tc.code, tc.ip, tc.port)
		if hex.EncodeToString(got) != "ee"+tc.want {
			t.Errorf("AppendReply(%#x, %v, %d) = %x, want ee%s", tc.code, tc.ip, tc.port, got, tc.want)
		}
	}
}

// TestHostOf: the SOCKS4a hostname is socksproto.ValidHostname plus an
// IPv6 literal with or without brackets (recorded without them).
func TestHostOf(t *testing.T) {
	for name, want := range map[string]string{
		"example.com": "example.com", "a-.b_": "a-.b_", "192.0.2.1": "192.0.2.1",
		"::1": "::1", "[::1]": "::1", "::ffff:1.2.3.4": "::ffff:1.2.3.4", "[2001:db8::1]": "2001:db8::1",
		"": "", "_dmarc.example.com": "", "[::1": "", "::1]": "", "[]": "", "[a]": "",
		"fe80::1%lo": "", "[192.0.2.1]": "", "[example.com]": "", "a:b": "", "é.fr": "",
		rep(255, 'a'): rep(255, 'a'), rep(256, 'a'): "",
	} {
		got, ok := hostOf([]byte(name))
		if ok != (want != "") || string(got) != want {
			t.Errorf("hostOf(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}

func TestReplyErrorText(t *testing.T) {
	e := &ReplyError{Code: ReplyRejected, Err: socksproto.ErrPortZero}
	if !strings.Contains(e.Error(), "0x5b") || !errors.Is(e, socksproto.ErrPortZero) {
		t.Fatalf("ReplyError = %q", e.Error())
	}
	if (&ReplyError{Code: ReplyRejected}).Error() != "socks4: reply 0x5b" {
		t.Fatal("ReplyError without Err")
	}
}

// outcome is everything observable about one parse, comparable with ==.
type outcome struct {
	short    bool
	done     bool
	consumed int
	reply    string
	err      string // sentinel
	req      string // request fields, rendered
}

var sentinels = []error{socksproto.ErrShortBuffer, socksproto.ErrVersion, socksproto.ErrCommand, socksproto.ErrPortZero, ErrZeroIP,
	socksproto.ErrHostname, ErrHostnameTooLong, ErrTooLong, socksproto.ErrHandshakeOver}

// run feeds in to a fresh Handshake in chunks of the given sizes, each time
// with the whole buffer received so far, as a dispatcher does.
func run(in []byte, chunks []int) outcome {
	var h Handshake
	n := 0
	for _, c := range chunks {
		n = min(n+c, len(in))
		act, err := h.Step(in[:n])
		if errors.Is(err, socksproto.ErrShortBuffer) {
			if act.Consumed != 0 || act.Reply != nil || act.Done {
				return outcome{err: "short buffer with side effects"}
			}
			if n == len(in) {
				break
			}
			continue
		}
		o := outcome{done: act.Done, consumed: act.Consumed, reply: string(act.Reply)}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				o.err = s.Error()
			}
		}
		if err != nil && o.err == "" {
			o.err = "unknown error " + err.Error()
		}
		if r := h.Request(); r != nil {
			o.req = renderReq(r)
		}
		return o
	}
	return outcome{short: true}
}

func renderReq(r *Request) string {
	var b bytes.Buffer
	b.WriteByte(byte(r.Command))
	b.WriteByte(byte(r.Port >> 8))
	b.WriteByte(byte(r.Port))
	b.WriteString(r.IP.String())
	b.WriteByte(0)
	b.WriteString(r.Host)
	b.WriteByte(0)
	if r.UserID == nil {
		b.WriteString("nil")
	}
	b.Write(r.UserID)
	return b.String()
}

// An unterminated userid or hostname below the limits is waited for (the
// dispatcher's handshake deadline bounds the wait); at the limits it is
// refused without waiting (see the 2000-byte and "at 512" vectors).
func TestStepUnterminatedWaits(t *testing.T) {
	for _, v := range []string{
		"04 01 0050 c0000201 <alice>",
		"04 01 0050 00000001 00 <example.com>",
		"04 01 0050 00000001 00 <" + rep(255, 'h') + ">",
		"04 01 0050 00000001 <" + rep(200, 'u') + "> 00 <" + rep(202, 'h') + ">", // 511 bytes
		"04 02 0050 c0000201 <bind waits for its userid like Tor>",
	} {
		var h Handshake
		in := hx(t, v)
		if act, err := h.Step(in); !errors.Is(err, socksproto.ErrShortBuffer) || act.Consumed != 0 || act.Reply != nil {
			t.Fatalf("%d bytes %q: action %+v err %v, want socksproto.ErrShortBuffer", len(in), v[:20], act, err)
		}
	}
}
