package chain

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"socksd/dispatch"
	"socksd/internal/leakcheck"
	"socksd/internal/sockopttest"
	"socksd/internal/sockstest"
	"socksd/internal/testutil"
	"socksd/isolation"
	"socksd/socks5"
	"socksd/socksproto"
)

func startFake(t *testing.T, s *sockstest.Server) *sockstest.Server {
	t.Helper()
	leakcheck.Check(t)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func testKey() isolation.Key {
	return isolation.Policy{Fields: isolation.Default}.Key(isolation.Input{Username: []byte("alice")})
}

func TestOpenRelaysWithIsolationCredentials(t *testing.T) {
	fake := startFake(t, &sockstest.Server{})
	echo := testutil.EchoServer(t, "", "")
	u := New(fake.Addr(), nil)
	var seen net.Addr
	u.OnConnect = func(local net.Addr, _ *dispatch.Request) { seen = local }
	req := &dispatch.Request{Command: dispatch.CmdConnect, IP: echo.Addr(), Port: echo.Port(), Key: testKey()}
	ctx := context.Background()
	st, err := u.Open(ctx, req, []byte("early-"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := st.Await(ctx); err != nil {
		t.Fatal(err)
	}
	st.CloseWrite()
	got, err := io.ReadAll(st)
	if err != nil || string(got) != "early-late" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	r := fake.Requests()
	if len(r) != 1 {
		t.Fatalf("want 1 request, got %d", len(r))
	}
	if string(r[0].Username) != "<torS0X>0" || string(r[0].Password) != req.Key.String() {
		t.Errorf("credentials %q/%q, want <torS0X>0/%s", r[0].Username, r[0].Password, req.Key)
	}
	if !sameAddr(seen, r[0].Remote) {
		t.Errorf("OnConnect saw %v, upstream saw the stream from %v", seen, r[0].Remote)
	}
	if string(r[0].Methods) != "\x02" {
		t.Errorf("methods offered %x, want 02 only", r[0].Methods)
	}
}

func sameAddr(a, b net.Addr) bool { return a != nil && b != nil && a.String() == b.String() }

func TestOpenSendsOneWrite(t *testing.T) {
	// The fake's Handle sees the request; the early data must already be
	// there (buffered with the request) before any reply was sent.
	got := make(chan string, 1)
	fake := startFake(t, &sockstest.Server{Handle: func(r *sockstest.Request, c net.Conn, rd *bufio.Reader) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 5)
		_, err := io.ReadFull(rd, b)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(b)
		sockstest.WriteReply(c, 0, nil)
	}})
	u := New(fake.Addr(), nil)
	st, err := u.Open(context.Background(), &dispatch.Request{Command: dispatch.CmdConnect, Host: "example.com", Port: 80}, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if s := <-got; s != "hello" {
		t.Fatalf("upstream read %q before replying", s)
	}
	if err := st.Await(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := fake.Requests(); r[0].Host != "example.com" || r[0].Port != 80 {
		t.Fatalf("request %+v", r[0])
	}
}

func TestRefusalCodes(t *testing.T) {
	for _, code := range []socks5.Reply{0x01, 0x02, 0x04, 0x05, 0x06, 0xF0, 0xF6} {
		fake := startFake(t, &sockstest.Server{Fail: func(*sockstest.Request) byte { return byte(code) }})
		u := New(fake.Addr(), nil)
		st, err := u.Open(context.Background(), &dispatch.Request{Command: dispatch.CmdConnect, Host: "x.onion", Port: 80}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = st.Await(context.Background())
		st.Close()
		var re *socks5.ReplyError
		if !errors.As(err, &re) || re.Code != code {
			t.Errorf("code %#x: got %v", code, err)
		}
	}
}

func TestUnreachableUpstreamFailsClosed(t *testing.T) {
	leakcheck.Check(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	u := New(addr, nil)
	_, err := u.Open(context.Background(), &dispatch.Request{Command: dispatch.CmdConnect, Host: "a", Port: 1}, nil)
	var re *socks5.ReplyError
	if !errors.As(err, &re) || re.Code != socks5.ReplyGeneralFailure || !errors.Is(err, ErrDial) {
		t.Fatalf("got %v, want general failure wrapping ErrDial", err)
	}
}

func TestAwaitTimeoutIsTTLExpired(t *testing.T) {
	release := make(chan struct{})
	fake := startFake(t, &sockstest.Server{Handle: func(_ *sockstest.Request, c net.Conn, _ *bufio.Reader) { <-release }})
	defer close(release)
	u := New(fake.Addr(), nil)
	st, err := u.Open(context.Background(), &dispatch.Request{Command: dispatch.CmdConnect, Host: "a", Port: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = st.Await(ctx)
	var re *socks5.ReplyError
	if !errors.As(err, &re) || re.Code != socks5.ReplyTTLExpired {
		t.Fatalf("got %v, want TTL expired", err)
	}
}

func TestResolve(t *testing.T) {
	fake := startFake(t, &sockstest.Server{
		Hosts: map[string]netip.Addr{"example.test": netip.MustParseAddr("192.0.2.7"), "v6.test": netip.MustParseAddr("2001:db8::1")},
		PTR:   map[netip.Addr]string{netip.MustParseAddr("192.0.2.7"): "rev.example.test"},
	})
	u := New(fake.Addr(), nil)
	ctx := context.Background()
	for host, want := range map[string]string{"example.test": "192.0.2.7", "v6.test": "2001:db8::1"} {
		a, err := u.Resolve(ctx, &dispatch.Request{Command: dispatch.CmdResolve, Host: host, Key: testKey()})
		if err != nil || a.String() != want {
			t.Errorf("Resolve(%s) = %v, %v", host, a, err)
		}
	}
	_, err := u.Resolve(ctx, &dispatch.Request{Command: dispatch.CmdResolve, Host: "nx.test"})
	var re *socks5.ReplyError
	if !errors.As(err, &re) || re.Code != socks5.ReplyHostUnreachable {
		t.Errorf("Resolve(nx) err = %v", err)
	}
	name, err := u.ResolvePTR(ctx, &dispatch.Request{Command: dispatch.CmdResolvePTR, IP: netip.MustParseAddr("192.0.2.7")})
	if err != nil || name != "rev.example.test" {
		t.Errorf("ResolvePTR = %q, %v", name, err)
	}
	for _, r := range fake.Requests() {
		if string(r.Username) != "<torS0X>0" || len(r.Password) != 32 {
			t.Errorf("resolve sent credentials %q/%q", r.Username, r.Password)
		}
	}
	if r := fake.Requests(); r[0].Cmd != 0xF0 || r[len(r)-1].Cmd != 0xF1 {
		t.Errorf("commands %#x..%#x", r[0].Cmd, r[len(r)-1].Cmd)
	}
}

func TestEncodeRequest(t *testing.T) {
	got, err := encodeRequest(nil, "u", "p", socksproto.CmdConnect, "ab", netip.Addr{}, 80, []byte("X"))
	if err != nil {
		t.Fatal(err)
	}
	want := "05 01 02 01 01 75 01 70 05 01 00 03 02 6162 0050 58"
	if hex.EncodeToString(got) != strings.ReplaceAll(want, " ", "") {
		t.Fatalf("got %x want %s", got, want)
	}
	got, _ = encodeRequest(nil, "u", "p", socksproto.CmdResolvePTR, "", netip.MustParseAddr("::1"), 0, nil)
	if hex.EncodeToString(got[8:]) != "05f1000400000000000000000000000000000001"+"0000" {
		t.Fatalf("ptr v6 got %x", got[8:])
	}
	if _, err := encodeRequest(nil, "u", "p", socksproto.CmdConnect, strings.Repeat("a", 256), netip.Addr{}, 1, nil); !errors.Is(err, socks5.ErrFieldTooLong) {
		t.Fatalf("long host: %v", err)
	}
}

// rawUpstream answers every connection with fixed bytes after reading the
// client's pipelined request.
func rawUpstream(t *testing.T, answer []byte) string {
	t.Helper()
	leakcheck.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 1024))
			c.Write(answer)
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestHostileUpstream(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer string
		code   socks5.Reply
		data   string
	}{
		{"reply and data in one segment", "\x05\x02\x01\x00\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00HELLO", 0, "HELLO"},
		{"junk", strings.Repeat("\x05\x02\x01\x00\xff", 300), socks5.ReplyGeneralFailure, ""},
		{"no-auth selected", "\x05\x00\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00", socks5.ReplyGeneralFailure, ""},
		{"closed early", "\x05\x02\x01", socks5.ReplyGeneralFailure, ""},
		{"refused", "\x05\x02\x01\x00\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00", socks5.ReplyConnectionRefused, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := New(rawUpstream(t, []byte(tc.answer)), nil)
			st, err := u.Open(context.Background(), &dispatch.Request{Command: dispatch.CmdConnect, Host: "a.test", Port: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			err = st.Await(context.Background())
			if tc.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				var sb strings.Builder
				io.Copy(&sb, st) // exercises WriteTo with the bytes that came with the reply
				if sb.String() != tc.data {
					t.Fatalf("data %q, want %q", sb.String(), tc.data)
				}
				return
			}
			var re *socks5.ReplyError
			if !errors.As(err, &re) || re.Code != tc.code {
				t.Fatalf("got %v, want code %#x", err, tc.code)
			}
		})
	}
}

// The upstream is on this host: no TCP keep-alive on its sockets.
func TestUpstreamSocketHasNoKeepAlive(t *testing.T) {
	fake := startFake(t, &sockstest.Server{})
	echo := testutil.EchoServer(t, "", "")
	u := New(fake.Addr(), nil)
	req := &dispatch.Request{Command: dispatch.CmdConnect, IP: echo.Addr(), Port: echo.Port(), Key: testKey()}
	st, err := u.Open(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if on := sockopttest.Int(t, st.(*Stream).TCPConn(), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); on != 0 {
		t.Errorf("SO_KEEPALIVE = %d on the upstream socket, want 0", on)
	}
}

// backloggedListener is a loopback TCP socket that listens with a
// backlog of 0 and never accepts: once its queue is full the kernel drops
// SYNs and a connect hangs.
func backloggedListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*syscall.SockaddrInet4).Port)).String()
}

// DialTimeout bounds a connect that hangs even when the caller's context
// allows much longer (the dial deadline is enforced by the socket, not by
// a context timer), and the stream fails closed with general failure.
func TestDialTimeoutBoundsAHungConnect(t *testing.T) {
	u := New(backloggedListener(t), nil)
	u.DialTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := &dispatch.Request{Command: dispatch.CmdConnect, IP: netip.MustParseAddr("127.0.0.1"), Port: 80, Key: testKey()}
	for i := 0; i < 16; i++ {
		start := time.Now()
		st, err := u.Open(ctx, req, nil)
		if err == nil {
			defer st.Close() // queued, never accepted: fills the backlog
			continue
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("dial failed after %v, want about DialTimeout (300ms)", d)
		}
		var re *socks5.ReplyError
		if !errors.As(err, &re) || re.Code != socks5.ReplyGeneralFailure || !errors.Is(err, ErrDial) {
			t.Fatalf("err = %v, want general failure wrapping ErrDial", err)
		}
		return
	}
	t.Skip("the kernel kept accepting connections into the backlog; no hung connect to test")
}
