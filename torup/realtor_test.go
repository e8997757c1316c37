package torup

// Real-Tor tests. They run only when a Tor client is given through the
// environment, e.g. from a private network (go run ./cmd/tornet up DIR):
//
//	set -a; . DIR/env; set +a
//	SOCKSD_TOR_CONTROL=127.0.0.1:$CONTROL_PORT SOCKSD_TOR_COOKIE=$COOKIE_PATH \
//	SOCKSD_TOR_HTTP_PORT=$HTTP_PORT SOCKSD_TOR_ONION=$ONION_HOST \
//	  go test -race -run Real ./torup/
//
// SOCKSD_TOR_SOCKS optionally names the SocksPort (default: discovered,
// preferring the ExtendedErrors one). SOCKSD_TOR_MANAGED=1 also runs the
// managed-tor test, which launches its own tor with the client's torrc
// (SOCKSD_TOR_TORRC, default the torrc next to the cookie) as torrc_extra.

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha3"
	"encoding/base32"
	"errors"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"socksd/chain"
	"socksd/dispatch"
	"socksd/internal/testutil"
	"socksd/isolation"
	"socksd/socks5"
	"socksd/torctl"
)

type realEnv = testutil.RealTor

func realTor(t *testing.T) realEnv {
	t.Helper()
	return testutil.NeedRealTor(t, testutil.EnvControl, testutil.EnvHTTPPort)
}

func startReal(t *testing.T, e realEnv, mod func(*Config)) *Tor {
	t.Helper()
	cfg := Config{
		Control: e.Control, CookieFile: e.Cookie, SOCKS: e.SOCKS, Launch: "never",
		AttachStreams: true, CircuitLifetime: 10 * time.Minute, SOCKSTimeout: 60 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	tor, err := New(cfg, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tor.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tor.Close() })
	if tor.ctl != nil {
		select {
		case <-tor.ctl.Ready():
		case <-ctx.Done():
			t.Fatal("control connection not ready")
		}
	}
	return tor
}

func keyOf(user string) isolation.Key {
	return isolation.Policy{Fields: isolation.SOCKSAuth}.Key(isolation.Input{Username: []byte(user)})
}

func connectReq(host string, port uint16, user string) *dispatch.Request {
	r := &dispatch.Request{Protocol: dispatch.ProtoSOCKS5, Command: dispatch.CmdConnect, Port: port, Key: keyOf(user)}
	if ip, err := netip.ParseAddr(host); err == nil {
		r.IP = ip
	} else {
		r.Host = host
	}
	return r
}

// fetch sends an HTTP/1.0 GET as optimistic data and returns the body.
func fetch(ctx context.Context, tor *Tor, req *dispatch.Request) (string, error) {
	s, err := tor.Upstream().Open(ctx, req, []byte("GET / HTTP/1.0\r\nHost: x\r\n\r\n"))
	if err != nil {
		return "", err
	}
	defer s.Close()
	if err := s.Await(ctx); err != nil {
		return "", err
	}
	b, err := io.ReadAll(s)
	return string(b), err
}

// observer is an independent control connection to check what Tor says.
func observer(t *testing.T, e realEnv) *torctl.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := torctl.Dial(ctx, e.Control)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(ctx, torctl.AuthOptions{CookieFile: e.Cookie}); err != nil {
		t.Fatal(err)
	}
	return c
}

