package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"socksd/test/tornet"
)

// Isolation proofs: which streams share a circuit, as the control port of
// a private client tor (socksd its controller) reports it, and which exit
// the destination saw.

// isoRig is a private tor, the observer and a socksd controlling it.
type isoRig struct {
	n   *tornet.Network
	ct  *clientTor
	obs *torObserver
	s   *Socksd
}

func newIsoRig(t *testing.T, name, isolation string) *isoRig {
	t.Helper()
	n := needTornet(t)
	ct := startClientTor(t, name)
	obs := ct.observer(t)
	s := startSocksd(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt, Isolation: isolation}))
	torWaitController(t, obs, s)
	return &isoRig{n: n, ct: ct, obs: obs, s: s}
}

// isoHop is one finished stream: the circuit Tor says it used and the exit
// the destination saw.
type isoHop struct {
	circ, via string
}

// one runs do (a client making exactly one CONNECT through socksd that
// fetches /via) and returns the stream's circuit, after checking that
// socksd built it and that the destination saw that circuit's exit.
func (r *isoRig) one(t *testing.T, what string, do func() string) isoHop {
	t.Helper()
	mark := r.obs.mark()
	via := do()
	circ := r.obs.streamsSince(t, mark, 1)[0]
	c := r.obs.wantSocksdCircuit(t, circ)
	torWantCircuitExit(t, r.n, c, via)
	t.Logf("%-28s circuit %-4s exit %s", what, circ, via)
	return isoHop{circ, via}
}

// socks5Via fetches /via with SOCKS5 user/pass (none when user is "") and
// the GET sent as optimistic data.
func (r *isoRig) socks5Via(t *testing.T, user, pass string, port int) string {
	t.Helper()
	res := torSOCKS5(t, r.s.Addr, user, pass, torCmdConnect, "127.0.0.1", port, []byte("GET /via HTTP/1.0\r\nHost: x\r\n\r\n"))
	if res.Code != 0 {
		t.Fatalf("SOCKS5 user %q: reply %#x", user, res.Code)
	}
	return torReadBody(t, res.Conn)
}

func (r *isoRig) socks4Via(t *testing.T, userid string) string {
	t.Helper()
	code, c := torSOCKS4(t, r.s.Addr, userid, "127.0.0.1", r.n.HTTPPort)
	if code != 0x5A {
		t.Fatalf("SOCKS4 userid %q: reply %#x", userid, code)
	}
	return torTunnelGet(t, c, nil, "x", "/via")
}

func (r *isoRig) connectVia(t *testing.T, user, pass string) string {
	t.Helper()
	status, _, c, br := torHTTPConnect(t, r.s.Addr, r.n.HTTPAddr(), user, pass)
	if status != 200 {
		t.Fatalf("CONNECT with %q: %d", user, status)
	}
	return torTunnelGet(t, c, br, "x", "/via")
}

// TestIsolationUsernames: distinct SOCKS5 usernames never share a circuit
// and, across them, the destination sees different exits; one username
// keeps one circuit for all its streams.
func TestIsolationUsernames(t *testing.T) {
	t.Parallel()
	r := newIsoRig(t, "iso-users", "")
	const users, rounds = 8, 3
	circOf := map[string]string{} // user → circuit
	userOf := map[string]string{} // circuit → user
	exits := map[string]bool{}
	for round := range rounds {
		for u := range users {
			user := fmt.Sprintf("user%d", u)
			h := r.one(t, fmt.Sprintf("%s round %d", user, round), func() string { return r.socks5Via(t, user, "pw", r.n.HTTPPort) })
			exits[h.via] = true
			if prev, ok := circOf[user]; ok && prev != h.circ {
				t.Errorf("%s: stream on circuit %s, earlier ones on %s: one identity must keep its circuit", user, h.circ, prev)
			}
			circOf[user] = h.circ
			if other, ok := userOf[h.circ]; ok && other != user {
				t.Errorf("circuit %s carries %s and %s", h.circ, other, user)
			}
			userOf[h.circ] = user
		}
	}
	if len(userOf) != users {
		t.Errorf("%d usernames used %d circuits, want %d", users, len(userOf), users)
	}
	// Tor weights exits by bandwidth (one exit carried 6 of 8 identities
	// in a run), so more identities are added, each on a circuit of its
	// own, until the destination has seen two exits: at most 40 in all.
	extra := 0
	for u := users; len(exits) < 2 && u < 40; u++ {
		user := fmt.Sprintf("user%d", u)
		h := r.one(t, user, func() string { return r.socks5Via(t, user, "pw", r.n.HTTPPort) })
		if other, ok := userOf[h.circ]; ok {
			t.Errorf("circuit %s carries %s and %s", h.circ, other, user)
		}
		userOf[h.circ] = user
		exits[h.via] = true
		extra++
	}
	if len(exits) < 2 {
		t.Errorf("the destination saw only exit(s) %v for %d identities", exits, users+extra)
	}
	t.Logf("%d identities × %d streams (+%d more identities): %d circuits, exits seen by the destination: %v", users, rounds, extra, len(userOf), exits)
}

