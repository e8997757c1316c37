// Command probe runs inside the systemd test box (test/systemd): it
// checks socksd's sandbox from within the service's own context, and
// holds SOCKS tunnels through socksd open across reloads and new
// identities. It is a test tool, not part of socksd.
//
//	probe sandbox                  print one line "SANDBOX {json}": user, capabilities,
//	                               which writes and sockets the kernel allowed
//	probe session SOCKS HOST:PORT  read commands on stdin, one per line:
//	                               "open NAME USER" opens a tunnel (USER as SOCKS5
//	                               username) and GETs /via; "get NAME" GETs /via
//	                               again on that tunnel; answers "ok NAME BODY" or
//	                               "err NAME MESSAGE"
//	probe notor ADDR               a SOCKS5 server that is not Tor: it accepts only
//	                               "no authentication", so it refuses socksd's
//	                               username/password greeting; serves until stdin ends
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/proxy"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe sandbox | probe session SOCKS HOST:PORT")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "sandbox":
		sandbox(os.Args[2:])
	case "notor":
		if len(os.Args) != 3 {
			os.Exit(2)
		}
		notTor(os.Args[2])
	case "session":
		if len(os.Args) != 4 {
			os.Exit(2)
		}
		session(os.Args[2], os.Args[3])
	default:
		os.Exit(2)
	}
}

// Sandbox is what the kernel let this process do.
type Sandbox struct {
	UID        int               `json:"uid"`
	GID        int               `json:"gid"`
	Groups     []int             `json:"groups"`
	CapEff     string            `json:"cap_eff"`
	NoNewPrivs string            `json:"no_new_privs"`
	Seccomp    string            `json:"seccomp"`
	Write      map[string]string `json:"write"`   // directory → "ok" or the error
	Connect    map[string]string `json:"connect"` // TCP address → "ok" or the error
	UDP        map[string]string `json:"udp"`     // UDP address → "ok" or the error
	Socket     map[string]string `json:"socket"`  // address family → "ok" or the error
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	for e := err; e != nil; {
		if en, ok := e.(syscall.Errno); ok {
			errno = en
			break
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	if errno != 0 {
		return errno.Error()
	}
	return err.Error()
}

// sandbox tries each directory given after "-w" for writing, each TCP
// address after "-c" for connecting, each UDP address after "-u" for
// sending. Writes it makes are removed again.
func sandbox(args []string) {
	s := Sandbox{UID: os.Getuid(), GID: os.Getgid(), Write: map[string]string{},
		Connect: map[string]string{}, UDP: map[string]string{}, Socket: map[string]string{}}
	s.Groups, _ = os.Getgroups()
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "CapEff":
				s.CapEff = v
			case "NoNewPrivs":
				s.NoNewPrivs = v
			case "Seccomp":
				s.Seccomp = v
			}
		}
	}
	mode := ""
	for _, a := range args {
		switch a {
		case "-w", "-c", "-u":
			mode = a
			continue
		}
		switch mode {
		case "-w":
			p := filepath.Join(a, fmt.Sprintf(".socksd-probe-%d", os.Getpid()))
			err := os.WriteFile(p, []byte("probe\n"), 0o600)
			if err == nil {
				os.Remove(p)
			}
			s.Write[a] = errText(err)
		case "-c":
			c, err := net.DialTimeout("tcp", a, 3*time.Second)
			if err == nil {
				c.Close()
			}
			s.Connect[a] = errText(err)
		case "-u":
			c, err := net.Dial("udp", a)
			if err == nil {
				_, err = c.Write([]byte("probe"))
				c.Close()
			}
			s.UDP[a] = errText(err)
		}
	}
	for name, fam := range map[string]int{"netlink": syscall.AF_NETLINK, "packet": syscall.AF_PACKET} {
		typ := syscall.SOCK_RAW
		fd, err := syscall.Socket(fam, typ, 0)
		if err == nil {
			syscall.Close(fd)
		}
		s.Socket[name] = errText(err)
	}
	b, _ := json.Marshal(s)
	fmt.Printf("SANDBOX %s\n", b)
}

type tunnel struct {
	c  net.Conn
	rd *bufio.Reader
}

func session(socks, target string) {
	tunnels := map[string]*tunnel{}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "quit":
			return
		case f[0] == "open" && len(f) == 3:
			d, err := proxy.SOCKS5("tcp", socks, &proxy.Auth{User: f[2], Password: "x"}, &net.Dialer{Timeout: 60 * time.Second})
			if err != nil {
				fmt.Printf("err %s %v\n", f[1], err)
				continue
			}
			c, err := d.Dial("tcp", target)
			if err != nil {
				fmt.Printf("err %s %v\n", f[1], err)
				continue
			}
			tunnels[f[1]] = &tunnel{c: c, rd: bufio.NewReader(c)}
			get(f[1], tunnels[f[1]], target)
		case f[0] == "get" && len(f) == 2:
			t, ok := tunnels[f[1]]
			if !ok {
				fmt.Printf("err %s no such tunnel\n", f[1])
				continue
			}
			get(f[1], t, target)
		default:
			fmt.Printf("err - unknown command %q\n", in.Text())
		}
	}
}

// get sends GET /via on the tunnel's kept-alive connection and prints the
// answer's body.
func get(name string, t *tunnel, host string) {
	t.c.SetDeadline(time.Now().Add(60 * time.Second))
	defer t.c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(t.c, "GET /via HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
		fmt.Printf("err %s %v\n", name, err)
		return
	}
	resp, err := http.ReadResponse(t.rd, nil)
	if err != nil {
		fmt.Printf("err %s %v\n", name, err)
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		fmt.Printf("err %s status %d %v\n", name, resp.StatusCode, err)
		return
	}
	fmt.Printf("ok %s %s\n", name, strings.TrimSpace(string(body)))
}

// notTor answers every SOCKS5 greeting that does not offer "no
// authentication" (0x00) with 05 FF, as RFC 1928 servers without
// username/password support do, and closes.
func notTor(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				var g [257]byte
				if _, err := io.ReadFull(c, g[:2]); err != nil || g[0] != 5 {
					return
				}
				if _, err := io.ReadFull(c, g[2:2+int(g[1])]); err != nil {
					return
				}
				c.Write([]byte{5, 0xff})
			}()
		}
	}()
	io.Copy(io.Discard, os.Stdin)
	ln.Close()
}