// circuitLine returns Tor's circuit-status line for id.
func circuitLine(t *testing.T, c *torctl.Conn, id string) string {
	t.Helper()
	m, err := c.GetInfo(context.Background(), "circuit-status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(m["circuit-status"]) {
		if f := strings.Fields(line); len(f) > 1 && f[0] == id {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// streamLog records, per stream, the circuit Tor
// reported it SUCCEEDED on, through the controller's event hook.
type streamLog struct {
	mu        sync.Mutex
	succeeded map[string]string // stream ID → circuit ID
}

func (l *streamLog) hook(ev torctl.Event) {
	if ev.Type != "STREAM" {
		return
	}
	se, err := torctl.ParseStreamEvent(ev)
	if err != nil || se.Status != "SUCCEEDED" {
		return
	}
	l.mu.Lock()
	l.succeeded[se.ID] = se.CircID
	l.mu.Unlock()
}

func (l *streamLog) circuits() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]bool{}
	for _, c := range l.succeeded {
		out[c] = true
	}
	return out
}

func TestRealAttachPerKey(t *testing.T) {
	e := realTor(t)
	tor := startReal(t, e, nil)
	obs := observer(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, user := range []string{"alice", "alice", "bob"} {
		body, err := fetch(ctx, tor, connectReq("127.0.0.1", e.HTTPPort, user))
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		if !strings.Contains(body, "hello from tornet") {
			t.Fatalf("%s: body %q", user, body)
		}
	}
	ca, cb := tor.CircuitFor(keyOf("alice")), tor.CircuitFor(keyOf("bob"))
	if ca == "" || cb == "" || ca == cb {
		t.Fatalf("circuits alice=%q bob=%q: want two distinct", ca, cb)
	}
	if n := len(tor.CircuitsOf(keyOf("alice"))); n != 1 {
		t.Errorf("alice used %d circuits for two streams, want 1", n)
	}
	for _, id := range []string{ca, cb} {
		line := circuitLine(t, obs, id)
		if !strings.Contains(line, " BUILT ") || !strings.Contains(line, "PURPOSE=CONTROLLER") {
			t.Errorf("Tor's circuit %s: %q, want BUILT PURPOSE=CONTROLLER", id, line)
		}
	}
	t.Logf("alice on %s, bob on %s", ca, cb)
}

// Every stream socksd opens succeeds on a circuit socksd built.
func TestRealStreamsOnOurCircuits(t *testing.T) {
	e := realTor(t)
	log := &streamLog{succeeded: map[string]string{}}
	tor := startRealHooked(t, e, log.hook)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	users := []string{"u1", "u2", "u1", "u3", "u2"}
	for _, u := range users {
		if _, err := fetch(ctx, tor, connectReq("127.0.0.1", e.HTTPPort, u)); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
	ours := map[string]bool{}
	for _, u := range []string{"u1", "u2", "u3"} {
		for _, c := range tor.CircuitsOf(keyOf(u)) {
			ours[c] = true
		}
	}
	used := log.circuits()
	if len(used) != 3 {
		t.Errorf("streams of 3 keys succeeded on %d circuits (%v), want 3", len(used), used)
	}
	for c := range used {
		if !ours[c] {
			t.Errorf("a stream succeeded on circuit %s, which socksd did not build (%v)", c, ours)
		}
	}
}

func startRealHooked(t *testing.T, e realEnv, hook func(torctl.Event)) *Tor {
	t.Helper()
	cfg := Config{
		Control: e.Control, CookieFile: e.Cookie, SOCKS: e.SOCKS, Launch: "never",
		AttachStreams: true, CircuitLifetime: 10 * time.Minute, SOCKSTimeout: 60 * time.Second,
	}
	tor, err := New(cfg, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	tor.OnEvent(hook)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tor.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tor.Close() })
	<-tor.ctl.Ready()
	return tor
}

func TestRealResolve(t *testing.T) {
	e := realTor(t)
	tor := startReal(t, e, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req := &dispatch.Request{Protocol: dispatch.ProtoSOCKS5, Command: dispatch.CmdResolve, Host: "example.test", Key: keyOf("r")}
	ip, err := tor.Resolver().Resolve(ctx, req)
	if err != nil || ip != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("RESOLVE example.test: %v, %v; want 127.0.0.1", ip, err)
	}
	if tor.CircuitFor(keyOf("r")) == "" {
		t.Error("the NEWRESOLVE stream got no socksd circuit")
	}
	req = &dispatch.Request{Protocol: dispatch.ProtoSOCKS5, Command: dispatch.CmdResolvePTR, IP: netip.MustParseAddr("198.51.100.7"), Key: keyOf("r")}
	name, err := tor.Resolver().ResolvePTR(ctx, req)
	if err != nil || name != "rev.example.test" {
		t.Errorf("RESOLVE_PTR 198.51.100.7: %q, %v; want rev.example.test", name, err)
	}
	req = &dispatch.Request{Protocol: dispatch.ProtoSOCKS5, Command: dispatch.CmdResolve, Host: "nx.invalid", Key: keyOf("r")}
	_, err = tor.Resolver().Resolve(ctx, req)
	if code := replyCode(err); code != socks5.ReplyHostUnreachable {
		t.Errorf("RESOLVE nx.invalid: %v (code %#x), want 0x04", err, code)
	}
}

func replyCode(err error) socks5.Reply {
	var re *socks5.ReplyError
	if errors.As(err, &re) {
		return re.Code
	}
	if err == nil {
		return socks5.ReplySucceeded
	}
	return 0xFF
}

func TestRealOnion(t *testing.T) {
	e := realTor(t)
	if e.Onion == "" {
		t.Skip("SOCKSD_TOR_ONION not set")
	}
	tor := startReal(t, e, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	body, err := fetch(ctx, tor, connectReq(e.Onion, 80, "onion-user"))
	if err != nil || !strings.Contains(body, "hello from tornet") {
		t.Fatalf("onion: %q, %v", body, err)
	}
	// A well-formed v3 address with no descriptor: F0 on an ExtendedErrors
	// port (tornet README), 0x04 otherwise.
	absent := onionAddr(t, false)
	_, err = fetch(ctx, tor, connectReq(absent, 80, "onion-user"))
	if code := replyCode(err); code != socks5.ReplyOnionDescNotFound && code != socks5.ReplyHostUnreachable {
		t.Errorf("absent onion: %v (code %#x), want F0 (or 0x04 without ExtendedErrors)", err, code)
	} else {
		t.Logf("absent onion: %#x", code)
	}
	// Bad checksum: F6 at once.
	bad := onionAddr(t, true)
	_, err = fetch(ctx, tor, connectReq(bad, 80, "onion-user"))
	if code := replyCode(err); code != socks5.ReplyOnionBadAddress && code != socks5.ReplyGeneralFailure {
		t.Errorf("bad onion: %v (code %#x), want F6 (or 0x01 without ExtendedErrors)", err, code)
	} else {
		t.Logf("bad onion: %#x", code)
	}
}

// Failures keep Tor's (or the control port's) reason.
func TestRealFailureCodes(t *testing.T) {
	e := realTor(t)
	tor := startReal(t, e, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, err := fetch(ctx, tor, connectReq("nx.invalid", 80, "f"))
	if code := replyCode(err); code != socks5.ReplyHostUnreachable {
		t.Errorf("nx.invalid: %v (code %#x), want 0x04", err, code)
	}
}

// With the control connection gone, Open fails within a second with 0x01.
func TestRealFailClosedWhenControlDrops(t *testing.T) {
	e := realTor(t)
	tor := startReal(t, e, nil)
	conn := tor.ctl.Conn()
	conn.Close() // as if Tor's control port went away
	deadline := time.Now().Add(time.Second)
	for tor.ctl.Connected() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling a real condition, bounded
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := tor.Upstream().Open(ctx, connectReq("127.0.0.1", e.HTTPPort, "x"), nil)
	if d := time.Since(start); replyCode(err) != socks5.ReplyGeneralFailure || d > time.Second {
		// It may already have reconnected: then the stream is served.
		if err != nil {
			t.Errorf("Open while down: %v after %v, want 0x01 within 1s", err, d)
		}
	}
	// And it comes back by itself.
	select {
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect")
	case <-waitConnected(tor):
	}
	if _, err := fetch(ctx, tor, connectReq("127.0.0.1", e.HTTPPort, "x")); err != nil {
		t.Errorf("after reconnect: %v", err)
	}
}

func waitConnected(tor *Tor) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for i := 0; i < 10000 && !tor.ctl.Connected(); i++ {
			time.Sleep(time.Millisecond)
		}
	}()
	return ch
}

// Managed mode: socksd launches tor with the private network's torrc as
// torrc_extra, serves through it, restarts it when killed, stops it on
// Close.
func TestRealManaged(t *testing.T) {
	e := realTor(t)
	if os.Getenv("SOCKSD_TOR_MANAGED") == "" {
		t.Skip("SOCKSD_TOR_MANAGED not set")
	}
	torrc := os.Getenv("SOCKSD_TOR_TORRC")
	if torrc == "" {
		torrc = filepath.Join(filepath.Dir(e.Cookie), "torrc")
	}
	extra := networkLines(t, torrc)
	dir := t.TempDir()
	tor, err := New(Config{
		Launch: "always", TorBinary: "tor", StateDir: dir, TorrcExtra: extra,
		AttachStreams: true, CircuitLifetime: 10 * time.Minute, SOCKSTimeout: 60 * time.Second,
	}, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := tor.Start(ctx); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			tor.Close()
		}
	})
	<-tor.ctl.Ready()
	waitBootstrap(t, tor, ctx)
	if body, err := fetch(ctx, tor, connectReq("127.0.0.1", e.HTTPPort, "m")); err != nil || !strings.Contains(body, "hello") {
		t.Fatalf("through the managed tor: %q, %v", body, err)
	}

	pid := tor.Managed().PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for tor.ctl.Connected() && time.Since(start) < 5*time.Second {
		time.Sleep(time.Millisecond)
	}
	_, err = tor.Upstream().Open(ctx, connectReq("127.0.0.1", e.HTTPPort, "m"), nil)
	if replyCode(err) != socks5.ReplyGeneralFailure || time.Since(start) > time.Second {
		t.Errorf("Open while the managed tor is dead: %v after %v, want 0x01 within 1s", err, time.Since(start))
	}
	for (!tor.ctl.Connected() || tor.Managed().Restarts() == 0) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	waitBootstrap(t, tor, ctx)
	if body, err := fetch(ctx, tor, connectReq("127.0.0.1", e.HTTPPort, "m")); err != nil || !strings.Contains(body, "hello") {
		t.Fatalf("after restart: %q, %v", body, err)
	}
	pid = tor.Managed().PID()
	tor.Close()
	closed = true
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("managed tor %d still running after Close", pid)
	}
}

