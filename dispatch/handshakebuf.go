package dispatch

import (
	"net"
	"sync"

	"socksd/httpguard"
)

// The handshake buffer grows with what the client sent, through three
// pooled sizes. A connection parked in its handshake (a flood of idle
// connections, or a slow client) holds only the smallest: 4,096 of them
// held 64 MiB of heap when each took the largest at accept.
//
//   - 512 B: a SOCKS4 request with a short user ID, a SOCKS5 greeting and
//     request without authentication, with a little optimistic data;
//   - 4 KiB: any SOCKS handshake (a SOCKS5 username/password
//     subnegotiation is at most 513 bytes, a SOCKS4a request with its
//     user ID and host a few hundred) and a typical HTTP CONNECT head;
//   - 16 KiB: the largest HTTP head (httpguard.MaxHead) and what
//     optimistic data arrived with it. Early data beyond it stays in the
//     socket and is relayed normally.
var bufSizes = [...]int{512, 4 << 10, httpguard.MaxHead + 8<<10}

var bufPools [len(bufSizes)]sync.Pool

func init() {
	for i, n := range bufSizes {
		bufPools[i].New = func() any { b := make([]byte, n); return &b }
	}
}

// reader accumulates the client's handshake bytes in one buffer.
type reader struct {
	c     net.Conn
	buf   []byte  // len = bytes held
	bp    *[]byte // the pooled buffer buf lives in; nil once released
	class int     // index into bufSizes of bp
}

func newReader(c net.Conn) *reader {
	bp := bufPools[0].Get().(*[]byte)
	return &reader{c: c, buf: (*bp)[:0], bp: bp}
}

// more reads at least one more byte into the buffer, moving to the next
// size when the buffer is full.
func (r *reader) more() error {
	if len(r.buf) == cap(r.buf) && !r.grow() {
		return errTooLarge
	}
	n, err := r.c.Read(r.buf[len(r.buf):cap(r.buf)])
	r.buf = r.buf[:len(r.buf)+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		return errHandshakeShort
	}
	return err
}

// grow copies the bytes held into a buffer of the next size. The
// outgrown buffer is left to the garbage collector, not returned to its
// pool: a parser may still hold a slice of it from an earlier step.
func (r *reader) grow() bool {
	if r.class+1 == len(bufSizes) {
		return false
	}
	r.class++
	bp := bufPools[r.class].Get().(*[]byte)
	r.buf = append((*bp)[:0], r.buf...)
	r.bp = bp
	return true
}

// release returns the buffer to its pool once nothing aliases it (for a
// CONNECT, right after Upstream.Open copied the early data), so a
// long-lived stream does not pin it. It is safe to call more than once.
func (r *reader) release() {
	if r.bp != nil {
		bufPools[r.class].Put(r.bp)
		r.bp, r.buf = nil, nil
	}
}
