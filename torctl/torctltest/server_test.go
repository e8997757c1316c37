package torctltest

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// client is a raw line client for exercising the fake itself.
type client struct {
	nc net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, s *Server) *client {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{nc: nc, br: bufio.NewReader(nc)}
}

func (c *client) send(t *testing.T, line string) {
	t.Helper()
	if _, err := c.nc.Write([]byte(line + "\r\n")); err != nil {
		t.Fatal(err)
	}
}

func (c *client) line(t *testing.T) string {
	t.Helper()
	l, err := c.br.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !strings.HasSuffix(l, "\r\n") {
		t.Fatalf("line %q not CRLF-terminated", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func TestScriptInOrder(t *testing.T) {
	ctx := testCtx(t)
	s := New(t)
	s.Push("650 STATUS_CLIENT NOTICE CIRCUIT_ESTABLISHED") // before any client: queued
	s.Expect("GETINFO version", "250-version=Tor 0.4.9.11\n250 OK")
	s.ExpectRegexp(`^ATTACHSTREAM \d+ 0$`, "250 OK")
	c := dial(t, s)
	if l := c.line(t); l != "650 STATUS_CLIENT NOTICE CIRCUIT_ESTABLISHED" {
		t.Fatalf("pre-pushed line %q", l)
	}
	c.send(t, "GETINFO version")
	if a, b := c.line(t), c.line(t); a != "250-version=Tor 0.4.9.11" || b != "250 OK" {
		t.Fatalf("%q %q", a, b)
	}
	c.send(t, "ATTACHSTREAM 12 0")
	if l := c.line(t); l != "250 OK" {
		t.Fatalf("%q", l)
	}
	if err := s.Done(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Received(); strings.Join(got, "|") != "GETINFO version|ATTACHSTREAM 12 0" {
		t.Fatalf("received %q", got)
	}
}

func TestUnexpectedCommand(t *testing.T) {
	ctx := testCtx(t)
	s := New(t)
	s.Expect("SETEVENTS STREAM", "250 OK")
	s.Handle(`^GETINFO `, func(l string) string { return "250-" + strings.TrimPrefix(l, "GETINFO ") + "=x\n250 OK" })
	c := dial(t, s)
	c.send(t, "GETINFO a") // not the next expectation, but a handler matches
	if a, b := c.line(t), c.line(t); a != "250-a=x" || b != "250 OK" {
		t.Fatalf("%q %q", a, b)
	}
	c.send(t, "SIGNAL HALT")
	if l := c.line(t); l != `510 Unrecognized command "SIGNAL"` {
		t.Fatalf("%q", l)
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), `unexpected command "SIGNAL HALT", want "SETEVENTS STREAM"`) {
		t.Fatalf("Err() = %v", err)
	}
	if err := s.Done(ctx); err == nil {
		t.Fatal("Done returned nil with a script error")
	}
}

func TestDoneTimesOut(t *testing.T) {
	s := New(t)
	s.Expect("TAKEOWNERSHIP", "250 OK")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Done(ctx); err == nil || !strings.Contains(err.Error(), `1 expectations left, next "TAKEOWNERSHIP"`) {
		t.Fatalf("Done = %v", err)
	}
}

func TestDropConnAndReconnect(t *testing.T) {
	s := New(t)
	s.ExpectClose(`^AUTHENTICATE`)
	s.Expect("PROTOCOLINFO 1", ProtocolInfoReply("NULL", ""))
	c := dial(t, s)
	c.send(t, "AUTHENTICATE bad")
	if _, err := c.br.ReadString('\n'); err == nil {
		t.Fatal("connection not closed")
	}
	c2 := dial(t, s)
	c2.send(t, "PROTOCOLINFO 1")
	if l := c2.line(t); l != "250-PROTOCOLINFO 1" {
		t.Fatalf("%q", l)
	}
	for range 3 {
		c2.line(t)
	}
	s.DropConn()
	if _, err := c2.br.ReadString('\n'); err == nil {
		t.Fatal("DropConn did not close")
	}
	if s.Conns() != 2 {
		t.Fatalf("Conns = %d", s.Conns())
	}
}

func TestSafeCookieChallenge(t *testing.T) {
	// Values computed independently (Python hmac): cookie 00..1f, client
	// nonce 32x11, server nonce 32x22.
	cookie := make([]byte, 32)
	for i := range cookie {
		cookie[i] = byte(i)
	}
	reply, auth, err := SafeCookieChallenge(cookie, "AUTHCHALLENGE SAFECOOKIE "+strings.Repeat("11", 32), bytes.Repeat([]byte{0x22}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if reply != "250 AUTHCHALLENGE SERVERHASH=2AECBF4D284BEFDDBBACC3817B41959EDA061AC7E156DB0C734CB28AA5E903ED SERVERNONCE="+strings.Repeat("22", 32) {
		t.Fatalf("reply %q", reply)
	}
	if auth != "AUTHENTICATE EEA571786A3FD103B6AA1FFA46249C4C850C509D0C84C550ED9E41477511D2BA" {
		t.Fatalf("auth %q", auth)
	}
	if _, _, err := SafeCookieChallenge(cookie, "AUTHCHALLENGE HMAC 00", nil); err == nil {
		t.Fatal("accepted a non-SAFECOOKIE challenge")
	}
}

func TestPipeAndClose(t *testing.T) {
	s, nc := Pipe(t)
	s.Expect("QUIT", "250 closing connection")
	br := bufio.NewReader(nc)
	go nc.Write([]byte("QUIT\r\n"))
	l, err := br.ReadString('\n')
	if err != nil || l != "250 closing connection\r\n" {
		t.Fatalf("%q %v", l, err)
	}
	s.Close()
	if _, err := br.ReadString('\n'); err == nil {
		t.Fatal("Close did not close the pipe")
	}
	s.Close() // idempotent
}