func waitBootstrap(t *testing.T, tor *Tor, ctx context.Context) {
	t.Helper()
	for tor.ctl.State().Bootstrap < 100 {
		if ctx.Err() != nil {
			t.Fatalf("bootstrap stuck at %d%%", tor.ctl.State().Bootstrap)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// networkLines keeps the lines of a tornet client torrc that describe the
// network (authorities, testing knobs), not the client's own ports/dirs.
func networkLines(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("no client torrc: %v", err)
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		word, _, _ := strings.Cut(line, " ")
		switch word {
		case "", "DataDirectory", "PidFile", "RunAsDaemon", "Nickname", "Log", "SocksPort",
			"ControlPort", "CookieAuthentication", "ControlPortWriteToFile":
			continue
		}
		if strings.HasPrefix(word, "#") {
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// onionAddr makes a v3 onion address for a fresh ed25519 key
// (rend-spec-v3 §6: base32(PUBKEY | CHECKSUM | VERSION), CHECKSUM =
// SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2]); badSum breaks the
// checksum.
func onionAddr(t *testing.T, badSum bool) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub)
	h.Write([]byte{3})
	sum := h.Sum(nil)
	if badSum {
		sum[0] ^= 0xFF
	}
	raw := append(append(append([]byte{}, pub...), sum[:2]...), 3)
	return strings.ToLower(base32.StdEncoding.EncodeToString(raw)) + ".onion"
}

// NEWNYM: no stream after it reuses a circuit that carried one before.
func TestRealNewIdentity(t *testing.T) {
	e := realTor(t)
	tor := startReal(t, e, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := fetch(ctx, tor, connectReq("127.0.0.1", e.HTTPPort, "n")); err != nil {
		t.Fatal(err)
	}
	before := tor.CircuitFor(keyOf("n"))
	if err := tor.NewIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tor.CircuitFor(keyOf("n")); got != "" {
		t.Errorf("after NEWNYM the key still has circuit %q", got)
	}
	if _, err := fetch(ctx, tor, connectReq("127.0.0.1", e.HTTPPort, "n")); err != nil {
		t.Fatal(err)
	}
	if after := tor.CircuitFor(keyOf("n")); after == "" || after == before {
		t.Errorf("circuit before NEWNYM %q, after %q: want a new one", before, after)
	}
}

// A crashed predecessor (kill -9) leaves __LeaveStreamsUnattached set and
// streams waiting for a controller: the next socksd hands them back, and
// they complete.
func TestRealPredecessorStreamsPickedUp(t *testing.T) {
	e := realTor(t)
	obs := observer(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := obs.SetConf(ctx, torctl.KV{Key: "__LeaveStreamsUnattached", Value: "1"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { obs.ResetConf(context.Background(), "__LeaveStreamsUnattached") })
	socksAddr := e.SOCKS
	if socksAddr == "" {
		var err error
		if socksAddr, err = discoverSocks(ctx, obs); err != nil {
			t.Fatal(err)
		}
	}
	// The predecessor's stream: written to the SocksPort, never attached.
	orphan := chain.New(socksAddr, nil)
	st, err := orphan.Open(ctx, connectReq("127.0.0.1", e.HTTPPort, "orphan"), []byte("GET / HTTP/1.0\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for waiting := false; !waiting; {
		m, err := obs.GetInfo(ctx, "stream-status")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range streamEntries(m["stream-status"]) {
			waiting = waiting || (s.Status == "NEW" && s.CircID == "0")
		}
		if ctx.Err() != nil {
			t.Fatal("the orphan stream never waited")
		}
	}
	startReal(t, e, nil)
	if err := st.Await(ctx); err != nil {
		t.Fatalf("orphan stream after the new socksd started: %v", err)
	}
	b, _ := io.ReadAll(st)
	if !strings.Contains(string(b), "hello from tornet") {
		t.Errorf("orphan stream got %q", b)
	}
}

// The DNS bridge's lookups go through Tor.
func TestRealDNSTor(t *testing.T) {
	e := realTor(t)
	tor := startReal(t, e, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := tor.DNS()
	if a, err := d.Resolve(ctx, "example.test", false); err != nil || a != "127.0.0.1" {
		t.Errorf("Resolve: %q, %v", a, err)
	}
	if n, err := d.Resolve(ctx, "198.51.100.7", true); err != nil || n != "rev.example.test" {
		t.Errorf("reverse: %q, %v", n, err)
	}
	from, err := d.MapAddress(ctx, "0.0.0.0", "example.test")
	if err != nil || !strings.HasPrefix(from, "127.") {
		t.Errorf("MapAddress: %q, %v", from, err)
	}
	if _, err := d.MapAddress(ctx, from, from); err != nil {
		t.Errorf("unmap: %v", err)
	}
}

// Attach latency on an existing circuit: p50 and p99 at most 2 ms, so
// socksd's attaching never adds a noticeable delay to a stream.
func TestRealAttachLatency(t *testing.T) {
	e := realTor(t)
	reg := prometheus.NewRegistry()
	cfg := Config{
		Control: e.Control, CookieFile: e.Cookie, SOCKS: e.SOCKS, Launch: "never",
		AttachStreams: true, CircuitLifetime: 10 * time.Minute, SOCKSTimeout: 60 * time.Second,
	}
	tor, err := New(cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := tor.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer tor.Close()
	<-tor.ctl.Ready()
	const n = 200
	for i := 0; i < n; i++ {
		if _, err := fetch(ctx, tor, connectReq("127.0.0.1", e.HTTPPort, "lat")); err != nil {
			t.Fatal(err)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "socksd_tor_attach_latency_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != "existing" {
				continue
			}
			h := m.GetHistogram()
			total := h.GetSampleCount()
			var bounds []float64
			var counts []uint64
			for _, b := range h.GetBucket() {
				bounds = append(bounds, b.GetUpperBound())
				counts = append(counts, b.GetCumulativeCount())
			}
			t.Logf("buckets (upper bound s: cumulative): %v %v", bounds, counts)
			p50 := bucketQuantile(bounds, counts, total, 0.5)
			p99 := bucketQuantile(bounds, counts, total, 0.99)
			t.Logf("attach latency, existing circuit: %d samples, mean %.3f ms, p50 <= %.2f ms, p99 <= %.2f ms",
				total, h.GetSampleSum()/float64(total)*1e3, p50*1e3, p99*1e3)
			if total < n-1 {
				t.Errorf("%d samples on an existing circuit, want >= %d", total, n-1)
			}
			if p50 > 0.002 {
				t.Errorf("p50 attach latency above 2 ms (<= %.2f ms)", p50*1e3)
			}
			return
		}
	}
	t.Fatal("no attach latency samples for existing circuits")
}

// bucketQuantile returns the upper bound of the first bucket whose
// cumulative count reaches q of total.
func bucketQuantile(bounds []float64, counts []uint64, total uint64, q float64) float64 {
	want := uint64(math.Ceil(q * float64(total)))
	for i, c := range counts {
		if c >= want {
			return bounds[i]
		}
	}
	return math.Inf(1)
}

// A stream still unanswered after socks_timeout is closed by socksd with
// reply 0x06. tornet's exits cannot reach IPv6 [::1] (tornet README: the
// stream hangs ~120 s), which makes a stream that never answers.
func TestRealSocksTimeout(t *testing.T) {
	e := realTor(t)
	tor := startReal(t, e, func(c *Config) { c.SOCKSTimeout = 2 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := fetch(ctx, tor, connectReq("::1", e.HTTPPort, "slow"))
	d := time.Since(start)
	if code := replyCode(err); code != socks5.ReplyTTLExpired {
		t.Errorf("hanging stream: %v after %v, want 0x06", err, d)
	}
	if d < 2*time.Second || d > 10*time.Second {
		t.Errorf("answered after %v, want about socks_timeout (2s)", d)
	}
}