// TestIsolationAuthForms: each credential form isolates (A, B, A again:
// A's two streams share a circuit, B's is another one).
func TestIsolationAuthForms(t *testing.T) {
	t.Parallel()
	r := newIsoRig(t, "iso-forms", "")
	p := r.n.HTTPPort
	for _, tc := range []struct {
		name string
		a, b func() string
	}{
		{"socks4-userid",
			func() string { return r.socks4Via(t, "alice4") },
			func() string { return r.socks4Via(t, "bob4") }},
		{"socks5-password",
			func() string { return r.socks5Via(t, "carol", "pw1", p) },
			func() string { return r.socks5Via(t, "carol", "pw2", p) }},
		{"socks5-username",
			func() string { return r.socks5Via(t, "dave", "x", p) },
			func() string { return r.socks5Via(t, "erin", "x", p) }},
		{"http-proxy-authorization",
			func() string { return r.connectVia(t, "frank", "x") },
			func() string { return r.connectVia(t, "grace", "x") }},
		{"torS0X-format-0",
			func() string { return r.socks5Via(t, "<torS0X>0", "key-one", p) },
			func() string { return r.socks5Via(t, "<torS0X>0", "key-two", p) }},
		{"no-auth-vs-auth",
			func() string { return r.socks5Via(t, "", "", p) },
			func() string { return r.socks5Via(t, "heidi", "x", p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a1 := r.one(t, tc.name+" A", tc.a)
			b := r.one(t, tc.name+" B", tc.b)
			a2 := r.one(t, tc.name+" A again", tc.a)
			if a1.circ == b.circ {
				t.Errorf("A and B share circuit %s", a1.circ)
			}
			if a1.circ != a2.circ {
				t.Errorf("A's streams on %s and %s, want one circuit", a1.circ, a2.circ)
			}
		})
	}
}

// isoPortServer is a second HTTP destination on 127.0.0.1 (another
// port) answering /via with "port2".
func isoPortServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "port2")
	}), ReadHeaderTimeout: 30 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// TestIsolationDestPort: with dest_port = true one user's streams to two
// ports use two circuits (and each port's streams one); without it, one.
func TestIsolationDestPort(t *testing.T) {
	t.Parallel()
	n := needTornet(t)
	p2 := isoPortServer(t)
	ct := startClientTor(t, "iso-port")
	obs := ct.observer(t)
	// The destination of port 2 does not know exits; check the circuit only.
	run := func(t *testing.T, isolation string) (p1a, p1b, p2a, p2b string) {
		s := startSocksd(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt, Isolation: isolation}))
		defer s.Proc.Stop(10 * time.Second) // one controller per tor at a time
		torWaitController(t, obs, s)
		r := &isoRig{n: n, ct: ct, obs: obs, s: s}
		get := func(port int) string {
			mark := obs.mark()
			body := r.socks5Via(t, "alice", "pw", port)
			circ := obs.streamsSince(t, mark, 1)[0]
			obs.wantSocksdCircuit(t, circ)
			if port == p2 && body != "port2" {
				t.Fatalf("port %d: %q", port, body)
			}
			return circ
		}
		return get(n.HTTPPort), get(n.HTTPPort), get(p2), get(p2)
	}
	t.Run("dest_port=true", func(t *testing.T) {
		p1a, p1b, p2a, p2b := run(t, "dest_port = true")
		t.Logf("port %d: %s %s; port %d: %s %s", n.HTTPPort, p1a, p1b, p2, p2a, p2b)
		if p1a != p1b || p2a != p2b {
			t.Errorf("one port's streams on two circuits: %s/%s, %s/%s", p1a, p1b, p2a, p2b)
		}
		if p1a == p2a {
			t.Errorf("both ports on circuit %s with dest_port = true", p1a)
		}
	})
	t.Run("dest_port=false", func(t *testing.T) {
		p1a, p1b, p2a, p2b := run(t, "dest_port = false")
		t.Logf("port %d: %s %s; port %d: %s %s", n.HTTPPort, p1a, p1b, p2, p2a, p2b)
		if p1a != p1b || p1a != p2a || p2a != p2b {
			t.Errorf("without dest_port one identity used several circuits: %s %s %s %s", p1a, p1b, p2a, p2b)
		}
	})
}

// isoPythonClient is a SOCKS5 client written in Python: another executable
// than curl, with the same (empty) credentials.
const isoPythonClient = `
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 30)
s.sendall(b"\x05\x01\x00")
assert s.recv(2) == b"\x05\x00"
s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", int(sys.argv[2])))
rep = b""
while len(rep) < 10:
    rep += s.recv(10 - len(rep))
assert rep[1] == 0, rep
s.sendall(b"GET /via HTTP/1.0\r\nHost: x\r\n\r\n")
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
sys.stdout.write(data.split(b"\r\n\r\n", 1)[1].decode())
`

// TestIsolationClientApp: with client_app = true and no credentials,
// curl and python3 get different circuits; each program's streams share
// one.
func TestIsolationClientApp(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	r := newIsoRig(t, "iso-app", "client_app = true")
	script := filepath.Join(t.TempDir(), "socks5get.py")
	if err := os.WriteFile(script, []byte(isoPythonClient), 0o644); err != nil {
		t.Fatal(err)
	}
	curlGet := func() string {
		res := curl(t, "--socks5", r.s.Addr, r.n.HTTPURL("/via"))
		res.wantOK(t)
		return res.Stdout
	}
	pyGet := func() string {
		res := runCmd(t, 90*time.Second, nil, py, script, port(r.s.Addr), strconv.Itoa(r.n.HTTPPort))
		res.wantOK(t)
		return res.Stdout
	}
	c1 := r.one(t, "curl", curlGet)
	p1 := r.one(t, "python3", pyGet)
	c2 := r.one(t, "curl again", curlGet)
	p2 := r.one(t, "python3 again", pyGet)
	if c1.circ == p1.circ {
		t.Errorf("curl and python3 share circuit %s", c1.circ)
	}
	if c1.circ != c2.circ || p1.circ != p2.circ {
		t.Errorf("one program on several circuits: curl %s/%s, python3 %s/%s", c1.circ, c2.circ, p1.circ, p2.circ)
	}
}
