package systest

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"socksd/internal/daemontest"
	"socksd/internal/testutil"
	"socksd/test/tornet"
)

// sandboxReport is the probe's SANDBOX line.
type sandboxReport struct {
	UID        int               `json:"uid"`
	GID        int               `json:"gid"`
	Groups     []int             `json:"groups"`
	CapEff     string            `json:"cap_eff"`
	NoNewPrivs string            `json:"no_new_privs"`
	Seccomp    string            `json:"seccomp"`
	Write      map[string]string `json:"write"`
	Connect    map[string]string `json:"connect"`
	UDP        map[string]string `json:"udp"`
	Socket     map[string]string `json:"socket"`
}

func parseSandbox(t *testing.T, out string) sandboxReport {
	t.Helper()
	var r sandboxReport
	i := strings.LastIndex(out, "SANDBOX {")
	if i < 0 {
		t.Fatalf("no SANDBOX line in:\n%s", daemontest.Tail(out, 3000))
	}
	line, _, _ := strings.Cut(out[i+len("SANDBOX "):], "\n")
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	return r
}

// The directories the service may write to (its state and runtime
// directories), and a sample of those it must not.
var (
	writable   = []string{"/var/lib/socksd", "/run/socksd"}
	readOnly   = []string{"/etc", "/etc/socksd", "/etc/tor", "/usr/local/bin", "/var/lib", "/var/lib/tor", "/var/log", "/run", "/run/tor", "/root", "/home", "/srv/systest", "/"}
	farTCP     = "192.0.2.1:9" // a local but non-loopback address of the box
	nearTCP    = "127.0.0.1:9352"
	probeFlags = append(append(append([]string{"-w"}, writable...), readOnly...),
		"-c", nearTCP, farTCP, "-u", "127.0.0.1:9", farTCP)
)

// sandbox runs the probe as an ExecStartPost= of socksd.service: the
// same user, groups, namespaces, seccomp filter, capability set and
// cgroup (with its IP firewall) as socksd itself. A control run of the
// same probe as root outside the service shows each refusal comes from
// the sandbox, not from the box.
func (e *env) sandbox(t *testing.T) {
	b := e.box
	control := parseSandbox(t, b.Must(t, "/srv/systest/probe", append([]string{"sandbox"}, probeFlags...)...))
	if control.Connect[farTCP] != "connection refused" || control.UDP[farTCP] != "ok" || control.Socket["netlink"] != "ok" {
		t.Fatalf("outside the service the box itself must allow what the sandbox forbids: %+v", control)
	}

	b.Sh(t, `mkdir -p /run/systemd/system/socksd.service.d
printf '[Service]\nExecStartPost=/srv/systest/probe sandbox `+strings.Join(probeFlags, " ")+`\n' >/run/systemd/system/socksd.service.d/probe.conf
systemctl daemon-reload
restart_socksd`)
	defer b.Sh(t, `rm -rf /run/systemd/system/socksd.service.d; systemctl daemon-reload; restart_socksd`)
	// journald takes the probe's stdout asynchronously.
	var journal string
	testutil.Poll(10*time.Second, 200*time.Millisecond, func() bool {
		journal = b.Journal("socksd")
		return strings.Contains(journal, "SANDBOX {")
	})
	r := parseSandbox(t, journal)
	t.Logf("inside socksd.service: %+v", r)

	// The dynamic user: the probe runs as socksd's own UID, a transient
	// one (systemd's DynamicUser range), never root.
	pid := b.Show("socksd", "MainPID")
	var uid int
	for _, l := range strings.Split(b.Must(t, "cat", "/proc/"+pid+"/status"), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			uid, _ = strconv.Atoi(f[1])
		}
	}
	if r.UID != uid || uid < 61184 || uid > 65519 {
		t.Errorf("probe UID %d, socksd UID %d: want the same DynamicUser UID (61184-65519)", r.UID, uid)
	}
	if name := strings.TrimSpace(b.Out("getent", "passwd", strconv.Itoa(uid))); !strings.HasPrefix(name, "socksd:") {
		t.Errorf("UID %d is %q, want the dynamic user socksd", uid, name)
	}
	tg := strings.Split(strings.TrimSpace(b.Must(t, "getent", "group", "debian-tor")), ":")
	torGID, _ := strconv.Atoi(tg[2])
	if !slices.Contains(r.Groups, torGID) {
		t.Errorf("groups %v lack debian-tor (%d)", r.Groups, torGID)
	}
	if strings.Trim(r.CapEff, "0") != "" || r.NoNewPrivs != "1" || r.Seccomp != "2" {
		t.Errorf("CapEff %s NoNewPrivs %s Seccomp %s: want no capabilities, no_new_privs, a seccomp filter", r.CapEff, r.NoNewPrivs, r.Seccomp)
	}

	for _, d := range writable {
		if r.Write[d] != "ok" {
			t.Errorf("cannot write its own %s: %s", d, r.Write[d])
		}
	}
	for _, d := range readOnly {
		if r.Write[d] == "ok" || r.Write[d] == "" {
			t.Errorf("wrote to %s (%q)", d, r.Write[d])
		}
	}
	if r.Connect[nearTCP] != "ok" || r.UDP["127.0.0.1:9"] != "ok" {
		t.Errorf("loopback refused: %v %v", r.Connect, r.UDP)
	}
	// IPAddressDeny=any: the cgroup's BPF filter drops every packet to a
	// non-loopback address. A UDP send fails with EPERM; a TCP SYN is
	// dropped, so connect times out where the control run outside the
	// service was refused at once by the box's own stack.
	if c := r.Connect[farTCP]; c == "ok" || c == "connection refused" {
		t.Errorf("TCP to %s got %q: the IP firewall did not drop it", farTCP, c)
	}
	if r.UDP[farTCP] != "operation not permitted" {
		t.Errorf("UDP to %s: %q, want EPERM from the IP firewall", farTCP, r.UDP[farTCP])
	}
	for _, fam := range []string{"netlink", "packet"} {
		if r.Socket[fam] != "address family not supported by protocol" {
			t.Errorf("%s socket: %q, want refused by RestrictAddressFamilies", fam, r.Socket[fam])
		}
	}
}

