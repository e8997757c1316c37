package socks5

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"socksd/internal/testutil"
	"socksd/socksproto"
)

func TestAppendClientRequest(t *testing.T) {
	tests := []struct {
		name       string
		user, pass string
		cmd        socksproto.Command
		host       string
		ip         string
		port       uint16
		early      string
		want       string
	}{
		{"connect hostname with early data", "<torS0X>0", "k1", socksproto.CmdConnect, "example.com", "", 80, "'GET /'",
			"05 01 02  01 09 '<torS0X>0' 02 'k1'  05 01 00 03 0b 'example.com' 0050  'GET /'"},
		{"empty credentials", "", "", socksproto.CmdConnect, "a.onion", "", 443, "",
			"05 01 02  01 00 00  05 01 00 03 07 'a.onion' 01bb"},
		{"connect ipv4", "u", "p", socksproto.CmdConnect, "", "127.0.0.1", 8080, "",
			"05 01 02  01 01 'u' 01 'p'  05 01 00 01 7f000001 1f90"},
		{"mapped ipv4 sent as ATYP 1", "u", "p", socksproto.CmdConnect, "", "::ffff:10.1.2.3", 1, "",
			"05 01 02  01 01 'u' 01 'p'  05 01 00 01 0a010203 0001"},
		{"connect ipv6", "u", "p", socksproto.CmdConnect, "", "2001:db8::1", 80, "",
			"05 01 02  01 01 'u' 01 'p'  05 01 00 04 20010db8000000000000000000000001 0050"},
		{"resolve", "u", "p", socksproto.CmdResolve, "example.test", "", 0, "",
			"05 01 02  01 01 'u' 01 'p'  05 f0 00 03 0c 'example.test' 0000"},
		{"resolve_ptr", "u", "p", socksproto.CmdResolvePTR, "", "198.51.100.7", 0, "",
			"05 01 02  01 01 'u' 01 'p'  05 f1 00 01 c6336407 0000"},
	}
	for _, tt := range tests {
		var ip netip.Addr
		if tt.ip != "" {
			ip = netip.MustParseAddr(tt.ip)
		}
		got := AppendClientRequest([]byte{0xee}, []byte(tt.user), []byte(tt.pass), tt.cmd, tt.host, ip, tt.port, testutil.Unhex(t, tt.early))
		if want := append([]byte{0xee}, testutil.Unhex(t, tt.want)...); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got % x\nwant % x", tt.name, got, want)
		}
		// What we send, our own server accepts, with the same meaning.
		h := &Handshake{}
		o := drive(h, got[1:])
		if o.err != nil || o.req.Command != tt.cmd || string(o.req.Host) != tt.host || o.req.IP != ip.Unmap() ||
			string(o.req.Username) != tt.user || string(o.req.Password) != tt.pass || !bytes.Equal(o.early, testutil.Unhex(t, tt.early)) {
			t.Errorf("%s: round trip %+v %v", tt.name, o.req, o.err)
		}
	}
}

func TestAppendClientRequestRefuses(t *testing.T) {
	long := bytes.Repeat([]byte("a"), 256)
	ip := netip.MustParseAddr("127.0.0.1")
	cases := []struct {
		name       string
		user, pass []byte
		host       string
		ip         netip.Addr
	}{
		{"long user", long, nil, "example.com", ip},
		{"long pass", nil, long, "example.com", ip},
		{"long host", nil, nil, string(long), ip},
		{"host with NUL", nil, nil, "a\x00b", ip},
		{"no destination", nil, nil, "", netip.Addr{}},
	}
	for _, c := range cases {
		if err := CheckClientRequest(c.user, c.pass, c.host, c.ip); !errors.Is(err, ErrFieldTooLong) {
			t.Errorf("%s: CheckClientRequest %v", c.name, err)
		}
		if got := AppendClientRequest([]byte{1}, c.user, c.pass, socksproto.CmdConnect, c.host, c.ip, 80, []byte("x")); !bytes.Equal(got, []byte{1}) {
			t.Errorf("%s: appended % x", c.name, got)
		}
	}
}

// driveClient feeds all of in to a Client with command cmd, looping like
// the upstream does; it returns the final result (Consumed summed).
func driveClient(cmd socksproto.Command, in []byte) (ClientResult, error) {
	c := &Client{Command: cmd}
	var total ClientResult
	for {
		r, err := c.Step(in[total.Consumed:])
		total.Consumed += r.Consumed
		total.Done, total.Code, total.IP, total.Host, total.Port = r.Done, r.Code, r.IP, r.Host, r.Port
		if err != nil || r.Done {
			return total, err
		}
		if r.Consumed == 0 {
			panic("no progress without error")
		}
	}
}

