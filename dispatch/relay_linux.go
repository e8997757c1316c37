package dispatch

import (
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// The relay of a proxied connection on Linux (issue 8 item 5; measured in
// docs/performance.md as socksdB).

// relayTCP copies src to dst with splice(2) but holds one of Go's splice
// pipes only while bytes are queued: it parks in the netpoller (no pipe)
// until src is readable, then splices exactly the queued bytes
// (SIOCINQ), so the splice never blocks on an empty socket.
func relayTCP(dst *net.TCPConn, src syscallReader) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		var avail int
		var ierr error
		err := rc.Read(func(fd uintptr) bool {
			avail, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			if ierr != nil || avail > 0 {
				return true
			}
			var b [1]byte
			n, _, e := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch {
			case e == unix.EAGAIN:
				return false // nothing yet: wait for readability, no pipe held
			case e == nil && n > 0:
				// Bytes arrived between the ioctl and the peek.
				avail, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
				avail = max(avail, n)
			default:
				ierr = e // nil: EOF (n == 0); else the socket's error
			}
			return true
		})
		if err == nil {
			err = ierr
		}
		if err != nil {
			return total, err
		}
		if avail == 0 {
			return total, nil // EOF
		}
		n, err := dst.ReadFrom(&io.LimitedReader{R: src, N: int64(avail)})
		total += n
		if err != nil {
			return total, err
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
			// TCP→Unix splices through TCPConn.WriteTo (spliceTo).
			return cc.WriteTo(u)
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
			m, err = relayTCP(cc, u) // spliceFrom takes a Unix source
		default:
			m, err = io.Copy(c, up)
		}
		return n + m, err
	}
	return io.Copy(c, up)
}