// socketActivation: with socksd.service stopped, systemd holds the SOCKS
// and DNS sockets; the first DNS query, and later the first SOCKS
// connection, start socksd on the inherited sockets.
func (e *env) socketActivation(t *testing.T) {
	b := e.box
	b.Must(t, "systemctl", "stop", "socksd")
	b.Sh(t, `cp /etc/socksd/socksd.toml /etc/socksd/socksd.toml.systest
sed -i 's/^listen = \[\]$/listen = ["127.0.0.1:53"]/' /etc/socksd/socksd.toml
grep -q '^listen = \["127.0.0.1:53"\]$' /etc/socksd/socksd.toml`)
	defer b.Sh(t, `systemctl stop socksd.socket socksd-dns.socket socksd
mv /etc/socksd/socksd.toml.systest /etc/socksd/socksd.toml
restart_socksd`)
	b.Must(t, "systemctl", "start", "socksd.socket", "socksd-dns.socket")
	if st := b.Show("socksd", "ActiveState"); st != "inactive" {
		t.Fatalf("socksd %s before any client", st)
	}

	// The first query starts socksd; its answer may be SERVFAIL while
	// socksd's control connection to tor is still being set up, so ask
	// until the bridge answers.
	first := b.Out("dig", "+time=30", "+tries=1", "@127.0.0.1", tornet.HostName, "A")
	if st := b.Show("socksd", "ActiveState"); st != "active" {
		t.Fatalf("socksd %s after the first DNS query:\n%s", st, first)
	}
	var out string
	if !testutil.Poll(30*time.Second, 200*time.Millisecond, func() bool {
		out = strings.TrimSpace(b.Out("dig", "+short", "+time=5", "+tries=1", "@127.0.0.1", tornet.HostName, "A"))
		_, err := netip.ParseAddr(out)
		return err == nil
	}) {
		t.Fatalf("DNS bridge on the activated socket: %q; first answer:\n%s\n%s", out, first, daemontest.Tail(b.Journal("socksd"), 3000))
	}
	if !strings.Contains(first, "status: NOERROR") {
		t.Logf("first answer (socksd starting): %s", first)
	}

	b.Must(t, "systemctl", "stop", "socksd.service")
	if st := b.Show("socksd.socket", "ActiveState"); st != "active" {
		t.Fatalf("socksd.socket %s after stopping the service", st)
	}
	if body := e.curl(t, "127.0.0.1:9350", "/", 90*time.Second); body != tornet.HelloBody {
		t.Fatalf("body %q", body)
	}
	if st := b.Show("socksd", "ActiveState"); st != "active" {
		t.Fatalf("socksd %s after the first SOCKS connection", st)
	}
	if !strings.Contains(b.Show("socksd", "TriggeredBy"), "socksd.socket") {
		t.Errorf("TriggeredBy %q", b.Show("socksd", "TriggeredBy"))
	}
}

// socksdFiles lists every path in the box whose name mentions socksd,
// outside the test's own shared directory.
func socksdFiles(b *Box) []string {
	out := b.Out("sh", "-c", `find /etc /usr /var /run /opt /lib -xdev -name '*socksd*' 2>/dev/null | sort`)
	var l []string
	for _, p := range strings.Split(strings.TrimSpace(out), "\n") {
		if p != "" {
			l = append(l, p)
		}
	}
	return l
}

