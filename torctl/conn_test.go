package torctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"socksd/torctl/torctltest"
)

// pair returns a Conn talking to a fake over net.Pipe. The Conn is closed
// and checked for leaked goroutines at cleanup.
func pair(t *testing.T) (*Conn, *torctltest.Server) {
	t.Helper()
	s, nc := torctltest.Pipe(t)
	c := NewConn(nc)
	t.Cleanup(func() {
		c.Close()
		noConnGoroutines(t, c)
	})
	return c, s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// noConnGoroutines fails if a goroutine of the given Conns (all Conns if
// none given) is still running. It polls a bounded number of times:
// goroutines can take a moment to be reaped after they return.
func noConnGoroutines(t *testing.T, conns ...*Conn) {
	t.Helper()
	marks := []string{"torctl.(*Conn)."}
	if len(conns) > 0 {
		marks = nil
		for _, c := range conns {
			marks = append(marks, fmt.Sprintf("torctl.(*Conn).readLoop(%p", c), fmt.Sprintf("torctl.(*Conn).deliverEvents(%p", c))
		}
	}
	var stacks string
	for range 200 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		found := false
		for _, m := range marks {
			found = found || strings.Contains(stacks, m)
		}
		if !found {
			return
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond) // waiting for the scheduler, not for an event
	}
	t.Errorf("Conn goroutines still running after Close:\n%s", stacks)
}

func nextEvent(t *testing.T, ctx context.Context, c *Conn) Event {
	t.Helper()
	select {
	case e, ok := <-c.Events():
		if !ok {
			t.Fatalf("events closed: %v", c.Err())
		}
		return e
	case <-ctx.Done():
		t.Fatal("no event")
	}
	return Event{}
}

func TestDoReply(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("GETINFO version", "250-version=Tor 0.4.9.11\n250 OK")
	r, err := c.Do(ctx, "GETINFO version")
	if err != nil {
		t.Fatal(err)
	}
	want := []ReplyLine{{250, '-', "version=Tor 0.4.9.11", ""}, {250, ' ', "OK", ""}}
	if r.Code != 250 || fmt.Sprint(r.Lines) != fmt.Sprint(want) {
		t.Fatalf("reply %+v", r)
	}
	if err := s.Done(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDoError(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("ATTACHSTREAM 9 1", "552 Unknown stream \"9\"")
	r, err := c.Do(ctx, "ATTACHSTREAM 9 1")
	var e *Error
	if !errors.As(err, &e) || e.Code != 552 || e.Text != `Unknown stream "9"` {
		t.Fatalf("err = %#v", err)
	}
	if err.Error() != `torctl: 552 Unknown stream "9"` || !IsCode(err, 552) || IsCode(err, 551) {
		t.Fatalf("Error() = %q", err.Error())
	}
	if r == nil || r.Code != 552 {
		t.Fatalf("reply not returned with the error: %+v", r)
	}
	// The connection is still usable after an error reply.
	s.Expect("SIGNAL NEWNYM", "250 OK")
	if err := c.Signal(ctx, "NEWNYM"); err != nil {
		t.Fatal(err)
	}
}

// control-spec §4.1: an event may come between a command and its reply; it
// must reach Events, not the command.
func TestEventBetweenCommandAndReply(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("GETCONF SOCKSPORT ORPORT", "650 CIRC 1000 EXTENDED moria1,moria2\n250-SOCKSPORT=9050\n250 ORPORT=0")
	r, err := c.Do(ctx, "GETCONF SOCKSPORT ORPORT")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Lines) != 2 || r.Lines[0].Text != "SOCKSPORT=9050" || r.Lines[1].Text != "ORPORT=0" {
		t.Fatalf("reply %+v", r)
	}
	e := nextEvent(t, ctx, c)
	if e.Type != "CIRC" || e.Text != "CIRC 1000 EXTENDED moria1,moria2" || len(e.Lines) != 1 {
		t.Fatalf("event %+v", e)
	}
}

func TestEventsInOrderAndUnbounded(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	// Nobody reads events while 5000 arrive: the reader must not stall, or
	// the reply below would never come.
	const n = 5000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "650 STREAM %d NEW 0 example.test:80 PURPOSE=USER\n", i)
	}
	s.Expect("GETINFO version", b.String()+"250-version=Tor 0.4.9.11\n250 OK")
	if _, err := c.GetInfo(ctx, "version"); err != nil {
		t.Fatal(err)
	}
	if c.EventBacklog() != n-1 && c.EventBacklog() != n {
		// One event may already sit in the delivery goroutine.
		t.Fatalf("backlog %d, want about %d", c.EventBacklog(), n)
	}
	var last time.Time
	for i := range n {
		e := nextEvent(t, ctx, c)
		if want := fmt.Sprintf("STREAM %d NEW", i); !strings.HasPrefix(e.Text, want) {
			t.Fatalf("event %d = %q", i, e.Text)
		}
		// Received is stamped by the reader, before the queue: in order,
		// and never after the event is handed out.
		if e.Received.IsZero() || e.Received.Before(last) || e.Received.After(time.Now()) {
			t.Fatalf("event %d: Received %v (previous %v)", i, e.Received, last)
		}
		last = e.Received
	}
}

