package tornet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// SOCKSError is a SOCKS5 reply other than success (RFC 1928 §6, Tor's
// extended codes 0xF0-0xF7 in socks-extensions.txt).
type SOCKSError struct{ Code byte }

func (e *SOCKSError) Error() string { return fmt.Sprintf("tornet: socks5 reply 0x%02x", e.Code) }

// DialSOCKS5 opens a SOCKS5 CONNECT through proxy to host:port, with the
// name sent to the proxy (never resolved here). user/pass, when user is
// not empty, are sent with RFC 1929 auth — Tor uses them as isolation keys.
// It is a minimal client for the harness's readiness checks and for tests
// that want raw control over the handshake; it returns *SOCKSError for a
// non-zero reply.
func DialSOCKS5(ctx context.Context, proxy, host string, port int, user, pass string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxy)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := socks5Handshake(c, host, port, user, pass); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func socks5Handshake(c net.Conn, host string, port int, user, pass string) error {
	method := byte(0x00)
	if user != "" {
		method = 0x02
	}
	if _, err := c.Write([]byte{5, 1, method}); err != nil {
		return err
	}
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		return err
	}
	if sel[0] != 5 || sel[1] != method {
		return fmt.Errorf("tornet: socks5 method selection % x", sel)
	}
	if method == 0x02 {
		if len(user) > 255 || len(pass) > 255 {
			return errors.New("tornet: socks5 username/password too long")
		}
		msg := append([]byte{1, byte(len(user))}, user...)
		msg = append(append(msg, byte(len(pass))), pass...)
		if _, err := c.Write(msg); err != nil {
			return err
		}
		var st [2]byte
		if _, err := io.ReadFull(c, st[:]); err != nil {
			return err
		}
		if st[1] != 0 {
			return fmt.Errorf("tornet: socks5 auth status % x", st)
		}
	}
	req := []byte{5, 1, 0}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
		a := ip.As4()
		req = append(append(req, 1), a[:]...)
	} else if err == nil {
		a := ip.As16()
		req = append(append(req, 4), a[:]...)
	} else {
		if len(host) > 255 {
			return errors.New("tornet: socks5 hostname too long")
		}
		req = append(append(req, 3, byte(len(host))), host...)
	}
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := c.Write(req); err != nil {
		return err
	}
	var rep [4]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return err
	}
	if rep[0] != 5 {
		return fmt.Errorf("tornet: socks5 reply version 0x%02x", rep[0])
	}
	var skip int
	switch rep[3] {
	case 0, 1: // Tor's failed RESOLVE uses ATYP 0 with a 4-byte address
		skip = 4
	case 4:
		skip = 16
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return err
		}
		skip = int(l[0])
	default:
		return fmt.Errorf("tornet: socks5 reply ATYP 0x%02x", rep[3])
	}
	if _, err := io.ReadFull(c, make([]byte, skip+2)); err != nil {
		return err
	}
	if rep[1] != 0 {
		return &SOCKSError{Code: rep[1]}
	}
	return nil
}

// HTTPClient returns an http.Client whose connections go through the SOCKS5
// proxy at proxy (hostnames sent to the proxy, "socks5h"), with isolation
// credentials user/pass when user is not empty. Keep-alives are off so each
// request is a new stream.
func HTTPClient(proxy, user, pass string) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				host, ps, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				port, err := strconv.Atoi(ps)
				if err != nil {
					return nil, err
				}
				return DialSOCKS5(ctx, proxy, host, port, user, pass)
			},
			DisableKeepAlives: true,
		},
	}
}

// Get fetches url through the SOCKS5 proxy and returns the body of a 200.
func Get(ctx context.Context, proxy, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := HTTPClient(proxy, "", "").Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("tornet: GET %s: %s", url, resp.Status)
	}
	return string(body), nil
}
