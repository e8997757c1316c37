//go:build linux

package dispatch

import (
	"net"
	"syscall"
	"testing"

	"socksd/internal/sockopttest"
)

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:1080", true},
		{"127.5.6.7:0", true},
		{"[::1]:9050", true},
		{"localhost:1080", true},
		{"0.0.0.0:1080", false},
		{"[::]:1080", false},
		{":1080", false},
		{"192.168.1.2:1080", false},
		{"[::ffff:127.0.0.1]:1080", true},
		{"example.com:1080", false},
		{"garbage", false},
	} {
		if got := isLoopback(tc.addr); got != tc.want {
			t.Errorf("isLoopback(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// A socket accepted on a loopback listener has no TCP keep-alive (the
// probes cost four setsockopt calls per connection and find nothing a
// loopback peer's close does not report).
func TestLoopbackListenerNoKeepAlive(t *testing.T) {
	ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if on := sockopttest.Int(t, sc.(*net.TCPConn), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); on != 0 {
		t.Errorf("SO_KEEPALIVE = %d on a socket accepted on 127.0.0.1, want 0", on)
	}
}

// TestUnixListenerWorldWritable: a Unix listener socksd creates is 0666
// whatever the umask, so any local user's `socksd run` can connect; the
// directory holding it is where access is restricted.
func TestUnixListenerWorldWritable(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	path := t.TempDir() + "/s.sock"
	ln, err := listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode & 0o777; perm != 0o666 {
		t.Fatalf("socket mode %o, want 666", perm)
	}
}
