package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Proto is how the load tool reaches the sink through a target.
type Proto int

const (
	ProtoDirect  Proto = iota // plain TCP to the sink: the physical limit
	ProtoSOCKS5               // RFC 1928, no authentication, ATYP 1
	ProtoSOCKS4a              // SOCKS4a with the destination as a hostname literal
)

func (p Proto) String() string {
	return [...]string{"tcp", "socks5", "socks4a"}[p]
}

var errReply = errors.New("socksbench: proxy refused the request")

// dialer dials the sink through a proxy the way ordinary clients (curl,
// browsers) do: one message, wait for the answer, next message — no
// pipelining, so every SOCKS5 connection costs two round trips.
type dialer struct {
	proto Proto
	proxy string // host:port of the proxy; unused for ProtoDirect
	// src spreads client source addresses over 127.0.0.0/8 so the
	// connection-rate loops do not run out of ephemeral ports.
	src int
	// user, if set, is sent with RFC 1929 username/password auth (password
	// "x"): Tor isolates streams by these credentials.
	user string
}

func (d *dialer) dial(dst netip.AddrPort, timeout time.Duration) (*net.TCPConn, error) {
	deadline := time.Now().Add(timeout)
	nd := net.Dialer{Deadline: deadline}
	if d.src > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, byte(d.src>>8)+1, byte(d.src), 2)}
		nd.Control = bindNoPort
	}
	addr := d.proxy
	if d.proto == ProtoDirect {
		addr = dst.String()
	}
	nc, err := nd.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := nc.(*net.TCPConn)
	if d.proto == ProtoDirect {
		return c, nil
	}
	c.SetDeadline(deadline)
	if err := handshake(c, d.proto, dst, d.user); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (Linux 4.2+, linux/in.h).
const ipBindAddressNoPort = 24

// bindNoPort defers the source port choice to connect(2), so binding a
// source address does not reserve a port per address: the 4-tuple, not
// the port, must then be unique, and tens of thousands of TIME_WAIT
// sockets from earlier runs do not exhaust the ephemeral range.
func bindNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func handshake(c *net.TCPConn, p Proto, dst netip.AddrPort, user string) error {
	var buf [64]byte
	ip := dst.Addr().As4()
	port := dst.Port()
	switch p {
	case ProtoSOCKS5:
		method := byte(0)
		if user != "" {
			method = 2
		}
		if _, err := c.Write([]byte{5, 1, method}); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return err
		}
		if buf[0] != 5 || buf[1] != method {
			return fmt.Errorf("%w: method % x", errReply, buf[:2])
		}
		if method == 2 {
			auth := append([]byte{1, byte(len(user))}, user...)
			auth = append(auth, 1, 'x')
			if _, err := c.Write(auth); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, buf[:2]); err != nil {
				return err
			}
			if buf[1] != 0 {
				return fmt.Errorf("%w: auth % x", errReply, buf[:2])
			}
		}
		req := append(buf[:0], 5, 1, 0, 1, ip[0], ip[1], ip[2], ip[3], byte(port>>8), byte(port))
		if _, err := c.Write(req); err != nil {
			return err
		}
		// VER REP RSV ATYP, then the bound address by ATYP, then port.
		if _, err := io.ReadFull(c, buf[:5]); err != nil {
			return err
		}
		if buf[1] != 0 {
			return fmt.Errorf("%w: socks5 reply %#02x", errReply, buf[1])
		}
		var rest int
		switch buf[3] {
		case 1:
			rest = 4 - 1 + 2
		case 4:
			rest = 16 - 1 + 2
		case 3:
			rest = int(buf[4]) + 2
		default:
			return fmt.Errorf("%w: atyp %#02x", errReply, buf[3])
		}
		_, err := io.ReadFull(c, buf[:rest])
		return err
	case ProtoSOCKS4a:
		host := dst.Addr().String()
		req := append(buf[:0], 4, 1, byte(port>>8), byte(port), 0, 0, 0, 1, 0)
		req = append(append(req, host...), 0)
		if _, err := c.Write(req); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf[:8]); err != nil {
			return err
		}
		if buf[1] != 0x5a {
			return fmt.Errorf("%w: socks4 reply %#02x", errReply, buf[1])
		}
		return nil
	}
	return fmt.Errorf("socksbench: unknown protocol %d", p)
}

// httpGetOn sends an HTTP/1.0 GET of path for host on c (so the server
// closes; the caller set c's deadline) and reads the answer: the time
// from start to its first byte, and the body's length. With want200 a
// status other than 200 is an error.
func httpGetOn(c net.Conn, start time.Time, host, path string, want200 bool) (time.Duration, int64, error) {
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host); err != nil {
		return 0, 0, err
	}
	br := bufio.NewReaderSize(c, 256<<10)
	if _, err := br.Peek(1); err != nil {
		return 0, 0, err
	}
	ttfb := time.Since(start)
	for first := true; ; first = false {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, 0, err
		}
		if first && want200 && !strings.Contains(line, " 200 ") {
			return 0, 0, fmt.Errorf("answer %q", strings.TrimSpace(line))
		}
		if line == "\r\n" {
			break
		}
	}
	n, err := io.Copy(io.Discard, br)
	return ttfb, n, err
}
