package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// Raw clients for the replies real clients hide (curl prints only some
// codes): each writes its whole request at once (greeting, auth and
// request pipelined, as Tor Browser does) and returns the reply code.

const (
	torCmdConnect    = 0x01
	torCmdResolve    = 0xF0
	torCmdResolvePTR = 0xF1
)

// torSOCKS5Reply is a SOCKS5 reply.
type torSOCKS5Reply struct {
	Code byte
	ATYP byte
	Addr []byte // BND.ADDR as sent (for ATYP 3 without the length byte)
	Conn net.Conn
	Sent time.Time     // when the single write went out
	RTT  time.Duration // that write → reply read
}

// torSOCKS5 sends greeting (+ RFC 1929 auth when user != "") + request +
// early in one write and reads the reply. The connection stays open on
// success (Conn), and is closed on failure codes.
func torSOCKS5(t *testing.T, proxy, user, pass string, cmd byte, host string, port int, early []byte) torSOCKS5Reply {
	t.Helper()
	r, err := torSOCKS5Try(proxy, user, pass, cmd, host, port, early, 90*time.Second)
	if err != nil {
		t.Fatalf("socks5 %#x %s:%d via %s: %v", cmd, host, port, proxy, err)
	}
	if r.Conn != nil {
		t.Cleanup(func() { r.Conn.Close() })
	}
	return r
}

func torSOCKS5Try(proxy, user, pass string, cmd byte, host string, port int, early []byte, timeout time.Duration) (torSOCKS5Reply, error) {
	var res torSOCKS5Reply
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		return res, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	var msg []byte
	if user != "" {
		msg = append(msg, 5, 1, 2, 1, byte(len(user)))
		msg = append(append(msg, user...), byte(len(pass)))
		msg = append(msg, pass...)
	} else {
		msg = append(msg, 5, 1, 0)
	}
	msg = append(msg, 5, cmd, 0)
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() {
			a := ip.As4()
			msg = append(append(msg, 1), a[:]...)
		} else {
			a := ip.As16()
			msg = append(append(msg, 4), a[:]...)
		}
	} else {
		msg = append(append(msg, 3, byte(len(host))), host...)
	}
	msg = binary.BigEndian.AppendUint16(msg, uint16(port))
	msg = append(msg, early...)
	t0 := time.Now()
	res.Sent = t0
	if _, err := c.Write(msg); err != nil {
		c.Close()
		return res, err
	}
	head := 2
	if user != "" {
		head = 4
	}
	var b [4]byte
	hb := make([]byte, head)
	if _, err := io.ReadFull(c, hb); err != nil {
		c.Close()
		return res, fmt.Errorf("method/auth reply: %w", err)
	}
	if hb[0] != 5 || (user == "" && hb[1] != 0) || (user != "" && (hb[1] != 2 || hb[3] != 0)) {
		c.Close()
		return res, fmt.Errorf("method/auth reply % x", hb)
	}
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return res, fmt.Errorf("reply: %w", err)
	}
	res.Code, res.ATYP = b[1], b[3]
	var n int
	switch b[3] {
	case 0, 1:
		n = 4
	case 4:
		n = 16
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			c.Close()
			return res, err
		}
		n = int(l[0])
	default:
		c.Close()
		return res, fmt.Errorf("reply % x: bad ATYP", b)
	}
	addr := make([]byte, n+2)
	if _, err := io.ReadFull(c, addr); err != nil {
		c.Close()
		return res, err
	}
	res.RTT = time.Since(t0)
	res.Addr = addr[:n]
	if res.Code != 0 || cmd != torCmdConnect {
		c.Close()
		return res, nil
	}
	c.SetDeadline(time.Time{})
	res.Conn = c
	return res, nil
}

// torSOCKS4 sends a SOCKS4 (host an IPv4 literal) or SOCKS4a (a name)
// CONNECT with userid and returns the reply code (0x5A granted, 0x5B
// rejected) and, when granted, the open connection.
func torSOCKS4(t *testing.T, proxy, userid, host string, port int) (byte, net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(90 * time.Second))
	msg := []byte{4, 1}
	msg = binary.BigEndian.AppendUint16(msg, uint16(port))
	ip, err := netip.ParseAddr(host)
	if err == nil {
		a := ip.As4()
		msg = append(msg, a[:]...)
	} else {
		msg = append(msg, 0, 0, 0, 1) // SOCKS4a: 0.0.0.x, the name follows the userid
	}
	msg = append(append(msg, userid...), 0)
	if err != nil {
		msg = append(append(msg, host...), 0)
	}
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	var rep [8]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		c.Close()
		t.Fatalf("socks4 reply: %v", err)
	}
	if rep[0] != 0 {
		t.Fatalf("socks4 reply % x: VN must be 0", rep)
	}
	if rep[1] != 0x5A {
		c.Close()
		return rep[1], nil
	}
	c.SetDeadline(time.Time{})
	t.Cleanup(func() { c.Close() })
	return rep[1], c
}

// torHTTPConnect sends "CONNECT target HTTP/1.1" (with Proxy-Authorization
// Basic when user != "") and returns the status code, the response header
// and, on 200, the open connection with its reader.
func torHTTPConnect(t *testing.T, proxy, target, user, pass string) (int, textproto.MIMEHeader, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(90 * time.Second))
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if user != "" {
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)) + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		c.Close()
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	var code int
	if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &code); err != nil {
		t.Fatalf("CONNECT status line %q", line)
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil && err != io.EOF {
		t.Fatalf("CONNECT header: %v", err)
	}
	if code != 200 {
		c.Close()
		return code, hdr, nil, nil
	}
	c.SetDeadline(time.Time{})
	t.Cleanup(func() { c.Close() })
	return code, hdr, c, br
}

// torTunnelGet sends a GET / HTTP/1.0 for path over an open tunnel and returns
// the body.
func torTunnelGet(t *testing.T, c net.Conn, r io.Reader, host, path string) string {
	t.Helper()
	if r == nil {
		r = c
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host); err != nil {
		t.Fatal(err)
	}
	return torReadBody(t, r)
}

// torReadBody reads an HTTP/1.0 response to EOF and returns its body.
func torReadBody(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "HTTP/1.") {
		t.Fatalf("response %q", s)
	}
	_, body, ok := strings.Cut(s, "\r\n\r\n")
	if !ok {
		t.Fatalf("response without header end: %q", s)
	}
	return body
}
