package dispatch

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"socksd/internal/leakcheck"
)

// connStream is a Stream over a plain socket, as chain's Stream looks to
// the relay (a RawStream).
type connStream struct{ c net.Conn }

func (s connStream) Read(b []byte) (int, error)  { return s.c.Read(b) }
func (s connStream) Write(b []byte) (int, error) { return s.c.Write(b) }
func (s connStream) Close() error                { return s.c.Close() }
func (s connStream) CloseWrite() error {
	return s.c.(interface{ CloseWrite() error }).CloseWrite()
}
func (connStream) Await(context.Context) error { return nil }
func (s connStream) Conn() net.Conn            { return s.c }
func (connStream) Rest() []byte                { return nil }
func (s connStream) ReadFrom(r io.Reader) (int64, error) {
	return s.c.(io.ReaderFrom).ReadFrom(r)
}
func (s connStream) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, s.c) }

var _ RawStream = connStream{}

// relayed is app ⇄ [c relayConn up] ⇄ dest with both directions started
// as connect and relayDown start them.
type relayed struct {
	app, dest net.Conn
	rl        *relayConn
	upDone    chan relayResult
	downDone  chan relayResult
}

func newRelayed(t testing.TB, unixUp bool) *relayed {
	t.Helper()
	app, c := tcpPair(t)
	var up, dest net.Conn
	if unixUp {
		up, dest = unixPair(t)
	} else {
		up, dest = tcpPair(t)
	}
	r := &relayed{app: app, dest: dest, rl: newRelayConn(c, connStream{up}),
		upDone: make(chan relayResult, 1), downDone: make(chan relayResult, 1)}
	r.rl.startUp(func(n int64, err error) {
		if err != nil && !isEOF(err) {
			r.rl.abort()
		} else {
			up.(interface{ CloseWrite() error }).CloseWrite()
		}
		r.upDone <- relayResult{n, err}
	})
	// relayDown's goroutine: startDown runs on it until it parks.
	go r.rl.startDown(func(n int64, err error) {
		if err != nil && !isEOF(err) {
			r.rl.abort()
		} else {
			c.CloseWrite()
		}
		r.downDone <- relayResult{n, err}
	})
	return r
}

// bothParked polls (bounded) until both directions wait in the epoll set.
func (r *relayed) bothParked(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		u, d := r.rl.upDir.Load(), r.rl.dnDir.Load()
		if u != nil && d != nil && u.state.Load() == dirParked && d.state.Load() == dirParked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("directions did not park")
		}
		time.Sleep(time.Millisecond) // polling a real condition, bounded above
	}
}

func wantResult(t *testing.T, what string, ch chan relayResult, n int64, closed bool) {
	t.Helper()
	select {
	case r := <-ch:
		if closed {
			if !isEOF(r.err) || r.err == nil {
				t.Fatalf("%s: %d, %v; want a closed error", what, r.n, r.err)
			}
		} else if r.err != nil || r.n != n {
			t.Fatalf("%s: %d, %v; want %d, nil", what, r.n, r.err, n)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: did not end", what)
	}
}

// TestParkedSmallBulkSmall: both directions of a parked relay, small then
// bulk then small, then half-close from each side in turn.
func TestParkedSmallBulkSmall(t *testing.T) {
	for _, unixUp := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "unix"}[unixUp], func(t *testing.T) {
			leakcheck.Check(t)
			r := newRelayed(t, unixUp)
			var up, down int64
			for _, b := range [][]byte{{1}, {2}, pattern(4<<20, 1), []byte("x"), pattern(relayBufSize, 2), pattern(relayBufSize+1, 3), []byte("y")} {
				go r.app.Write(b)
				if got := readFullDeadline(t, r.dest, len(b)); !bytes.Equal(got, b) {
					t.Fatalf("up %d bytes differ", len(b))
				}
				up += int64(len(b))
				go r.dest.Write(b)
				if got := readFullDeadline(t, r.app, len(b)); !bytes.Equal(got, b) {
					t.Fatalf("down %d bytes differ", len(b))
				}
				down += int64(len(b))
			}
			if !unixUp {
				// Into a Unix socket, bulk left the up direction to
				// TCPConn.WriteTo on its goroutine (see copyUp).
				r.bothParked(t)
			}
			// The app half-closes: dest sees EOF, and still answers.
			r.app.(*net.TCPConn).CloseWrite()
			wantResult(t, "up", r.upDone, up, false)
			if b, err := io.ReadAll(r.dest); err != nil || len(b) != 0 {
				t.Fatalf("dest after EOF: %q, %v", b, err)
			}
			last := pattern(1<<20, 4)
			go func() {
				r.dest.Write(last)
				r.dest.(interface{ CloseWrite() error }).CloseWrite()
			}()
			r.app.SetReadDeadline(time.Now().Add(10 * time.Second))
			if b, err := io.ReadAll(r.app); err != nil || !bytes.Equal(b, last) {
				t.Fatalf("app after half-close: %d bytes, %v", len(b), err)
			}
			wantResult(t, "down", r.downDone, down+int64(len(last)), false)
		})
	}
}

