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
	return relay(dst, src, dst, nil)
}

// relay copies src to dst, waiting in Go's netpoller while src is empty.
// rf and bulkTail are as in copier.
func relay(dst io.Writer, src syscallReader, rf io.ReaderFrom, bulkTail func() (int64, error)) (int64, error) {
	var c copier
	if err := c.init(dst, src, rf, bulkTail); err != nil {
		return 0, err
	}
	c.read = c.pollRead
	defer c.release()
	for {
		if end, err := c.step(); end {
			return c.total, err
		}
	}
}

// copier is one relay direction's copy loop, the one both relay (which
// waits in Go's netpoller) and pdir (which parks in the epoll set once
// idle, park_linux.go) run. Each step waits until src is readable, then
// moves what is queued once: small, a read into a pooled buffer and one
// write; bulk, a splice of exactly the queued bytes.
type copier struct {
	rc  syscall.RawConn
	src syscallReader
	dst io.Writer
	// rf is dst's splicing ReadFrom for bulk mode: it moves exactly the
	// queued bytes, so splice never waits on an empty socket while
	// holding a pipe. nil: once a read fills the buffer, bulkTail copies
	// the rest of the stream its own way (a Unix destination has no
	// bounded splice).
	rf       io.ReaderFrom
	bulkTail func() (int64, error)
	// read runs a callback (readSmall or peekBulk) with src's descriptor
	// until it returns true, and returns the socket's error or the
	// callback's.
	read func(f func(fd uintptr) bool) error

	bulk     bool
	total    int64
	bp       *[]byte // borrowed buffer, nil while waiting
	n, avail int     // small mode: bytes read; bulk mode: bytes queued, 0 at EOF
	ierr     error   // the socket's error seen in the callbacks
	// The callbacks as values, made once: a method value per wake would
	// allocate.
	trySmall, tryBulk func(fd uintptr) bool
}

func (c *copier) init(dst io.Writer, src syscallReader, rf io.ReaderFrom, bulkTail func() (int64, error)) error {
	rc, err := src.SyscallConn()
	if err != nil {
		return err
	}
	c.rc, c.src, c.dst, c.rf, c.bulkTail = rc, src, dst, rf, bulkTail
	c.trySmall, c.tryBulk = c.readSmall, c.peekBulk
	return nil
}

// pollRead waits in Go's netpoller.
func (c *copier) pollRead(f func(fd uintptr) bool) error {
	err := c.rc.Read(f)
	if err == nil {
		err = c.ierr
	}
	return err
}

func (c *copier) readSmall(fd uintptr) bool {
	if c.bp == nil {
		c.bp = relayBufs.Get().(*[]byte)
	}
	for {
		c.n, c.ierr = unix.Read(int(fd), *c.bp)
		if c.ierr != unix.EINTR {
			break
		}
	}
	if c.ierr == unix.EAGAIN {
		relayBufs.Put(c.bp) // nothing queued: wait without the buffer
		c.bp = nil
		return false
	}
	return true
}

func (c *copier) peekBulk(fd uintptr) bool {
	c.avail, c.ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	if c.ierr != nil || c.avail > 0 {
		return true
	}
	var b [1]byte
	m, _, e := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	switch {
	case e == unix.EAGAIN:
		return false // nothing yet: wait for readability, no pipe held
	case e == nil && m > 0:
		// Bytes arrived between the ioctl and the peek.
		c.avail, c.ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		c.avail = max(c.avail, m)
	default:
		c.ierr = e // nil: EOF (m == 0); else the socket's error
	}
	return true
}

// step waits until src is readable, then moves what is queued once. end:
// EOF or err.
func (c *copier) step() (end bool, err error) {
	c.ierr = nil
	if !c.bulk {
		if err := c.read(c.trySmall); err != nil {
			return true, err
		}
		if c.n <= 0 {
			return true, nil // EOF
		}
		m, err := c.dst.Write((*c.bp)[:c.n])
		c.total += int64(m)
		full := c.n == len(*c.bp)
		relayBufs.Put(c.bp)
		c.bp = nil
		if err != nil {
			return true, err
		}
		if full {
			if c.rf == nil {
				m, err := c.bulkTail()
				c.total += m
				return true, err
			}
			c.bulk = true
		}
		return false, nil
	}
	if err := c.read(c.tryBulk); err != nil {
		return true, err
	}
	switch {
	case c.avail == 0:
		return true, nil // EOF
	case c.avail < relayBufSize:
		c.bulk = false // the next read finds these bytes at once
		return false, nil
	}
	m, err := c.rf.ReadFrom(&io.LimitedReader{R: c.src, N: int64(c.avail)})
	c.total += m
	return err != nil, err
}

// release returns a borrowed buffer.
func (c *copier) release() {
	if c.bp != nil {
		relayBufs.Put(c.bp)
		c.bp = nil
	}
}

type syscallReader interface {
	io.Reader
	SyscallConn() (syscall.RawConn, error)
}

// copyUp relays client→upstream.
func copyUp(up Stream, c net.Conn) (int64, error) {
	rs, ok1 := up.(RawStream)
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
			return relay(u, cc, nil, func() (int64, error) { return cc.WriteTo(u) })
		}
	}
	return io.Copy(up, c)
}

// copyDown relays upstream→client, first what came with the reply.
func copyDown(c net.Conn, up Stream) (int64, error) {
	rs, ok1 := up.(RawStream)
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
// are plain (TCP client; TCP or Unix upstream under a RawStream) each
// direction parks in the epoll set while idle (park_linux.go); otherwise
// each direction is a goroutine copying until EOF.
type relayConn struct {
	c     net.Conn
	up    Stream
	cc    *net.TCPConn // nil: not parkable
	rs    RawStream
	upDir atomic.Pointer[pdir]
	dnDir atomic.Pointer[pdir]
}

func newRelayConn(c net.Conn, up Stream) *relayConn {
	r := &relayConn{c: c, up: up}
	rs, ok1 := up.(RawStream)
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