func TestClientVectors(t *testing.T) {
	const ok = "05 02 01 00 "
	tests := []struct {
		name     string
		cmd      socksproto.Command
		in       string
		err      error // sentinel; nil = success
		code     Reply
		ip, host string
		port     uint16
		rest     string // bytes after the reply (stream data)
	}{
		{name: "connect success (tor)", cmd: socksproto.CmdConnect, in: ok + "05 00 00 01 00000000 0000 'HTTP/1.0 200'", ip: "0.0.0.0", rest: "'HTTP/1.0 200'"},
		{name: "tor pipelined: method selection omitted", cmd: socksproto.CmdResolvePTR, in: "01 00 05 04 00 00 00000000 0000", err: &ReplyError{}, code: ReplyHostUnreachable},
		{name: "tor pipelined: connect success", cmd: socksproto.CmdConnect, in: "01 00 05 00 00 01 00000000 0000 'HTTP'", ip: "0.0.0.0", rest: "'HTTP'"},
		{name: "tor pipelined: auth failure", cmd: socksproto.CmdConnect, in: "01 01", err: ErrUpstreamAuth},
		{name: "connect success ipv6 bound", cmd: socksproto.CmdConnect, in: ok + "05 00 00 04 00000000000000000000000000000001 1234", ip: "::1", port: 0x1234},
		{name: "connect success hostname bound", cmd: socksproto.CmdConnect, in: ok + "05 00 00 03 07 'a.onion' 0050", host: "a.onion", port: 80},
		{name: "resolve answer", cmd: socksproto.CmdResolve, in: ok + "05 00 00 01 7f000001 0000", ip: "127.0.0.1"},
		{name: "resolve answer ipv6", cmd: socksproto.CmdResolve, in: ok + "05 00 00 04 fea00000000000000000000000000001 0000", ip: "fea0::1"},
		{name: "resolve_ptr answer", cmd: socksproto.CmdResolvePTR, in: ok + "05 00 00 03 10 'rev.example.test' 0000", host: "rev.example.test"},
		{name: "tor resolve failure ATYP 0", cmd: socksproto.CmdResolve, in: ok + "05 04 00 00 00000000 0000", err: &ReplyError{}, code: ReplyHostUnreachable},
		{name: "connect refused", cmd: socksproto.CmdConnect, in: ok + "05 05 00 01 00000000 0000", err: &ReplyError{}, code: ReplyConnectionRefused},
		{name: "onion F6", cmd: socksproto.CmdConnect, in: ok + "05 f6 00 01 00000000 0000", err: &ReplyError{}, code: ReplyOnionBadAddress},
		{name: "unassigned code", cmd: socksproto.CmdConnect, in: ok + "05 42 00 01 00000000 0000", err: ErrUpstreamUnknownReply, code: ReplyGeneralFailure},
		{name: "failure with garbage name is just the failure", cmd: socksproto.CmdConnect, in: ok + "05 04 00 03 02 00ff 0000", err: &ReplyError{}, code: ReplyHostUnreachable},

		{name: "method version 4", cmd: socksproto.CmdConnect, in: "04 02", err: ErrUpstreamVersion},
		{name: "method FF", cmd: socksproto.CmdConnect, in: "05 ff", err: ErrUpstreamNoMethod},
		{name: "method 00 not offered", cmd: socksproto.CmdConnect, in: "05 00 05 00 00 01 00000000 0000", err: ErrUpstreamMethod},
		{name: "method 01 not offered", cmd: socksproto.CmdConnect, in: "05 01", err: ErrUpstreamMethod},
		{name: "auth version 5", cmd: socksproto.CmdConnect, in: "05 02 05 00", err: ErrUpstreamVersion},
		{name: "auth failure", cmd: socksproto.CmdConnect, in: "05 02 01 01", err: ErrUpstreamAuth},
		{name: "reply version 4", cmd: socksproto.CmdConnect, in: ok + "04 5a 0000 00000000", err: ErrUpstreamVersion},
		{name: "reply reserved byte", cmd: socksproto.CmdConnect, in: ok + "05 00 01 01 00000000 0000", err: ErrUpstreamMalformed},
		{name: "reply ATYP 0x23", cmd: socksproto.CmdConnect, in: ok + "05 00 00 23 00000000 0000", err: ErrUpstreamMalformed},
		{name: "ATYP 0 on success", cmd: socksproto.CmdResolve, in: ok + "05 00 00 00 00000000 0000", err: ErrUpstreamMalformed},
		{name: "hostname with NUL", cmd: socksproto.CmdResolvePTR, in: ok + "05 00 00 03 05 'ab' 00 'cd' 0000", err: ErrUpstreamMalformed},
		{name: "empty hostname on success", cmd: socksproto.CmdResolvePTR, in: ok + "05 00 00 03 00 0000", err: ErrUpstreamMalformed},
		{name: "non-ASCII hostname", cmd: socksproto.CmdConnect, in: ok + "05 00 00 03 03 'a' c3a9 0000", err: ErrUpstreamMalformed},
		{name: "resolve answered with hostname", cmd: socksproto.CmdResolve, in: ok + "05 00 00 03 07 'a.onion' 0000", err: ErrUpstreamMalformed},
		{name: "resolve_ptr answered with address", cmd: socksproto.CmdResolvePTR, in: ok + "05 00 00 01 7f000001 0000", err: ErrUpstreamMalformed},
		{name: "SOCKS4 reply from upstream", cmd: socksproto.CmdConnect, in: "00 5a 0000 00000000", err: ErrUpstreamVersion},
		{name: "HTTP from upstream", cmd: socksproto.CmdConnect, in: "'HTTP/1.0 501'", err: ErrUpstreamVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testutil.Unhex(t, tt.in)
			r, err := driveClient(tt.cmd, in)
			if tt.err == nil {
				if err != nil || !r.Done || r.Code != ReplySucceeded {
					t.Fatalf("%+v %v, want success", r, err)
				}
				var ip netip.Addr
				if tt.ip != "" {
					ip = netip.MustParseAddr(tt.ip)
				}
				if r.IP != ip || string(r.Host) != tt.host || r.Port != tt.port {
					t.Errorf("got %v %q %d, want %v %q %d", r.IP, r.Host, r.Port, ip, tt.host, tt.port)
				}
				if rest := in[r.Consumed:]; !bytes.Equal(rest, testutil.Unhex(t, tt.rest)) {
					t.Errorf("rest % x", rest)
				}
				return
			}
			if re := (*ReplyError)(nil); errors.As(tt.err, &re) {
				var got *ReplyError
				if !errors.As(err, &got) || got.Code != tt.code || r.Code != tt.code {
					t.Fatalf("err %v code %v, want ReplyError %v", err, r.Code, tt.code)
				}
				if r.Consumed != len(in) {
					t.Errorf("consumed %d of %d", r.Consumed, len(in))
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if tt.code != 0 {
				var got *ReplyError
				if !errors.As(err, &got) || got.Code != tt.code {
					t.Fatalf("err %v, want code %v", err, tt.code)
				}
			}
		})
	}
}

func TestClientStrictPrefixes(t *testing.T) {
	msgs := []struct {
		cmd   socksproto.Command
		setup string
		msg   string
	}{
		{socksproto.CmdConnect, "", "05 02"},
		{socksproto.CmdConnect, "05 02", "01 00"},
		{socksproto.CmdConnect, "05 02 01 00", "05 00 00 01 00000000 0000"},
		{socksproto.CmdConnect, "05 02 01 00", "05 00 00 04 00000000000000000000000000000001 0000"},
		{socksproto.CmdResolvePTR, "05 02 01 00", "05 00 00 03 10 'rev.example.test' 0000"},
		{socksproto.CmdResolve, "05 02 01 00", "05 04 00 00 00000000 0000"},
	}
	for _, m := range msgs {
		msg := testutil.Unhex(t, m.msg)
		for n := 0; n < len(msg); n++ {
			c := &Client{Command: m.cmd}
			if setup := testutil.Unhex(t, m.setup); len(setup) > 0 {
				if r, err := c.Step(setup); err != nil || r.Consumed != len(setup) {
					t.Fatalf("setup %s: %+v %v", m.setup, r, err)
				}
			}
			r, err := c.Step(msg[:n])
			if !errors.Is(err, socksproto.ErrShortBuffer) || r.Consumed != 0 || r.Done {
				t.Fatalf("%s prefix %d: %+v %v", m.msg, n, r, err)
			}
		}
	}
}

// TestClientPartialProgress: a buffer holding the method selection and
// half the auth status consumes the first and asks for more, without error.
func TestClientPartialProgress(t *testing.T) {
	c := &Client{Command: socksproto.CmdConnect}
	r, err := c.Step(testutil.Unhex(t, "05 02 01"))
	if err != nil || r.Consumed != 2 || r.Done {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = c.Step(testutil.Unhex(t, "01 00 05 00 00 01 00000000 0000"))
	if err != nil || r.Consumed != 12 || !r.Done {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := c.Step(nil); !errors.Is(err, socksproto.ErrHandshakeOver) {
		t.Fatalf("after done: %v", err)
	}
	c.Reset()
	if r, err := c.Step(testutil.Unhex(t, "05 02 01 00 05 00 00 01 00000000 0000")); err != nil || !r.Done {
		t.Fatalf("after Reset: %+v %v", r, err)
	}
}

var clientSeeds = []string{
	"05 02 01 00 05 00 00 01 00000000 0000 'data'",
	"05 02 01 00 05 00 00 03 10 'rev.example.test' 0000",
	"05 02 01 00 05 04 00 00 00000000 0000",
	"05 02 01 00 05 f0 00 01 00000000 0000",
	"05 02 01 00 05 00 00 04 fea00000000000000000000000000001 0000",
	"05 ff",
	"05 02 01 01",
	"05 02 01 00 05 00 00 03 05 'ab' 00 'cd' 0000",
	"05 02 01 00 05 00 01 01 00000000 0000",
	"05 02 01 00 05 42 00 01 00000000 0000",
	"01 00 05 f6 00 01 00000000 0000",
}

// FuzzClientReply: whatever the upstream sends, split anywhere, the client
// never panics, never reads past its input, and reaches the same result.
func FuzzClientReply(f *testing.F) {
	for i, s := range clientSeeds {
		for _, cmd := range []socksproto.Command{socksproto.CmdConnect, socksproto.CmdResolve, socksproto.CmdResolvePTR} {
			f.Add(testutil.Unhex(f, s), byte(cmd), uint64(i)+1)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, cmdByte byte, seed uint64) {
		cmd := socksproto.Command(cmdByte)
		whole, werr := driveClient(cmd, in)
		c := &Client{Command: cmd}
		var buf []byte
		rest := in
		consumed := 0
		s := seed | 1
		var last ClientResult
		var cerr error
		for {
			r, err := c.Step(buf)
			if r.Consumed < 0 || r.Consumed > len(buf) {
				t.Fatalf("Consumed %d of %d", r.Consumed, len(buf))
			}
			buf = buf[r.Consumed:]
			consumed += r.Consumed
			last, cerr = r, err
			if err == socksproto.ErrShortBuffer {
				if len(rest) == 0 {
					break
				}
				s ^= s << 13
				s ^= s >> 7
				s ^= s << 17
				n := min(int(s%8)+1, len(rest))
				buf = append(buf, rest[:n]...)
				rest = rest[n:]
				continue
			}
			if err != nil || r.Done {
				break
			}
		}
		if fmt.Sprint(werr) != fmt.Sprint(cerr) || whole.Done != last.Done || whole.Code != last.Code ||
			whole.IP != last.IP || !bytes.Equal(whole.Host, last.Host) || whole.Port != last.Port {
			t.Fatalf("chunking changed the result: %+v %v vs %+v %v", whole, werr, last, cerr)
		}
		if werr == nil && whole.Done && whole.Consumed != consumed {
			t.Fatalf("consumed %d vs %d", whole.Consumed, consumed)
		}
		if whole.Done {
			if whole.Host != nil && !socksproto.ValidHostname(whole.Host) {
				t.Fatalf("invalid host returned: %q", whole.Host)
			}
			if whole.Host == nil && !whole.IP.IsValid() {
				t.Fatal("success without address")
			}
			if cmd == socksproto.CmdResolvePTR && whole.Host == nil || cmd == socksproto.CmdResolve && whole.Host != nil {
				t.Fatalf("wrong answer kind for %v: %+v", cmd, whole)
			}
		}
		var re *ReplyError
		if errors.As(werr, &re) && (re.Code == ReplySucceeded || !re.Code.Known()) {
			t.Fatalf("ReplyError with code %#02x", byte(re.Code))
		}
	})
}
