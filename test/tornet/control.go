package tornet

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Control is a minimal Tor control-port client for the harness and tests
// (control-spec.txt §2-§3): cookie authentication, synchronous commands,
// asynchronous 650 events skipped. socksd's own client is torctl/; this one
// exists so the harness has no dependency on the code under test.
type Control struct {
	conn net.Conn
	r    *bufio.Reader
}

// DialControl connects to addr and authenticates with the cookie at
// cookiePath (control-spec §3.5 AUTHENTICATE with the hex cookie).
func DialControl(ctx context.Context, addr, cookiePath string) (*Control, error) {
	cookie, err := os.ReadFile(cookiePath)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &Control{conn: conn, r: bufio.NewReader(conn)}
	if _, err := c.Do(ctx, "AUTHENTICATE "+hex.EncodeToString(cookie)); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// Close sends QUIT and closes the connection.
func (c *Control) Close() error {
	c.conn.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.conn, "QUIT\r\n")
	return c.conn.Close()
}

// Do sends one command line and returns the reply lines (status code and
// separator stripped, data blocks of "+" replies joined with "\n"). A reply
// whose status is not 2xx is an error holding the reply text.
func (c *Control) Do(ctx context.Context, cmd string) ([]string, error) {
	dl := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.conn.SetDeadline(dl)
	defer c.conn.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(c.conn, "%s\r\n", cmd); err != nil {
		return nil, err
	}
	var lines []string
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, err
		}
		if len(line) < 4 {
			return nil, fmt.Errorf("tornet: control: short line %q", line)
		}
		code, sep, text := line[:3], line[3], line[4:]
		if code == "650" { // async event (control-spec §4.1): not ours
			if sep == '+' {
				if _, err := c.readData(); err != nil {
					return nil, err
				}
			}
			continue
		}
		if sep == '+' {
			data, err := c.readData()
			if err != nil {
				return nil, err
			}
			text += "\n" + data
		}
		lines = append(lines, text)
		if sep == ' ' {
			if code[0] != '2' {
				return lines, fmt.Errorf("tornet: control %q: %s %s", firstWord(cmd), code, strings.Join(lines, "; "))
			}
			return lines, nil
		}
	}
}

// GetInfo returns the value of one GETINFO key (control-spec §3.9).
func (c *Control) GetInfo(ctx context.Context, key string) (string, error) {
	lines, err := c.Do(ctx, "GETINFO "+key)
	if err != nil {
		return "", err
	}
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("tornet: GETINFO %s: no value in %q", key, lines)
}

func (c *Control) readLine() (string, error) {
	l, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(l, "\r\n"), nil
}

// readData reads a dot-terminated data block (control-spec §2.4).
func (c *Control) readData() (string, error) {
	var b []string
	for {
		l, err := c.readLine()
		if err != nil {
			return "", err
		}
		if l == "." {
			return strings.Join(b, "\n"), nil
		}
		b = append(b, strings.TrimPrefix(l, "."))
	}
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

// PinToExit maps host to target through exit e for every later stream of
// the client tor (control-spec §3.8 MAPADDRESS to "target.$FP.exit";
// address-spec §2: .exit names are honoured when they come from the
// controller, not from SOCKS). A SOCKS request for host:port then leaves
// the network at e and connects to target:port. Tests use it to send
// streams through chosen exits: PinToExit(ctx, "pin0.tornet.test", "127.0.0.1", n.Exits[0]).
func (n *Network) PinToExit(ctx context.Context, host, target string, e Exit) error {
	c, err := n.Control(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Do(ctx, fmt.Sprintf("MAPADDRESS %s=%s.%s.exit", host, target, e.Fingerprint))
	return err
}