// TestParkedHalfCloseFromUpstream: the destination finishes first, the
// app keeps sending.
func TestParkedHalfCloseFromUpstream(t *testing.T) {
	leakcheck.Check(t)
	r := newRelayed(t, false)
	r.bothParked(t)
	r.dest.Write([]byte("bye"))
	r.dest.(*net.TCPConn).CloseWrite()
	r.app.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(r.app); err != nil || string(b) != "bye" {
		t.Fatalf("app got %q, %v", b, err)
	}
	wantResult(t, "down", r.downDone, 3, false)
	go r.app.Write([]byte("more"))
	if got := readFullDeadline(t, r.dest, 4); string(got) != "more" {
		t.Fatalf("dest got %q", got)
	}
	r.app.(*net.TCPConn).CloseWrite()
	wantResult(t, "up", r.upDone, 4, false)
}

// TestParkedClosedWhileParked: Shutdown's force-close (both sockets
// closed, then kick) ends parked directions; sockets opened right after
// may reuse the descriptor numbers and must relay normally (no stale
// event reaches them, none of theirs is lost).
func TestParkedClosedWhileParked(t *testing.T) {
	leakcheck.Check(t)
	r := newRelayed(t, false)
	r.app.Write([]byte("a"))
	readFullDeadline(t, r.dest, 1)
	r.bothParked(t)
	ks := kickOnClose{r.rl.up, r.rl}
	r.rl.c.Close()
	ks.Close()
	wantResult(t, "up", r.upDone, 0, true)
	wantResult(t, "down", r.downDone, 0, true)

	for range 3 {
		r2 := newRelayed(t, false)
		r2.bothParked(t)
		r2.dest.Write([]byte("hi"))
		if got := readFullDeadline(t, r2.app, 2); string(got) != "hi" {
			t.Fatalf("new conn got %q", got)
		}
		r2.app.(*net.TCPConn).CloseWrite()
		r2.dest.(*net.TCPConn).CloseWrite()
		wantResult(t, "up", r2.upDone, 0, false)
		wantResult(t, "down", r2.downDone, 2, false)
	}
}

// TestParkedManyIdle: idle relays hold no goroutine; traffic on one of
// them still flows.
func TestParkedManyIdle(t *testing.T) {
	leakcheck.Check(t)
	const n = 300
	g0 := runtime.NumGoroutine()
	rs := make([]*relayed, n)
	for i := range rs {
		rs[i] = newRelayed(t, i%2 == 1)
	}
	for _, r := range rs {
		r.bothParked(t)
	}
	// The epoll goroutine; finished directions' goroutines may still be
	// exiting, so allow a few.
	if g := runtime.NumGoroutine() - g0; g > 10 {
		t.Fatalf("%d goroutines for %d idle relays", g, n)
	}
	r := rs[n/2]
	r.app.Write([]byte("ping"))
	if got := readFullDeadline(t, r.dest, 4); string(got) != "ping" {
		t.Fatalf("dest got %q", got)
	}
	r.dest.Write([]byte("pong"))
	if got := readFullDeadline(t, r.app, 4); string(got) != "pong" {
		t.Fatalf("app got %q", got)
	}
	for _, r := range rs {
		r.app.(*net.TCPConn).CloseWrite()
		r.dest.(interface{ CloseWrite() error }).CloseWrite()
	}
	for i, r := range rs {
		want := int64(0)
		if i == n/2 {
			want = 4
		}
		wantResult(t, "up", r.upDone, want, false)
		wantResult(t, "down", r.downDone, want, false)
	}
}

// TestParkedWaitOutsideSyscall: the epoll goroutine waits in Go's
// netpoller, not in a blocking epoll_wait. A goroutine blocked in a system
// call holds a P, and the runtime's sysmon then keeps waking every few
// tens of microseconds to take it back, which on a network with real
// latency cost socksd more CPU than its relays. While a relay is parked
// the epoll goroutine is the only one that could be in a system call, so
// the runtime's count of goroutines in system calls must drop to 0.
func TestParkedWaitOutsideSyscall(t *testing.T) {
	leakcheck.Check(t)
	r := newRelayed(t, false)
	r.bothParked(t)
	s := []metrics.Sample{{Name: "/sched/goroutines/not-in-go:goroutines"}}
	var seen []uint64
	// Sampled over half of parkIdle, the parked set's wait: a blocking
	// epoll_wait is in its system call for all of it.
	for range 50 {
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			t.Fatalf("runtime metric %s: kind %v", s[0].Name, s[0].Value.Kind())
		}
		v := s[0].Value.Uint64()
		if v == 0 {
			break
		}
		seen = append(seen, v)
		time.Sleep(parkIdle / 100) // sampling a real condition, bounded above
	}
	if len(seen) == 50 {
		t.Fatalf("a goroutine stayed in a system call while the relay was parked (samples %v)", seen)
	}
	r.app.(*net.TCPConn).CloseWrite()
	r.dest.(interface{ CloseWrite() error }).CloseWrite()
	wantResult(t, "up", r.upDone, 0, false)
	wantResult(t, "down", r.downDone, 0, false)
}
