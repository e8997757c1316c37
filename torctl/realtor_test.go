package torctl

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"socksd/internal/testutil"
)

// Real-tor tests run only when SOCKSD_TOR_CONTROL and SOCKSD_TOR_COOKIE
// point at a running tor (testutil.NeedRealTor says how to get one).
func realTor(t *testing.T) (addr, cookie string) {
	t.Helper()
	e := testutil.NeedRealTor(t, testutil.EnvControl, testutil.EnvCookie)
	return e.Control, e.Cookie
}

func realConn(t *testing.T, ctx context.Context, methods ...string) *Conn {
	t.Helper()
	addr, cookie := realTor(t)
	c, err := Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(ctx, AuthOptions{CookieFile: cookie, Methods: methods}); err != nil {
		t.Fatalf("Authenticate(%v): %v", methods, err)
	}
	return c
}

func TestRealTorAuth(t *testing.T) {
	for _, m := range []string{MethodSafeCookie, MethodCookie} {
		t.Run(m, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			c := realConn(t, ctx, m)
			pi, err := c.ProtocolInfo(ctx) // cached: Tor allows one per connection
			if err != nil {
				t.Fatal(err)
			}
			if !pi.HasMethod(m) || pi.CookieFile == "" || pi.TorVersion == "" {
				t.Fatalf("PROTOCOLINFO = %+v", pi)
			}
			info, err := c.GetInfo(ctx, "version")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(info["version"], pi.TorVersion) {
				t.Fatalf("GETINFO version = %q, PROTOCOLINFO said %q", info["version"], pi.TorVersion)
			}
		})
	}
}

func TestRealTorCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c := realConn(t, ctx)

	info, err := c.GetInfo(ctx, "net/listeners/socks", "status/bootstrap-phase", "config-text")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info["net/listeners/socks"], "127.0.0.1:") {
		t.Errorf("net/listeners/socks = %q", info["net/listeners/socks"])
	}
	if p, tag, _, err := ParseBootstrapPhase(info["status/bootstrap-phase"]); err != nil || p != 100 || tag != "done" {
		t.Errorf("bootstrap phase %q: %d %q %v", info["status/bootstrap-phase"], p, tag, err)
	}
	if !strings.Contains(info["config-text"], "\n") {
		t.Errorf("config-text (a data block) = %q", info["config-text"])
	}

	// Quote's escapes (\" \\ \t \n \001) are decoded by tor and come back
	// from GETCONF as a CString that Unquote reads (control-spec §2.1.1).
	const contact = "a \"q\" \\b\tt\nx\x01 caf\u00e9"
	if err := c.SetConf(ctx, KV{"ContactInfo", contact}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Do(ctx, "GETCONF ContactInfo")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("GETCONF: %s", r.Lines[0].Text)
	if v, err := Unquote(strings.TrimPrefix(r.Lines[0].Text, "ContactInfo=")); err != nil || v != contact {
		t.Errorf("GETCONF ContactInfo = %s -> %q, %v; want %q", r.Lines[0].Text, v, err, contact)
	}
	if err := c.ResetConf(ctx, "ContactInfo"); err != nil {
		t.Fatal(err)
	}

	if err := c.SetEvents(ctx, "CIRC", "STREAM", "ADDRMAP", "STATUS_CLIENT"); err != nil {
		t.Fatal(err)
	}
	id, err := c.ExtendCircuit(ctx, "0", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ctx, c, func(e Event) bool {
		ce, err := ParseCircEvent(e)
		return err == nil && ce.ID == id && ce.Status == "BUILT" && len(ce.Path) == 3
	}, "CIRC "+id+" BUILT")

	cs, err := c.GetInfo(ctx, "circuit-status")
	if err != nil {
		t.Fatal(err)
	}
	circs, err := ParseCircuitStatus(cs["circuit-status"])
	if err != nil || !slices.ContainsFunc(circs, func(ce CircEvent) bool { return ce.ID == id && ce.Status == "BUILT" }) {
		t.Errorf("circuit-status does not list %s BUILT: %v\n%s", id, err, cs["circuit-status"])
	}

	got, err := c.MapAddress(ctx, "0.0.0.0", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "127.") {
		t.Errorf("MAPADDRESS 0.0.0.0 = %q, want a 127.192/10 virtual address", got)
	}
	m, err := c.GetInfo(ctx, "address-mappings/control")
	if err != nil {
		t.Fatal(err)
	}
	am, err := ParseAddressMappings(m["address-mappings/control"])
	if err != nil || !slices.Contains(am, AddressMapping{From: got, To: "example.test", Expiry: "NEVER"}) {
		t.Errorf("address-mappings/control = %q (%v), want %s", m["address-mappings/control"], err, got)
	}
	if _, err := c.MapAddress(ctx, got, got); err != nil { // unmap
		t.Fatal(err)
	}
	// README (tornet): "::" is the IPv6 wildcard for real tor, bracketed back.
	if got6, err := c.MapAddress(ctx, "::", "example.test"); err != nil || !strings.HasPrefix(got6, "[") {
		t.Errorf("MAPADDRESS ::=example.test = %q, %v", got6, err)
	} else if _, err := c.MapAddress(ctx, got6, got6); err != nil {
		t.Errorf("unmap %s: %v", got6, err)
	}

	if err := c.Resolve(ctx, "example.test", false); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ctx, c, func(e Event) bool {
		a, err := ParseAddrMapEvent(e)
		return err == nil && a.Address == "example.test" && a.NewAddress == "127.0.0.1" && !a.Failed()
	}, "ADDRMAP example.test 127.0.0.1")
	if err := c.Resolve(ctx, "nx.invalid", false); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ctx, c, func(e Event) bool {
		a, err := ParseAddrMapEvent(e)
		return err == nil && a.Address == "nx.invalid" && a.Failed()
	}, "ADDRMAP nx.invalid <error>")

	if err := c.AttachStream(ctx, "999999", "0"); !IsCode(err, 552) {
		t.Errorf("ATTACHSTREAM unknown stream: %v, want 552", err)
	}
	if err := c.SetCircuitPurpose(ctx, id, "controller"); err != nil {
		t.Errorf("SETCIRCUITPURPOSE %s: %v", id, err)
	}
	if err := c.CloseCircuitIfUnused(ctx, id); err != nil {
		t.Errorf("CLOSECIRCUIT %s IfUnused: %v", id, err)
	}
	waitEvent(t, ctx, c, func(e Event) bool {
		ce, err := ParseCircEvent(e)
		return err == nil && ce.ID == id && ce.Status == "CLOSED"
	}, "CIRC "+id+" CLOSED")
	if err := c.CloseCircuit(ctx, id); !IsCode(err, 552) {
		t.Errorf("CLOSECIRCUIT of a closed circuit: %v, want 552", err)
	}
	if err := c.SetEvents(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitEvent reads events until match returns true or ctx ends.
func waitEvent(t *testing.T, ctx context.Context, c *Conn, match func(Event) bool, what string) {
	t.Helper()
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("waiting for %s: connection ended: %v", what, c.Err())
			}
			if match(e) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// TestRealTorAttachStream: a SOCKS5 stream with credentials is left
// unattached, seen as STREAM NEW (SOCKS_USERNAME parsed), attached to a
// circuit we built, and succeeds. It flips __LeaveStreamsUnattached on the
// target tor for its duration, so point it at a tor no one else is using.
func TestRealTorAttachStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c := realConn(t, ctx)
	info, err := c.GetInfo(ctx, "net/listeners/socks")
	if err != nil {
		t.Fatal(err)
	}
	listeners, err := ParseListeners(info["net/listeners/socks"])
	if err != nil || len(listeners) == 0 {
		t.Fatalf("net/listeners/socks %q: %v", info["net/listeners/socks"], err)
	}
	socks := listeners[0]
	if err := c.SetEvents(ctx, "STREAM", "CIRC"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetConf(ctx, KV{"__LeaveStreamsUnattached", "1"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.ResetConf(context.Background(), "__LeaveStreamsUnattached"); err != nil {
			t.Errorf("RESETCONF: %v", err)
		}
	})
	circ, err := c.ExtendCircuit(ctx, "0", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ctx, c, func(e Event) bool {
		ce, err := ParseCircEvent(e)
		return err == nil && ce.ID == circ && ce.Status == "BUILT"
	}, "CIRC BUILT")

	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", socks)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// SOCKS5 greeting, RFC 1929 user/pass and CONNECT example.test:80 in one
	// write. Whether anything listens on port 80 does not matter: the test
	// stops at SENTCONNECT on our circuit.
	user, pass := "al ice", "p\"w"
	req := []byte{5, 1, 2, 1, byte(len(user))}
	req = append(req, user...)
	req = append(req, byte(len(pass)))
	req = append(req, pass...)
	host := "example.test"
	req = append(req, 5, 1, 0, 3, byte(len(host)))
	req = append(req, host...)
	req = append(req, 0, 80)
	if _, err := nc.Write(req); err != nil {
		t.Fatal(err)
	}
	var stream StreamEvent
	waitEvent(t, ctx, c, func(e Event) bool {
		s, err := ParseStreamEvent(e)
		if err == nil && s.Status == "NEW" && s.TargetHost == host {
			stream = s
			return true
		}
		return false
	}, "STREAM NEW example.test")
	if stream.SOCKSUsername != user || stream.SOCKSPassword != pass || stream.Purpose != "USER" ||
		stream.SourceAddr != nc.LocalAddr().String() || stream.TargetPort != 80 || stream.CircID != "0" {
		t.Fatalf("STREAM NEW parsed as %+v (local %s)", stream, nc.LocalAddr())
	}
	if err := c.AttachStream(ctx, stream.ID, circ); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ctx, c, func(e Event) bool {
		s, err := ParseStreamEvent(e)
		return err == nil && s.ID == stream.ID && s.Status == "SENTCONNECT" && s.CircID == circ
	}, "STREAM SENTCONNECT on our circuit")
	st, err := c.GetInfo(ctx, "stream-status")
	if err != nil {
		t.Fatal(err)
	}
	if streams, err := ParseStreamStatus(st["stream-status"]); err != nil ||
		!slices.ContainsFunc(streams, func(s StreamEvent) bool { return s.ID == stream.ID && s.CircID == circ }) {
		t.Errorf("stream-status does not show %s on %s: %v\n%s", stream.ID, circ, err, st["stream-status"])
	}
	// control-spec §3.13: an unknown circuit is 552.
	if err := c.AttachStream(ctx, stream.ID, "99999"); !IsCode(err, 552) {
		t.Errorf("ATTACHSTREAM to unknown circuit: %v, want 552", err)
	}
	if err := c.CloseStream(ctx, stream.ID, EndReasonDone); err != nil && !IsCode(err, 552) {
		t.Errorf("CLOSESTREAM: %v", err)
	}
}

