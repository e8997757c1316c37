package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"socksd/internal/sockstest"
	"socksd/torctl/torctltest"
)

// fakeControl is a scripted Tor control port (NULL auth) whose SocksPort
// is socks and whose bootstrap starts at 50 %. MAPADDRESS is echoed as Tor
// does ("250 from=to").
func fakeControl(t *testing.T, socks string) *torctltest.Server {
	t.Helper()
	s := torctltest.New(t)
	s.Handle(`^PROTOCOLINFO`, func(string) string { return torctltest.ProtocolInfoReply("NULL", "") })
	s.Handle(`^AUTHENTICATE`, func(string) string { return "250 OK" })
	s.Handle(`^(SETEVENTS|SETCONF|RESETCONF|SIGNAL|ATTACHSTREAM|CLOSECIRCUIT|CLOSESTREAM)`, func(string) string { return "250 OK" })
	s.Handle(`^GETINFO net/listeners/socks$`, func(string) string {
		return `250-net/listeners/socks="` + socks + `"` + "\n250 OK"
	})
	s.Handle(`^GETINFO status/bootstrap-phase$`, func(string) string {
		return `250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY="Loading"` + "\n250 OK"
	})
	s.Handle(`^GETINFO (circuit-status|stream-status)$`, func(cmd string) string {
		return "250-" + strings.TrimPrefix(cmd, "GETINFO ") + "=\n250 OK"
	})
	s.Handle(`^MAPADDRESS `, func(cmd string) string { return "250 " + strings.TrimPrefix(cmd, "MAPADDRESS ") })
	return s
}

func countLines(s *torctltest.Server, line string) int {
	n := 0
	for _, l := range s.Received() {
		if l == line {
			n++
		}
	}
	return n
}