func TestMultiLineEvent(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Push("650-CIRC 1000 EXTENDED moria1,moria2 0xBEEF\n650-EXTRAMAGIC=99\n650 ANONYMITY=high")
	s.Push("650+NS\nr fake ..\n..dotted\n.\n650 OK")
	e := nextEvent(t, ctx, c)
	if e.Type != "CIRC" || len(e.Lines) != 3 || e.Lines[2].Text != "ANONYMITY=high" {
		t.Fatalf("event %+v", e)
	}
	ce, err := ParseCircEvent(e)
	if err != nil || ce.Keywords["EXTRAMAGIC"] != "99" || ce.Keywords["ANONYMITY"] != "high" {
		t.Fatalf("parsed %+v %v", ce, err)
	}
	e = nextEvent(t, ctx, c)
	if e.Type != "NS" || e.Lines[0].Data != "r fake ..\n.dotted" {
		t.Fatalf("data event %+v", e)
	}
}

func TestOverlongLineClosesConn(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.ExpectFunc("GETINFO big", func(l string) bool { return l == "GETINFO big" }, func(string) string {
		return "250-big=" + strings.Repeat("A", MaxLineLength) + "\n250 OK"
	})
	_, err := c.Do(ctx, "GETINFO big")
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v", err)
	}
	<-c.Done()
	if !errors.Is(c.Err(), ErrLineTooLong) {
		t.Fatalf("Err() = %v", c.Err())
	}
	if _, err := c.Do(ctx, "GETINFO version"); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("Do after failure: %v", err)
	}
}

func TestBadStatusCodeClosesConn(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("GETINFO version", "2x0 OK")
	if _, err := c.Do(ctx, "GETINFO version"); !errors.Is(err, ErrProtocol) {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed")
	}
}

func TestUnsolicitedReplyClosesConn(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Push("250 OK")
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed")
	}
	if !errors.Is(c.Err(), ErrUnexpectedReply) {
		t.Fatalf("Err() = %v", c.Err())
	}
}

func TestEOFMidReply(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.ExpectFunc("GETINFO a b", func(l string) bool { return l == "GETINFO a b" }, func(string) string { return "" })
	errc := make(chan error, 1)
	go func() { _, err := c.Do(ctx, "GETINFO a b"); errc <- err }()
	if _, err := s.WaitReceived(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// net.Pipe is synchronous: once PushRaw returns, the client has read
	// the first line of the reply. Then Tor "dies".
	if err := s.PushRaw([]byte("250-a=1\r\n")); err != nil {
		t.Fatal(err)
	}
	s.DropConn()
	if err := <-errc; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	<-c.Done()
	if c.Err() == nil {
		t.Fatal("Err() nil after EOF")
	}
}

func TestEventsDeliveredAfterEOF(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("SETEVENTS CIRC", "250 OK\n650 CIRC 1 LAUNCHED\n650 CIRC 1 BUILT")
	if err := c.SetEvents(ctx, "CIRC"); err != nil {
		t.Fatal(err)
	}
	s.DropConn()
	<-c.Done()
	if !errors.Is(c.Err(), io.EOF) {
		t.Fatalf("Err() = %v, want io.EOF", c.Err())
	}
	var got []string
	for e := range c.Events() {
		got = append(got, e.Text)
	}
	if strings.Join(got, "|") != "CIRC 1 LAUNCHED|CIRC 1 BUILT" {
		t.Fatalf("events after EOF: %q", got)
	}
	if _, err := c.Do(ctx, "GETINFO version"); !errors.Is(err, io.EOF) {
		t.Fatalf("Do after EOF: %v", err)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Push("650 CIRC 1 LAUNCHED\n650 CIRC 2 LAUNCHED")
	s.ExpectFunc("GETINFO never", func(l string) bool { return l == "GETINFO never" }, func(string) string { return "" })
	errc := make(chan error, 1)
	go func() { _, err := c.Do(ctx, "GETINFO never"); errc <- err }()
	if _, err := s.WaitReceived(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("in-flight Do after Close: %v", err)
	}
	<-c.Done()
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err() = %v", c.Err())
	}
	for range c.Events() { // Close discards queued events; the channel is closed
	}
	if _, err := c.Do(ctx, "GETINFO version"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after Close: %v", err)
	}
	if err := c.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	noConnGoroutines(t, c)
}

// A command whose ctx ends after it was written: Do returns at once, the
// reply is still consumed, and the next command gets its own reply.
func TestCancelAfterWriteStaysInSync(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.ExpectFunc("GETINFO slow", func(l string) bool { return l == "GETINFO slow" }, func(string) string { return "" })
	s.Expect("GETINFO fast", "250-fast=2\n250 OK")
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := c.Do(cctx, "GETINFO slow"); errc <- err }()
	if _, err := s.WaitReceived(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Do: %v", err)
	}
	fast := make(chan map[string]string, 1)
	go func() {
		m, err := c.GetInfo(ctx, "fast")
		if err != nil {
			t.Error(err)
		}
		fast <- m
	}()
	// "fast" must not be written while "slow" is unanswered (one in flight).
	if got := s.Received(); len(got) != 1 {
		t.Fatalf("sent before the abandoned reply arrived: %q", got)
	}
	s.Push("250-slow=1\n250 OK") // the late reply to the abandoned command
	if m := <-fast; m["fast"] != "2" || m["slow"] != "" {
		t.Fatalf("GETINFO fast = %v (got the abandoned reply?)", m)
	}
}

