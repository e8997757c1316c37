//go:build linux

package dispatch

import (
	"io"
	"net"
	"testing"
)

// relayedEcho is app ⇄ relay ⇄ echo server over loopback TCP, with both
// relay directions running as in a proxied connection.
func relayedEcho(b *testing.B) (app *net.TCPConn, wait func()) {
	app, c := tcpPair(b)
	u, e := tcpPair(b)
	done := make(chan struct{}, 3)
	go func() { relayTCP(u, c); u.CloseWrite(); done <- struct{}{} }()
	go func() { relayTCP(c, u); c.CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(e, e); e.CloseWrite(); done <- struct{}{} }()
	return app, func() {
		app.CloseWrite()
		io.Copy(io.Discard, app)
		for range 3 {
			<-done
		}
	}
}

// BenchmarkRelayEcho is the 1-byte echo of the connection-rate test:
// the relay's cost per small message both ways.
func BenchmarkRelayEcho(b *testing.B) {
	app, wait := relayedEcho(b)
	buf := make([]byte, 1)
	b.ResetTimer()
	for range b.N {
		if _, err := app.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(app, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	wait()
}

// BenchmarkRelayBulk streams 64 KiB writes through the relay and back.
func BenchmarkRelayBulk(b *testing.B) {
	app, wait := relayedEcho(b)
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	errc := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, app, int64(b.N)*int64(len(chunk)))
		errc <- err
	}()
	b.ResetTimer()
	for range b.N {
		if _, err := app.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	wait()
}

// The same through relayConn, as connect runs it (directions park in the
// epoll set once idle): compare with the two above in one run.

func BenchmarkRelayConnEcho(b *testing.B) {
	r := newRelayed(b, false)
	go func() { io.Copy(r.dest, r.dest); r.dest.(*net.TCPConn).CloseWrite() }()
	buf := make([]byte, 1)
	b.ResetTimer()
	for range b.N {
		if _, err := r.app.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r.app, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	r.app.(*net.TCPConn).CloseWrite()
	<-r.upDone
	<-r.downDone
}

func BenchmarkRelayConnBulk(b *testing.B) {
	r := newRelayed(b, false)
	go func() { io.Copy(r.dest, r.dest); r.dest.(*net.TCPConn).CloseWrite() }()
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	errc := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, r.app, int64(b.N)*int64(len(chunk)))
		errc <- err
	}()
	b.ResetTimer()
	for range b.N {
		if _, err := r.app.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	r.app.(*net.TCPConn).CloseWrite()
	<-r.upDone
	<-r.downDone
}
