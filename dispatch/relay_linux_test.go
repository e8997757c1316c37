package dispatch

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"socksd/internal/leakcheck"
)

// connPair returns the two ends (dialled, accepted) of one connection to
// a listener on network/addr; both are closed when the test ends.
func connPair(t testing.TB, network, addr string) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		acc <- c
	}()
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (a, b *net.TCPConn) {
	t.Helper()
	c, s := connPair(t, "tcp", "127.0.0.1:0")
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// unixPair returns the two ends of a Unix stream connection.
func unixPair(t testing.TB) (a, b *net.UnixConn) {
	t.Helper()
	c, s := connPair(t, "unix", filepath.Join(t.TempDir(), "s"))
	return c.(*net.UnixConn), s.(*net.UnixConn)
}

type relayResult struct {
	n   int64
	err error
}

// pattern is n bytes that show a dropped or reordered chunk.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed + byte(i>>14)
	}
	return b
}

func readFullDeadline(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// TestRelaySmallBulkSmall moves, on one stream, 1-byte echoes (small
// mode), 4 MiB (bulk: splice), then small messages again, a message of
// exactly one buffer and one of a buffer plus a byte (the switch points),
// and checks every byte arrives in order and the count is exact.
func TestRelaySmallBulkSmall(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  func(t *testing.T) (w net.Conn, r syscallReader)
	}{
		{"tcp", func(t *testing.T) (net.Conn, syscallReader) { a, b := tcpPair(t); return a, b }},
		{"unix source", func(t *testing.T) (net.Conn, syscallReader) { a, b := unixPair(t); return a, b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			w, src := tc.src(t)
			dst, out := tcpPair(t)
			done := make(chan relayResult, 1)
			go func() {
				n, err := relayTCP(dst, src)
				done <- relayResult{n, err}
			}()
			var want int64
			send := func(b []byte) {
				t.Helper()
				go w.Write(b) // bulk sizes exceed the socket buffers
				if got := readFullDeadline(t, out, len(b)); !bytes.Equal(got, b) {
					t.Fatalf("%d bytes: payload differs", len(b))
				}
				want += int64(len(b))
			}
			for i := range 3 {
				send([]byte{byte(i)})
			}
			send(pattern(4<<20, 1))
			send([]byte("x"))
			send(pattern(relayBufSize, 2))
			send(pattern(relayBufSize+1, 3))
			send(pattern(100, 4))
			send(pattern(1<<20, 5))
			send([]byte("y"))
			w.(interface{ CloseWrite() error }).CloseWrite()
			r := <-done
			if r.err != nil || r.n != want {
				t.Fatalf("relay = %d, %v; want %d, nil", r.n, r.err, want)
			}
		})
	}
}

// TestRelayHalfClose: EOF on one direction ends that relay cleanly while
// the other direction keeps working, both ways round.
func TestRelayHalfClose(t *testing.T) {
	leakcheck.Check(t)
	cli, cliPeer := tcpPair(t) // client side: cli is the app
	up, upPeer := tcpPair(t)   // upstream side: upPeer is the destination
	upDone := make(chan relayResult, 1)
	downDone := make(chan relayResult, 1)
	go func() { n, err := relayTCP(up, cliPeer); up.CloseWrite(); upDone <- relayResult{n, err} }()
	go func() { n, err := relayTCP(cliPeer, up); cliPeer.CloseWrite(); downDone <- relayResult{n, err} }()

	// The app sends and half-closes: the destination sees data then EOF.
	cli.Write([]byte("request"))
	cli.CloseWrite()
	upPeer.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(upPeer)
	if err != nil || string(got) != "request" {
		t.Fatalf("destination got %q, %v", got, err)
	}
	if r := <-upDone; r.err != nil || r.n != 7 {
		t.Fatalf("up relay = %d, %v", r.n, r.err)
	}
	// The other direction still flows, small then bulk, then EOF.
	big := pattern(2<<20, 9)
	go func() {
		upPeer.Write([]byte("reply:"))
		upPeer.Write(big)
		upPeer.CloseWrite()
	}()
	cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err = io.ReadAll(cli)
	if err != nil || !bytes.Equal(got, append([]byte("reply:"), big...)) {
		t.Fatalf("app got %d bytes, %v; want %d", len(got), err, 6+len(big))
	}
	if r := <-downDone; r.err != nil || r.n != int64(6+len(big)) {
		t.Fatalf("down relay = %d, %v", r.n, r.err)
	}
}

// TestRelayClosedWhileIdle: closing the source while the relay waits ends
// it with net.ErrClosed (an expected end for isEOF), holding nothing.
func TestRelayClosedWhileIdle(t *testing.T) {
	leakcheck.Check(t)
	w, src := tcpPair(t)
	dst, out := tcpPair(t)
	done := make(chan relayResult, 1)
	go func() { n, err := relayTCP(dst, src); done <- relayResult{n, err} }()
	w.Write([]byte("a"))
	readFullDeadline(t, out, 1)
	src.Close()
	r := <-done
	if r.n != 1 || !isEOF(r.err) {
		t.Fatalf("relay = %d, %v; want 1, closed", r.n, r.err)
	}
}

// unixStream is a Stream over a Unix socket, as chain's Stream with a
// Unix upstream looks to copyUp.
type unixStream struct{ *net.UnixConn }

func (unixStream) Await(context.Context) error { return nil }
func (u unixStream) Conn() net.Conn            { return u.UnixConn }
func (unixStream) Rest() []byte                { return nil }
func (u unixStream) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{u.UnixConn}, r)
}
func (u unixStream) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, struct{ io.Reader }{u.UnixConn})
}

var _ RawStream = unixStream{}

// TestCopyUpUnix: client→Unix upstream, small then bulk (handed to
// TCPConn.WriteTo) then small, with an exact count.
func TestCopyUpUnix(t *testing.T) {
	leakcheck.Check(t)
	cli, cliPeer := tcpPair(t)
	u, uPeer := unixPair(t)
	done := make(chan relayResult, 1)
	go func() {
		n, err := copyUp(unixStream{u}, cliPeer)
		done <- relayResult{n, err}
	}()
	var want int64
	for _, b := range [][]byte{[]byte("h"), pattern(3<<20, 7), []byte("tail")} {
		go cli.Write(b)
		if got := readFullDeadline(t, uPeer, len(b)); !bytes.Equal(got, b) {
			t.Fatalf("%d bytes: payload differs", len(b))
		}
		want += int64(len(b))
	}
	cli.CloseWrite()
	if r := <-done; r.err != nil || r.n != want {
		t.Fatalf("copyUp = %d, %v; want %d", r.n, r.err, want)
	}
}