func TestCancelBeforeWriteSendsNothing(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Do(cctx, "SIGNAL NEWNYM"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	s.Expect("GETINFO version", "250-version=x\n250 OK")
	if _, err := c.GetInfo(ctx, "version"); err != nil {
		t.Fatal(err)
	}
	if got := s.Received(); len(got) != 1 || got[0] != "GETINFO version" {
		t.Fatalf("received %q", got)
	}
}

// Many goroutines issue commands while events flow; each caller gets the
// reply to its own command, and events stay in order. Run with -race.
func TestConcurrentDoWithEvents(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Handle(`^GETINFO k-\d+-\d+$`, func(l string) string {
		k := strings.TrimPrefix(l, "GETINFO ")
		return "650 STREAM 1 SENTCONNECT 2 x:1\n250-" + k + "=v" + k + "\n250 OK"
	})
	const workers, per, pushed = 32, 20, 300
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				k := fmt.Sprintf("k-%d-%d", w, i)
				m, err := c.GetInfo(ctx, k)
				if err != nil || m[k] != "v"+k || len(m) != 1 {
					t.Errorf("GETINFO %s = %v, %v", k, m, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range pushed {
			s.Push(fmt.Sprintf("650 CIRC %d LAUNCHED", i))
		}
	})
	circ, stream := 0, 0
	for circ < pushed || stream < workers*per {
		e := nextEvent(t, ctx, c)
		switch e.Type {
		case "CIRC":
			if want := fmt.Sprintf("CIRC %d LAUNCHED", circ); e.Text != want {
				t.Fatalf("event %q, want %q", e.Text, want)
			}
			circ++
		case "STREAM":
			stream++
		}
	}
	wg.Wait()
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestDialTCPAndUnix(t *testing.T) {
	ctx := testCtx(t)
	s := torctltest.New(t)
	s.Expect("GETINFO version", "250-version=Tor 0.4.9.11\n250 OK")
	c, err := Dial(ctx, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if m, err := c.GetInfo(ctx, "version"); err != nil || m["version"] != "Tor 0.4.9.11" {
		t.Fatalf("%v %v", m, err)
	}
	c.Close()

	path := filepath.Join(t.TempDir(), "control")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		buf := make([]byte, 64)
		n, _ := nc.Read(buf)
		if string(buf[:n]) == "SIGNAL NEWNYM\r\n" {
			nc.Write([]byte("250 OK\r\n"))
		}
		nc.Read(buf) // until the client closes
	}()
	c, err = Dial(ctx, "unix:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(ctx, "NEWNYM"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-done
	noConnGoroutines(t, c)
	if _, err := Dial(ctx, "unix:"+filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("Dial to a missing socket succeeded")
	}
}

// The reconnect pattern the attacher uses: Done fires when Tor goes away, a
// new Conn is dialled and authenticated on the same address.
func TestReconnectAfterTorRestart(t *testing.T) {
	ctx := testCtx(t)
	s := torctltest.New(t)
	s.AcceptNullAuth()
	s.AcceptNullAuth()
	var conns []*Conn
	for i := range 2 {
		c, err := Dial(ctx, s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if err := c.Authenticate(ctx, AuthOptions{}); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		if i == 0 {
			s.DropConn()
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatal("Done not closed after the fake hung up")
			}
			if !errors.Is(c.Err(), io.EOF) {
				t.Fatalf("Err() = %v", c.Err())
			}
		}
	}
	if err := s.Done(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		c.Close()
	}
	noConnGoroutines(t, conns...)
}

// A Tor that stops reading: a write blocked past ctx's deadline is aborted
// through the transport's write deadline, and the half-written connection
// is closed rather than reused.
func TestWriteBlockedCancelled(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	c := NewConn(client)
	defer func() { c.Close(); noConnGoroutines(t, c) }()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Do(ctx, "GETINFO version"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	<-c.Done()
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "write") {
		t.Fatalf("Err() = %v", err)
	}
}

// Should Tor ever put an event inside a multi-line reply (§4.1 forbids it),
// the command still gets its whole reply and the event still arrives.
func TestEventInsideReplyRouted(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("GETINFO a b", "250-a=1\n650 STREAM 7 NEW 0 x:1\n250-b=2\n250 OK")
	m, err := c.GetInfo(ctx, "a", "b")
	if err != nil || m["a"] != "1" || m["b"] != "2" || len(m) != 2 {
		t.Fatalf("%v %v", m, err)
	}
	if e := nextEvent(t, ctx, c); e.Text != "STREAM 7 NEW 0 x:1" {
		t.Fatalf("event %+v", e)
	}
}