// torHashPassword is what `tor --hash-password` prints: "16:" + hex(salt |
// 0x60 | S2K), OpenPGP iterated+salted S2K with SHA-1 (RFC 2440 §3.6.1.3),
// count (16+(0x60&15))<<((0x60>>4)+6) = 65536 bytes.
func torHashPassword(salt [8]byte, pw string) string {
	const c = 0x60
	count := (16 + (c & 15)) << ((c >> 4) + 6)
	tmp := append(salt[:], pw...)
	h := sha1.New()
	for count > 0 {
		n := min(count, len(tmp))
		h.Write(tmp[:n])
		count -= n
	}
	return "16:" + strings.ToUpper(hex.EncodeToString(append(append(salt[:], c), h.Sum(nil)...)))
}

// TestRealTorHashedPassword sets HashedControlPassword on the target tor for
// its duration and authenticates with a password that needs quoting.
func TestRealTorHashedPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	admin := realConn(t, ctx)
	const pw = `pa ss "wörd" \ end`
	if err := admin.SetConf(ctx, KV{"HashedControlPassword", torHashPassword([8]byte{1, 2, 3, 4, 5, 6, 7, 8}, pw)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := admin.ResetConf(context.Background(), "HashedControlPassword"); err != nil {
			t.Errorf("RESETCONF: %v", err)
		}
	})
	addr, _ := realTor(t)
	for _, tc := range []struct {
		pw   string
		want int // 0 = success, else the reply code
	}{{pw, 0}, {pw + "x", 515}} {
		c, err := Dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		pi, err := c.ProtocolInfo(ctx)
		if err != nil || !pi.HasMethod(MethodHashedPassword) {
			t.Fatalf("PROTOCOLINFO %+v %v", pi, err)
		}
		err = c.Authenticate(ctx, AuthOptions{Password: tc.pw, Methods: []string{MethodHashedPassword}})
		switch {
		case tc.want == 0 && err != nil:
			t.Errorf("good password: %v", err)
		case tc.want != 0 && !IsCode(err, tc.want):
			t.Errorf("bad password: %v, want %d", err, tc.want)
		case tc.want != 0:
			<-c.Done() // tor closes the connection after a failed AUTHENTICATE
		}
		c.Close()
	}
}
