// Package testutil holds the helpers more than one package's tests use:
// spec-style hex vectors, read splits for fuzz targets, loopback servers
// (an echo, or any handler), bounded polling, and the real-Tor
// environment of the packages that test against a running tor. Only tests
// import it.
package testutil

import (
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Unhex decodes a spaced hex vector; 'quoted' parts are taken literally,
// so vectors read like the spec: "05 01 00 03 0b 'example.com' 0050".
func Unhex(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ':
			i++
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				t.Fatalf("unterminated quote in %q", s)
			}
			out = append(out, s[i+1:i+1+j]...)
			i += j + 2
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\'' {
				j++
			}
			b, err := hex.DecodeString(s[i:j])
			if err != nil {
				t.Fatalf("bad hex %q: %v", s[i:j], err)
			}
			out = append(out, b...)
			i = j
		}
	}
	return out
}

// Chunks turns fuzz bytes into read sizes of 1 to max bytes that cover
// total, so a fuzz target also explores how its input is split across
// reads. No split bytes: one read of everything.
func Chunks(split []byte, total, max int) []int {
	if len(split) == 0 {
		return []int{total}
	}
	var out []int
	for i, sum := 0, 0; sum < total; i++ {
		c := int(split[i%len(split)])%max + 1
		out = append(out, c)
		sum += c
	}
	return out
}

// EchoServer serves on addr (default 127.0.0.1:0) until the test ends:
// each connection is echoed until EOF, then gets trailer (if any) and a
// half-close, so a test can see a half-close travel, then is closed.
func EchoServer(t testing.TB, addr, trailer string) netip.AddrPort {
	t.Helper()
	return Serve(t, addr, func(c net.Conn) {
		io.Copy(c, c)
		if trailer != "" {
			c.Write([]byte(trailer))
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	})
}

// Serve listens on addr (default 127.0.0.1:0) until the test ends and
// runs handle for each connection on a goroutine of its own; the
// connection is closed when handle returns. The cleanup closes the
// listener and every connection still open and waits for the server's
// goroutines.
func Serve(t testing.TB, addr string, handle func(net.Conn)) netip.AddrPort {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

// Poll calls cond every interval until it holds (true) or d has passed
// (false): for a condition on another goroutine or process that publishes
// no event to wait on. Bounded by d.
func Poll(d, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// WaitFor polls cond every 2 ms for up to 5 s and fails the test, naming
// what it waited for, if it never holds.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Poll(5*time.Second, 2*time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// The environment that names a running tor for the real-Tor tests of
// torctl, torup and resolve, e.g. a private network's client:
//
//	go run ./cmd/tornet up DIR &  # wait for its env lines
//	set -a; . DIR/env; set +a
//	SOCKSD_TOR_CONTROL=127.0.0.1:$CONTROL_PORT SOCKSD_TOR_COOKIE=$COOKIE_PATH \
//	SOCKSD_TOR_SOCKS=127.0.0.1:$SOCKS_PORT SOCKSD_TOR_HTTP_PORT=$HTTP_PORT \
//	SOCKSD_TOR_ONION=$ONION_HOST go test -race -run Real ./torctl ./torup ./resolve
const (
	EnvControl  = "SOCKSD_TOR_CONTROL"   // control port: host:port or unix:/path
	EnvCookie   = "SOCKSD_TOR_COOKIE"    // its cookie file
	EnvSOCKS    = "SOCKSD_TOR_SOCKS"     // a SocksPort
	EnvHTTPPort = "SOCKSD_TOR_HTTP_PORT" // the network's HTTP server port, reached through its exits
	EnvOnion    = "SOCKSD_TOR_ONION"     // the network's onion service host
)

// RealTor is a running tor given through the environment.
type RealTor struct {
	Control, Cookie, SOCKS, Onion string
	HTTPPort                      uint16
}

// NeedRealTor returns the environment's tor, or skips t when any of the
// variables need names is unset (or, for EnvHTTPPort, not a port).
func NeedRealTor(t testing.TB, need ...string) RealTor {
	t.Helper()
	e := RealTor{
		Control: os.Getenv(EnvControl), Cookie: os.Getenv(EnvCookie),
		SOCKS: os.Getenv(EnvSOCKS), Onion: os.Getenv(EnvOnion),
	}
	if p, err := strconv.ParseUint(os.Getenv(EnvHTTPPort), 10, 16); err == nil {
		e.HTTPPort = uint16(p)
	}
	for _, v := range need {
		if os.Getenv(v) == "" || (v == EnvHTTPPort && e.HTTPPort == 0) {
			t.Skipf("%s not set: no real Tor to test against (need %s)", v, strings.Join(need, ", "))
		}
	}
	return e
}