// uninstall: --uninstall keeps only the config; --purge removes that and
// the state too, leaving exactly the socksd-named paths there were before
// install.sh ran.
func (e *env) uninstall(t *testing.T) {
	b := e.box
	out := b.Must(t, "sh", "/srv/systest/repo/deploy/install.sh", "--uninstall")
	t.Logf("--uninstall:\n%s", out)
	if st := b.Show("socksd", "ActiveState"); st != "inactive" {
		t.Errorf("socksd %s after --uninstall", st)
	}
	if l := strings.TrimSpace(b.Out("systemctl", "list-unit-files", "--no-legend", "socksd*")); l != "" {
		t.Errorf("unit files left: %s", l)
	}
	if p := strings.TrimSpace(b.Out("pgrep", "-x", "socksd")); p != "" {
		t.Errorf("socksd still running: %s", p)
	}
	// tor closes socksd's SocksPort (and removes its socket) once the
	// reload install.sh sent has been handled.
	testutil.Poll(10*time.Second, 200*time.Millisecond, func() bool { return !slices.Contains(socksdFiles(b), "/run/tor/socksd.socks") })
	left := socksdFiles(b)
	for _, p := range left {
		if p != "/etc/socksd" && p != "/etc/socksd/socksd.toml" && p != "/var/lib/private/socksd" && !strings.HasPrefix(p, "/var/lib/private/socksd/") && p != "/var/lib/socksd" {
			t.Errorf("--uninstall left %s", p)
		}
	}
	if !slices.Contains(left, "/etc/socksd/socksd.toml") {
		t.Errorf("--uninstall removed the config: %v", left)
	}
	b.Must(t, "sh", "/srv/systest/repo/deploy/install.sh", "--purge")
	if after := socksdFiles(b); !slices.Equal(after, e.before) {
		t.Errorf("after --purge: %v\nbefore install: %v", after, e.before)
	}
}

// notTor points socksd at a SOCKS5 server that is not Tor (it refuses the
// username/password socksd sends isolation keys in): every request fails
// with 0x01, and the journal says why at warning level, once for several
// failures, without the destination or the username.
func (e *env) notTor(t *testing.T) {
	b := e.box
	const addr = "127.0.0.1:9399"
	cmd := b.Command(t.Context(), "/srv/systest/probe", "notor", addr)
	stdin, stdout := startPiped(t, cmd)
	defer func() { stdin.Close(); cmd.Wait() }()
	if l, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || l != "listening\n" {
		t.Fatalf("probe notor: %q %v", l, err)
	}

	b.Sh(t, `cp /etc/socksd/socksd.toml /etc/socksd/socksd.toml.systest
sed -i 's|^socks = "unix:/run/tor/socksd.socks"|socks = "`+addr+`"|' /etc/socksd/socksd.toml
grep -q '^socks = "`+addr+`"' /etc/socksd/socksd.toml
restart_socksd`)
	defer b.Sh(t, `mv /etc/socksd/socksd.toml.systest /etc/socksd/socksd.toml; restart_socksd`)
	const msg = "not a Tor SocksPort"
	before := strings.Count(b.Journal("socksd"), msg)
	for range 3 {
		if out, err := b.Run("curl", "-sS", "--max-time", "20", "-x", "socks5h://alice:secret@127.0.0.1:9350", "http://"+e.target+"/"); err == nil {
			t.Fatalf("curl through a non-Tor upstream succeeded: %s", out)
		}
	}
	var lines []string
	testutil.Poll(10*time.Second, 200*time.Millisecond, func() bool {
		lines = nil
		for _, l := range strings.Split(b.Journal("socksd"), "\n") {
			if strings.Contains(l, msg) {
				lines = append(lines, l)
			}
		}
		return len(lines) > before
	})
	if len(lines)-before != 1 {
		t.Fatalf("%d warnings for 3 failures, want 1 (rate-limited):\n%s", len(lines)-before, strings.Join(lines, "\n"))
	}
	l := lines[len(lines)-1]
	var entry map[string]any
	if err := json.Unmarshal([]byte(l), &entry); err != nil {
		t.Fatalf("not a JSON log line: %s", l)
	}
	if entry["level"] != "warn" || entry["socks"] != addr {
		t.Errorf("warning %s: want level warn naming the configured SocksPort", l)
	}
	for _, secret := range []string{tornet.HostName, "alice", "secret"} {
		if strings.Contains(l, secret) {
			t.Errorf("warning carries %q: %s", secret, l)
		}
	}
	t.Logf("journal: %s", l)
}
