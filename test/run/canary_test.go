package run

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// canaryEnv tells a re-executed test binary to be the canary server on
// the address it holds.
const canaryEnv = "SOCKSD_RUN_CANARY"

// canaryBody is what the canary's HTTP listener answers.
const canaryBody = "canary"

// canary is a test host in a network namespace of the test's own, joined
// to this one by a veth pair: a TCP listener (HTTP on port 80) and a
// resolver (UDP port 53) on its address. Its interface counts every
// packet it receives. IPv6 is off on the pair and the neighbour entries
// are permanent, so nothing but test traffic ever reaches it: no ARP, no
// neighbour discovery.
type canary struct {
	ns, hostIf string
	Addr       string // the canary's address
	proc       *exec.Cmd
	start      int64        // rx packets when it was ready
	control    atomic.Int64 // packets received during control runs
}

func startCanary() (*canary, error) {
	removeStaleCanaries()
	pid := os.Getpid()
	c := &canary{ns: fmt.Sprintf("socksd-canary-%d", pid), hostIf: fmt.Sprintf("scv%d", pid%10000000)}
	sub := 1 + pid%250
	hostAddr := fmt.Sprintf("10.213.%d.1", sub)
	c.Addr = fmt.Sprintf("10.213.%d.2", sub)
	steps := [][]string{
		{"netns", "add", c.ns},
		{"link", "add", c.hostIf, "type", "veth", "peer", "name", "cv0", "netns", c.ns},
		{"addr", "add", hostAddr + "/30", "dev", c.hostIf},
		{"-n", c.ns, "addr", "add", c.Addr + "/30", "dev", "cv0"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			c.close()
			return nil, err
		}
	}
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+c.hostIf+"/disable_ipv6", []byte("1"), 0); err != nil {
		c.close()
		return nil, err
	}
	if err := exec.Command("ip", "netns", "exec", c.ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/cv0/disable_ipv6").Run(); err != nil {
		c.close()
		return nil, fmt.Errorf("disabling IPv6 in the canary: %w", err)
	}
	hostMAC, err1 := linkMAC("", c.hostIf)
	canMAC, err2 := linkMAC(c.ns, "cv0")
	if err1 != nil || err2 != nil {
		c.close()
		return nil, fmt.Errorf("MAC addresses: %v %v", err1, err2)
	}
	for _, s := range [][]string{
		{"neigh", "add", c.Addr, "lladdr", canMAC, "dev", c.hostIf, "nud", "permanent"},
		{"-n", c.ns, "neigh", "add", hostAddr, "lladdr", hostMAC, "dev", "cv0", "nud", "permanent"},
		{"link", "set", c.hostIf, "up"},
		{"-n", c.ns, "link", "set", "cv0", "up"},
	} {
		if err := ip(s...); err != nil {
			c.close()
			return nil, err
		}
	}
	self, err := os.Executable()
	if err != nil {
		c.close()
		return nil, err
	}
	c.proc = exec.Command("ip", "netns", "exec", c.ns, self)
	c.proc.Env = append(os.Environ(), canaryEnv+"="+c.Addr)
	c.proc.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.proc.Stderr = os.Stderr
	out, err := c.proc.StdoutPipe()
	if err != nil {
		c.close()
		return nil, err
	}
	if err := c.proc.Start(); err != nil {
		c.close()
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		c.close()
		return nil, fmt.Errorf("canary server: %q %v", line, err)
	}
	if c.start, err = c.rxPackets(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// removeStaleCanaries deletes the canary namespaces of test processes
// that were killed before they could (their PID is gone).
func removeStaleCanaries() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(l, " ")
		pid, ok := strings.CutPrefix(name, "socksd-canary-")
		if !ok {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); errors.Is(err, os.ErrNotExist) {
			ip("netns", "del", name)
		}
	}
}

func (c *canary) close() {
	if c.proc != nil && c.proc.Process != nil {
		c.proc.Process.Kill()
		c.proc.Wait()
	}
	ip("netns", "del", c.ns) // takes the veth pair with it
}

// rxPackets is the number of packets the canary's interface received.
func (c *canary) rxPackets() (int64, error) {
	out, err := exec.Command("ip", "-n", c.ns, "-s", "-j", "link", "show", "cv0").Output()
	if err != nil {
		return 0, fmt.Errorf("ip -s link: %w", err)
	}
	var links []struct {
		Stats64 struct {
			RX struct {
				Packets int64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ip -s -j link: %v %q", err, out)
	}
	return links[0].Stats64.RX.Packets, nil
}

// controlRun runs f, a run outside the jail that is meant to reach the
// canary, and books the packets it caused as expected. The window closes
// once the counter has stood still for half a second (the last ACKs of a
// closing connection), at most 10 s.
func (c *canary) controlRun(f func()) (int64, error) {
	before, err := c.rxPackets()
	if err != nil {
		return 0, err
	}
	f()
	after := before
	deadline := time.Now().Add(10 * time.Second)
	stable := time.Now()
	for time.Now().Before(deadline) && time.Since(stable) < 500*time.Millisecond {
		n, err := c.rxPackets()
		if err != nil {
			return 0, err
		}
		if n != after {
			after, stable = n, time.Now()
		}
		time.Sleep(50 * time.Millisecond) // polling a counter, not synchronising
	}
	c.control.Add(after - before)
	return after - before, nil
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func linkMAC(ns, dev string) (string, error) {
	args := []string{"-j", "link", "show", dev}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, err := exec.Command("ip", args...).Output()
	if err != nil {
		return "", err
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return "", fmt.Errorf("ip -j link show %s: %v", dev, err)
	}
	return links[0].Address, nil
}

// serveCanary is the canary server's main, inside its namespace: HTTP on
// addr:80 and DNS on addr:53 (any A question gets addr).
func serveCanary(addr string) int {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "80"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "canary:", err)
		return 1
	}
	pc, err := net.ListenPacket("udp", net.JoinHostPort(addr, "53"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "canary:", err)
		return 1
	}
	go (&dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
				A: net.ParseIP(addr).To4()}}
		}
		w.WriteMsg(m)
	})}).ActivateAndServe()
	fmt.Println("ready")
	for {
		conn, err := ln.Accept()
		if err != nil {
			return 1
		}
		go func() {
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(conn)
			for {
				l, err := r.ReadString('\n')
				if err != nil || l == "\r\n" {
					break
				}
			}
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(canaryBody), canaryBody)
		}()
	}
}