func receivedLine(s *torctltest.Server, prefix string) string {
	for _, l := range s.Received() {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestDaemonWithControlPort wires the whole daemon to a fake control port
// (attach_streams = false, so the fake need not script STREAM events): the
// SocksPort is discovered with GETINFO net/listeners/socks, READY=1 comes
// after authentication, STATUS= and /healthz follow Tor's bootstrap, the
// DNS bridge answers with a virtual address registered by MAPADDRESS, a
// SOCKS4 CONNECT to that address goes to Tor as the address itself, and
// POST /newnym sends SIGNAL NEWNYM.
func TestDaemonWithControlPort(t *testing.T) {
	var mu sync.Mutex
	var hosts []string
	up := &sockstest.Server{Handle: func(r *sockstest.Request, c net.Conn, _ *bufio.Reader) {
		mu.Lock()
		hosts = append(hosts, r.Host+r.IP.String())
		mu.Unlock()
		if sockstest.WriteReply(c, 0, nil) == nil {
			io.WriteString(c, "hello\n")
		}
	}}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	ctl := fakeControl(t, up.Addr())
	notify := newNotifySocket(t)

	dir := t.TempDir()
	socksAddr, metrics, dnsAddr := freePort(t), freePort(t), freePort(t)
	cfg := filepath.Join(dir, "socksd.toml")
	writeFile(t, cfg, `state_dir = "`+dir+`"
[socks]
listen = ["`+socksAddr+`"]
[tor]
control = "`+ctl.Addr()+`"
attach_streams = false
[log]
level = "debug"
format = "json"
[metrics]
listen = "`+metrics+`"
[dns]
listen = ["`+dnsAddr+`"]
`)
	cmd := exec.Command(os.Args[0], "-config", cfg)
	cmd.Env = []string{"NOTIFY_SOCKET=" + notify.path}
	d := startDaemonCmd(t, cmd)
	notify.waitFor(t, "READY=1", d)
	notify.waitFor(t, "STATUS=Tor bootstrapping: 50%", d)

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 503 || !strings.Contains(body, "bootstrapping (50%)") {
		t.Fatalf("/healthz at 50%%: %d %q", code, body)
	}
	ctl.Push(`650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`)
	notify.waitFor(t, "STATUS=Tor bootstrapped 100%; serving", d)
	if code, body := get("/healthz"); code != 200 {
		t.Fatalf("/healthz at 100%%: %d %q", code, body)
	}

	// DNS bridge: a virtual address, registered in Tor.
	m := new(dns.Msg)
	m.SetQuestion("example.test.", dns.TypeA)
	in, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, dnsAddr)
	if err != nil || len(in.Answer) != 1 {
		t.Fatalf("DNS A: %v %v", in, err)
	}
	va, _ := netip.AddrFromSlice(in.Answer[0].(*dns.A).A.To4())
	if !netip.MustParsePrefix("127.192.0.0/10").Contains(va) {
		t.Fatalf("answer %v is not a virtual address", va)
	}
	if l := receivedLine(ctl, "MAPADDRESS "); l != "MAPADDRESS "+va.String()+"=example.test" {
		t.Fatalf("MAPADDRESS sent: %q", l)
	}

	// SOCKS4 (IP only) to the virtual address passes reject_internal and
	// reaches Tor as the address: Tor's mapping turns it into the name.
	c, err := net.DialTimeout("tcp", socksAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	v4 := va.As4()
	c.Write(append([]byte{4, 1, 0, 80, v4[0], v4[1], v4[2], v4[3]}, 0))
	reply := make([]byte, 8)
	if _, err := io.ReadFull(c, reply); err != nil || reply[1] != 0x5A {
		t.Fatalf("SOCKS4 reply %x, %v\n%s", reply, err, d.Log())
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	mu.Lock()
	got := strings.Join(hosts, ",")
	mu.Unlock()
	if line != "hello\n" || got != va.String() {
		t.Fatalf("relay %q; upstream saw %q, want %q", line, got, va)
	}

	// RESOLVE_PTR of the virtual address answers the name from the table.
	c, err = net.DialTimeout("tcp", socksAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte{5, 1, 0})
	c.Write(append(append([]byte{5, 0xF1, 0, 1}, v4[:]...), 0, 0))
	ptr := make([]byte, 2+4+1+len("example.test")+2)
	if _, err := io.ReadFull(c, ptr); err != nil || ptr[3] != 0 || ptr[5] != 3 || !strings.Contains(string(ptr), "example.test") {
		t.Fatalf("RESOLVE_PTR reply %x, %v", ptr, err)
	}
	c.Close()

	// New identity: Tor's NEWNYM.
	resp, err := http.Post("http://"+metrics+"/newnym", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || receivedLine(ctl, "SIGNAL NEWNYM") == "" {
		t.Fatalf("POST /newnym: %d; control port got %q", resp.StatusCode, ctl.Received())
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, `id="mappings">1 of`) || !strings.Contains(body, "control port") {
		t.Fatalf("status page: %d\n%s", code, body)
	}

	// Tor restarts (the control connection drops): socksd reconnects and
	// pushes the mapping again, so the apps' cached address keeps working.
	ctl.DropConn()
	for i := 0; countLines(ctl, "MAPADDRESS "+va.String()+"=example.test") < 2; i++ {
		if i > 2000 {
			t.Fatalf("mapping not re-pushed after reconnect; control port got %q\n%s", ctl.Received(), d.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}

	d.Signal(syscall.SIGTERM)
	if code := d.Wait(t, exitWait); code != exitOK {
		t.Fatalf("exit %d\n%s", code, d.Log())
	}
	if strings.Contains(d.Log(), "example.test") {
		t.Errorf("safe_logging: the name is in the log:\n%s", d.Log())
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonInheritedDNSSockets: socksd-dns.socket passes a UDP and a TCP
// socket named "dns" for a dns.listen address; socksd serves the bridge on
// them (it could not bind them: the test still holds the address).
func TestDaemonInheritedDNSSockets(t *testing.T) {
	up := &sockstest.Server{}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	ctl := fakeControl(t, up.Addr())

	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Skipf("TCP port %d taken: %v", port, err)
	}
	defer ln.Close()
	pf, err := pc.File()
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	lf, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	dnsAddr := pc.LocalAddr().String()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "socksd.toml")
	writeFile(t, cfg, `state_dir = "`+dir+`"
[socks]
listen = ["`+freePort(t)+`"]
[tor]
control = "`+ctl.Addr()+`"
attach_streams = false
[log]
format = "json"
[metrics]
listen = ""
[dns]
listen = ["`+dnsAddr+`"]
`)
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, os.Args[0], "-config", cfg)
	cmd.Env = []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=dns:dns"}
	cmd.ExtraFiles = []*os.File{pf, lf}
	d := startDaemonCmd(t, cmd)
	d.WaitLog(t, 0, `"ready"`, logWait)

	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg)
		m.SetQuestion("example.test.", dns.TypeA)
		in, _, err := (&dns.Client{Net: network, Timeout: 5 * time.Second}).Exchange(m, dnsAddr)
		if err != nil || len(in.Answer) != 1 {
			t.Fatalf("DNS over %s on the inherited socket: %v %v\n%s", network, in, err, d.Log())
		}
	}
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(t, exitWait); code != exitOK {
		t.Fatalf("exit %d\n%s", code, d.Log())
	}
	if !strings.Contains(d.Log(), "dns bridge serving inherited socket") {
		t.Errorf("not served from the inherited sockets:\n%s", d.Log())
	}
}
