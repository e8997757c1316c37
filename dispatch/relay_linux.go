package dispatch

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// The relay of a proxied connection on Linux (measured in
// docs/performance.md as socksdB).
//
// Two modes per direction. Small: each wake reads what is queued into a
// pooled buffer and writes it once (read, write, and the read that hits
// EAGAIN: 3 syscalls for a 1-byte echo, against 6 with splice). Bulk: once
// a read fills the buffer, splice(2) the queued bytes (SIOCINQ) without
// copying them through user space; a wake that finds less than a buffer
// queued goes back to small. In both modes an idle direction waits
// holding neither a buffer nor a splice pipe: relay (below) in the
// netpoller, a relayConn's pdirs (park_linux.go) in the netpoller at first
// and in a private epoll set, without a goroutine, once idle.

// relayBufSize is the small-mode buffer: a read that fills it means bulk.
// 16 KiB covers interactive traffic and typical TLS records (16 KiB + a
// header spans two reads, which still counts as bulk: that is intended).
const relayBufSize = 16 << 10

// relayBufs holds the small-mode buffers, borrowed only while bytes flow.
var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// relayTCP copies src to dst until EOF or an error.
func relayTCP(dst *net.TCPConn, src syscallReader) (int64, error) {
	n, _, err := relay(dst, src, dst)
	return n, err
}

// relay copies src to dst. In bulk mode rf (dst's splicing ReadFrom)
// moves exactly the queued bytes, so splice never waits on an empty
// socket while holding a pipe. With rf nil relay returns bulk = true when
// a read filled the buffer: the caller copies the rest its own way.
func relay(dst io.Writer, src syscallReader, rf io.ReaderFrom) (total int64, bulk bool, err error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, false, err
	}
	var (
		bp    *[]byte // borrowed buffer, nil while parked
		n     int     // small mode: bytes read
		avail int     // bulk mode: bytes queued, 0 at EOF
		ierr  error   // the socket's error seen in the callbacks
	)
	// The callbacks are built once: a closure per wake would allocate.
	readSmall := func(fd uintptr) bool {
		if bp == nil {
			bp = relayBufs.Get().(*[]byte)
		}
		for {
			n, ierr = unix.Read(int(fd), *bp)
			if ierr != unix.EINTR {
				break
			}
		}
		if ierr == unix.EAGAIN {
			relayBufs.Put(bp) // nothing queued: park without the buffer
			bp = nil
			return false
		}
		return true
	}
	waitBulk := func(fd uintptr) bool {
		avail, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if ierr != nil || avail > 0 {
			return true
		}
		var b [1]byte
		m, _, e := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case e == unix.EAGAIN:
			return false // nothing yet: wait for readability, no pipe held
		case e == nil && m > 0:
			// Bytes arrived between the ioctl and the peek.
			avail, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			avail = max(avail, m)
		default:
			ierr = e // nil: EOF (m == 0); else the socket's error
		}
		return true
	}
	defer func() {
		if bp != nil {
			relayBufs.Put(bp)
		}
	}()
	small := true
	for {
		if small {
			err := rc.Read(readSmall)
			if err == nil {
				err = ierr
			}
			if err != nil {
				return total, false, err
			}
			if n <= 0 {
				return total, false, nil // EOF
			}
			m, err := dst.Write((*bp)[:n])
			total += int64(m)
			full := n == len(*bp)
			relayBufs.Put(bp)
			bp = nil
			if err != nil {
				return total, false, err
			}
			if full {
				if rf == nil {
					return total, true, nil
				}
				small = false
			}
			continue
		}
		err := rc.Read(waitBulk)
		if err == nil {
			err = ierr
		}
		if err != nil {
			return total, false, err
		}
		if avail == 0 {
			return total, false, nil // EOF
		}
		if avail < relayBufSize {
			small = true // the next read finds these bytes at once
			continue
		}
		m, err := rf.ReadFrom(&io.LimitedReader{R: src, N: int64(avail)})
		total += m
		if err != nil {
			return total, false, err
		}
	}
}

type syscallReader interface {
	io.Reader
	SyscallConn() (syscall.RawConn, error)
}

type rawStream interface {
	Conn() net.Conn
	Rest() []byte
}

// copyUp relays client→upstream.
func copyUp(up Stream, c net.Conn) (int64, error) {
	rs, ok1 := up.(rawStream)
	cc, ok2 := c.(*net.TCPConn)
	if ok1 && ok2 {
		switch u := rs.Conn().(type) {
		case *net.TCPConn:
			return relayTCP(u, cc)
		case *net.UnixConn:
			// *net.UnixConn has no ReadFrom to splice a bounded count
			// into; once the stream turns bulk, TCPConn.WriteTo
			// (Go's splice from a TCP source) moves the rest and holds its
			// pipe to the end.
			n, bulk, err := relay(u, cc, nil)
			if !bulk {
				return n, err
			}
			m, err := cc.WriteTo(u)
			return n + m, err
		}
	}
	return io.Copy(up, c)
}

// copyDown relays upstream→client, first what came with the reply.
func copyDown(c net.Conn, up Stream) (int64, error) {
	rs, ok1 := up.(rawStream)
	cc, ok2 := c.(*net.TCPConn)
	if ok1 && ok2 {
		var n int64
		if rest := rs.Rest(); len(rest) > 0 {
			m, err := c.Write(rest)
			n += int64(m)
			if err != nil {
				return n, err
			}
		}
		var m int64
		var err error
		switch u := rs.Conn().(type) {
		case *net.TCPConn:
			m, err = relayTCP(cc, u)
		case *net.UnixConn:
			m, err = relayTCP(cc, u) // splice(2) takes a Unix source
		default:
			m, err = io.Copy(c, up)
		}
		return n + m, err
	}
	return io.Copy(c, up)
}

// relayConn is a connection's two relay directions. Where both sockets
// are plain (TCP client; TCP or Unix upstream under a rawStream) each
// direction parks in the epoll set while idle (park_linux.go); otherwise
// each direction is a goroutine copying until EOF.
type relayConn struct {
	c     net.Conn
	up    Stream
	cc    *net.TCPConn // nil: not parkable
	rs    rawStream
	upDir atomic.Pointer[pdir]
	dnDir atomic.Pointer[pdir]
}

func newRelayConn(c net.Conn, up Stream) *relayConn {
	r := &relayConn{c: c, up: up}
	rs, ok1 := up.(rawStream)
	cc, ok2 := c.(*net.TCPConn)
	if ok1 && ok2 {
		switch rs.Conn().(type) {
		case *net.TCPConn, *net.UnixConn:
			r.cc, r.rs = cc, rs
		}
	}
	return r
}

// startUp starts client→upstream; done is called once, when it ended.
func (r *relayConn) startUp(done func(int64, error)) {
	if r.cc != nil {
		var d *pdir
		switch u := r.rs.Conn().(type) {
		case *net.TCPConn:
			d = startPdir(u, r.cc, u, nil, done)
		case *net.UnixConn:
			// No bounded splice into a Unix socket (see copyUp): once bulk,
			// TCPConn.WriteTo moves the rest on the direction's goroutine.
			d = startPdir(u, r.cc, nil, func() (int64, error) { return r.cc.WriteTo(u) }, done)
		}
		if d != nil {
			r.upDir.Store(d)
			go d.run()
			return
		}
	}
	go func() { done(copyUp(r.up, r.c)) }()
}

// startDown starts upstream→client, first what came with the reply;
// done is called once, when it ended.
func (r *relayConn) startDown(done func(int64, error)) {
	if r.cc != nil {
		var n int64
		if rest := r.rs.Rest(); len(rest) > 0 {
			m, err := r.cc.Write(rest)
			n = int64(m)
			if err != nil {
				done(n, err)
				return
			}
		}
		if src, ok := r.rs.Conn().(deadlineReader); ok {
			if d := startPdir(r.cc, src, r.cc, nil, func(m int64, err error) { done(n+m, err) }); d != nil {
				r.dnDir.Store(d)
				// Not on relayDown's goroutine: it waits for the end with a
				// shallow stack, which this copy would grow.
				go d.run()
				return
			}
		}
		go func() { m, err := io.Copy(r.cc, r.rs.Conn()); done(n+m, err) }()
		return
	}
	go func() { done(copyDown(r.c, r.up)) }()
}

// kick is called after both sockets were closed: parked directions see
// the close only when woken.
func (r *relayConn) kick() {
	r.upDir.Load().kick()
	r.dnDir.Load().kick()
}
