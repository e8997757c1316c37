package torup

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"socksd/dispatch"
	"socksd/internal/confcheck"
	"socksd/internal/sockstest"
	"socksd/internal/testutil"
	"socksd/socks5"
	"socksd/torctl"
	"socksd/torctl/torctltest"
)

// fakeTor is the scripted control port of a Tor whose SocksPort is socks.
func fakeTor(t *testing.T, socks string, streamStatus string) *torctltest.Server {
	t.Helper()
	s := torctltest.New(t)
	s.Handle(`^PROTOCOLINFO`, func(string) string { return torctltest.ProtocolInfoReply("NULL", "") })
	s.Handle(`^AUTHENTICATE`, func(string) string { return "250 OK" })
	s.Handle(`^(SETEVENTS|SETCONF|RESETCONF|TAKEOWNERSHIP|SETCIRCUITPURPOSE|ATTACHSTREAM|CLOSECIRCUIT|CLOSESTREAM|SIGNAL)`, func(string) string { return "250 OK" })
	s.Handle(`^GETINFO net/listeners/socks$`, func(string) string {
		return `250-net/listeners/socks="127.0.0.1:9" "` + socks + `"` + "\n250 OK"
	})
	s.Handle(`^GETCONF SocksPort$`, func(string) string {
		port := socks[strings.LastIndexByte(socks, ':')+1:]
		return "250-SocksPort=127.0.0.1:9\n250 SocksPort=" + port + " ExtendedErrors"
	})
	s.Handle(`^GETINFO status/bootstrap-phase$`, func(string) string {
		return `250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"` + "\n250 OK"
	})
	s.Handle(`^GETINFO circuit-status$`, func(string) string { return "250-circuit-status=\n250 OK" })
	s.Handle(`^GETINFO stream-status$`, func(string) string {
		if streamStatus == "" {
			return "250-stream-status=\n250 OK"
		}
		return "250+stream-status=\n" + streamStatus + "\n.\n250 OK"
	})
	n := 100
	s.Handle(`^EXTENDCIRCUIT 0$`, func(string) string {
		n++
		return "250 EXTENDED " + strconv.Itoa(n)
	})
	return s
}

func received(s *torctltest.Server, prefix string) int {
	n := 0
	for _, l := range s.Received() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func startFakeTor(t *testing.T, ctl string, mod func(*Tor)) *Tor {
	t.Helper()
	tor, err := New(Config{
		Control: ctl, Launch: "never", AttachStreams: true,
		CircuitLifetime: 10 * time.Minute, SOCKSTimeout: time.Minute,
	}, zaptest.NewLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(tor)
	}
	if err := tor.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tor.Close() })
	return tor
}

func TestControllerConfiguresReconnectsAndRepushes(t *testing.T) {
	// Stream 12 was left waiting by a crashed predecessor.
	s := fakeTor(t, "127.0.0.1:10", "12 NEW 0 1.2.3.4:80\n13 SUCCEEDED 5 1.2.3.4:80")
	hooks := make(chan *torctl.Conn, 4)
	tor := startFakeTor(t, s.Addr(), func(tor *Tor) {
		tor.ctlBackoff = 300 * time.Millisecond
		tor.OnReconnect(func(_ context.Context, c *torctl.Conn) error {
			hooks <- c
			return nil
		})
	})
	first := <-hooks
	if st := tor.ctl.State(); st.SOCKS != "127.0.0.1:10" || st.Bootstrap != 100 || !st.Connected {
		t.Errorf("state %+v: want the ExtendedErrors SocksPort, 100%%, connected", st)
	}
	testutil.WaitFor(t, "startup hand-back", func() bool { return received(s, "ATTACHSTREAM 12 0") == 1 })
	if received(s, "ATTACHSTREAM 13") != 0 {
		t.Error("an open stream was touched at start-up")
	}
	for _, want := range []string{"SETEVENTS STREAM CIRC CIRC_MINOR ADDRMAP STATUS_CLIENT CONF_CHANGED", "SETCONF __LeaveStreamsUnattached=\"1\""} {
		if !slices.Contains(s.Received(), want) {
			t.Errorf("missing %q in %q", want, s.Received())
		}
	}

	s.DropConn()
	testutil.WaitFor(t, "fail closed", func() bool { return !tor.ctl.Connected() })
	start := time.Now()
	_, err := tor.Upstream().Open(context.Background(), connectReq("127.0.0.1", 80, "a"), nil)
	var re *socks5.ReplyError
	if !errors.As(err, &re) || re.Code != socks5.ReplyGeneralFailure || !errors.Is(err, ErrControlDown) {
		t.Errorf("Open while down: %v, want 0x01 ErrControlDown", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Open while down took %v", d)
	}
	if _, err := tor.Resolver().Resolve(context.Background(), &dispatch.Request{Command: dispatch.CmdResolve, Host: "x.test"}); !errors.Is(err, ErrControlDown) {
		t.Errorf("Resolve while down: %v, want ErrControlDown", err)
	}

	second := <-hooks
	if second == first {
		t.Error("re-push hook got the old connection")
	}
	if n := received(s, "SETEVENTS "); n != 2 {
		t.Errorf("SETEVENTS sent %d times, want 2 (re-subscribe)", n)
	}
	if n := received(s, "SETCONF __LeaveStreamsUnattached="); n != 2 {
		t.Errorf("SETCONF sent %d times, want 2", n)
	}
	if st := tor.ctl.State(); st.Reconnects != 1 {
		t.Errorf("reconnects %d, want 1", st.Reconnects)
	}
	tor.Close()
	if received(s, "RESETCONF __LeaveStreamsUnattached") != 1 {
		t.Errorf("clean exit did not reset __LeaveStreamsUnattached: %q", s.Received())
	}
}

func TestOpenFailsClosedWhenControlUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	tor := startFakeTor(t, addr, nil)
	start := time.Now()
	_, err = tor.Upstream().Open(context.Background(), connectReq("127.0.0.1", 80, "a"), nil)
	if replyCode(err) != socks5.ReplyGeneralFailure || !errors.Is(err, ErrControlDown) || time.Since(start) > time.Second {
		t.Errorf("Open: %v after %v, want 0x01 ErrControlDown at once", err, time.Since(start))
	}
}

func TestStartModes(t *testing.T) {
	noCtl := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String() + "0" // an invalid port: never reachable
	}()
	t.Run("never", func(t *testing.T) {
		tor, err := New(Config{Launch: "never", SystemControl: []string{"unix:/nonexistent/control"}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := tor.Start(context.Background()); !errors.Is(err, ErrLaunchNever) {
			t.Errorf("Start: %v, want ErrLaunchNever", err)
		}
		tor.Close()
	})
	t.Run("socks without control", func(t *testing.T) {
		tor, err := New(Config{Launch: "auto", SOCKS: "127.0.0.1:1", SystemControl: []string{noCtl}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tor.Close()
		if err := tor.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if tor.Controller() != nil {
			t.Error("a controller without a control port")
		}
		// Chained to the SocksPort (which refuses): 0x01 from chain.
		_, err = tor.Upstream().Open(context.Background(), connectReq("127.0.0.1", 80, "a"), nil)
		if replyCode(err) != socks5.ReplyGeneralFailure || errors.Is(err, ErrControlDown) {
			t.Errorf("Open: %v, want chain's dial failure", err)
		}
	})
}

// TestConfigValidate: the [tor] rules, each problem naming its key.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		key  string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"unix endpoints", func(c *Config) { c.Control, c.SOCKS = "unix:/run/tor/control", "unix:/run/tor/socks" }, ""},
		{"none needs socks", func(c *Config) { c.Control = "none" }, "socks"},
		{"none with socks", func(c *Config) { c.Control, c.SOCKS = "none", "127.0.0.1:9050" }, ""},
		{"bad launch", func(c *Config) { c.Launch = "sometimes" }, "launch"},
		{"control is a name", func(c *Config) { c.Control = "localhost" }, "control"},
		{"socks without port", func(c *Config) { c.SOCKS = "9050" }, "socks"},
		{"relative data_dir", func(c *Config) { c.DataDir = "rel" }, "data_dir"},
		{"no binary to launch", func(c *Config) { c.TorBinary = "" }, "tor_binary"},
		{"no binary, never launched", func(c *Config) { c.TorBinary, c.Launch = "", "never" }, ""},
		{"zero lifetime", func(c *Config) { c.CircuitLifetime = 0 }, "circuit_lifetime"},
		{"zero socks_timeout", func(c *Config) { c.SOCKSTimeout = 0 }, "socks_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			var keys []string
			confcheck.Each(err, func(key, _ string) { keys = append(keys, key) })
			switch {
			case tc.key == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.key != "" && (len(keys) != 1 || keys[0] != tc.key):
				t.Fatalf("Validate: %v, want one problem with key %q", err, tc.key)
			}
		})
	}
}

// The whole path on fakes: Open registers the SocksPort connection, the
// STREAM NEW naming it as SOURCE_ADDR is attached to a CONTROLLER circuit
// built for the key, and a generic SOCKS failure is refined from the
// STREAM event's REMOTE_REASON.
func TestUpstreamAttachAndRefine(t *testing.T) {
	hold := make(chan byte)
	var seen atomic.Pointer[sockstest.Request]
	up := &sockstest.Server{Handle: func(r *sockstest.Request, c net.Conn, _ *bufio.Reader) {
		seen.Store(r)
		code := <-hold
		sockstest.WriteReply(c, code, nil)
	}}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	s := fakeTor(t, up.Addr(), "")
	tor := startFakeTor(t, s.Addr(), nil)
	testutil.WaitFor(t, "connected", tor.ctl.Connected)

	req := connectReq("127.0.0.1", 80, "alice")
	st, err := tor.Upstream().Open(context.Background(), req, []byte("GET /"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	testutil.WaitFor(t, "the request at the SocksPort", func() bool { return seen.Load() != nil })
	r := seen.Load()
	if string(r.Username) != torS0X0 || string(r.Password) != req.Key.String() {
		t.Errorf("credentials %q/%q, want <torS0X>0 / key", r.Username, r.Password)
	}
	s.Push("650 STREAM 5 NEW 0 127.0.0.1:80 SOURCE_ADDR=" + r.Remote.String() + " PURPOSE=USER")
	testutil.WaitFor(t, "EXTENDCIRCUIT", func() bool { return received(s, "EXTENDCIRCUIT 0") == 1 })
	testutil.WaitFor(t, "SETCIRCUITPURPOSE", func() bool { return received(s, "SETCIRCUITPURPOSE 101 purpose=controller") == 1 })
	s.Push("650 CIRC 101 BUILT $AA~a,$BB~b,$CC~c PURPOSE=CONTROLLER")
	testutil.WaitFor(t, "ATTACHSTREAM", func() bool { return received(s, "ATTACHSTREAM 5 101") == 1 })
	if got := tor.CircuitFor(req.Key); got != "101" {
		t.Errorf("CircuitFor = %q, want 101", got)
	}
	s.Push("650 STREAM 5 FAILED 101 127.0.0.1:80 REASON=END REMOTE_REASON=CONNECTREFUSED")
	hold <- 0x01 // Tor's SOCKS reply is generic...
	err = st.Await(context.Background())
	if replyCode(err) != socks5.ReplyConnectionRefused {
		t.Errorf("Await: %v, want 0x05 from REMOTE_REASON=CONNECTREFUSED", err)
	}
	st.Close()
	if n := tor.reg.len(); n != 0 {
		t.Errorf("%d registrations left after Close", n)
	}
}

func TestDiscoverSocksSinglePort(t *testing.T) {
	s := torctltest.New(t)
	s.AcceptNullAuth()
	s.Expect("GETINFO net/listeners/socks", `250-net/listeners/socks="unix:/run/tor/socks"`+"\n250 OK")
	c, err := torctl.Dial(context.Background(), s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(context.Background(), torctl.AuthOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := discoverSocks(context.Background(), c)
	if err != nil || got != "unix:/run/tor/socks" {
		t.Errorf("discoverSocks = %q, %v", got, err)
	}
}

func TestReplyFromReason(t *testing.T) {
	for _, c := range []struct {
		reason, remote string
		want           socks5.Reply
		ok             bool
	}{
		{"END", "CONNECTREFUSED", socks5.ReplyConnectionRefused, true},
		{"END", "RESOLVEFAILED", socks5.ReplyHostUnreachable, true},
		{"END", "EXITPOLICY", socks5.ReplyNotAllowed, true},
		{"END", "TIMEOUT", socks5.ReplyTTLExpired, true},
		{"TIMEOUT", "", socks5.ReplyTTLExpired, true},
		{"END", "MISC", socks5.ReplyGeneralFailure, false},
		{"END", "INTERNAL", socks5.ReplyGeneralFailure, false},
		{"TORPROTOCOL", "", socks5.ReplyGeneralFailure, false},
		{"NOROUTE", "", socks5.ReplyHostUnreachable, true},
		{"", "", socks5.ReplyGeneralFailure, false},
	} {
		got, ok := replyFromReason(c.reason, c.remote)
		if got != c.want || ok != c.ok {
			t.Errorf("replyFromReason(%q, %q) = %#x %v, want %#x %v", c.reason, c.remote, byte(got), ok, byte(c.want), c.ok)
		}
	}
}

func TestRefine(t *testing.T) {
	k := keyOf("a")
	generic := &socks5.ReplyError{Code: socks5.ReplyGeneralFailure}
	t.Run("timed out", func(t *testing.T) {
		r := newRegistration(k, "x")
		r.markTimedOut()
		r.finish("CLOSED", "TIMEOUT", "")
		if got := replyCode(refine(context.Background(), r, generic)); got != socks5.ReplyTTLExpired {
			t.Errorf("got %#x, want 0x06", byte(got))
		}
	})
	t.Run("specific code kept", func(t *testing.T) {
		r := newRegistration(k, "x")
		r.finish("FAILED", "END", "CONNECTREFUSED")
		err := &socks5.ReplyError{Code: socks5.ReplyOnionDescNotFound}
		if got := replyCode(refine(context.Background(), r, err)); got != socks5.ReplyOnionDescNotFound {
			t.Errorf("got %#x, want Tor's F0 kept", byte(got))
		}
	})
	t.Run("no event in time", func(t *testing.T) {
		r := newRegistration(k, "x")
		start := time.Now()
		if got := replyCode(refine(context.Background(), r, generic)); got != socks5.ReplyGeneralFailure {
			t.Errorf("got %#x, want 0x01", byte(got))
		}
		if d := time.Since(start); d > 2*outcomeWait {
			t.Errorf("waited %v", d)
		}
	})
	t.Run("plain error becomes a reply", func(t *testing.T) {
		r := newRegistration(k, "x")
		r.finish("FAILED", "END", "RESOLVEFAILED")
		if got := replyCode(refine(context.Background(), r, errors.New("eof"))); got != socks5.ReplyHostUnreachable {
			t.Errorf("got %#x, want 0x04", byte(got))
		}
	})
	if refine(context.Background(), newRegistration(k, "x"), nil) != nil {
		t.Error("success refined into an error")
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	s := fakeTor(t, "127.0.0.1:10", "")
	base := runtime.NumGoroutine()
	tor, err := New(Config{Control: s.Addr(), Launch: "never", AttachStreams: true, SOCKSTimeout: time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tor.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "connected", tor.ctl.Connected)
	s.Push("650 STREAM 5 NEW 0 127.0.0.1:80 SOURCE_ADDR=127.0.0.1:1 PURPOSE=USER")
	s.Push("650 STREAM 5 CONTROLLER_WAIT 0 127.0.0.1:80")
	testutil.WaitFor(t, "hand-back", func() bool { return received(s, "ATTACHSTREAM 5 0") == 1 })
	tor.Close()
	testutil.WaitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
}

func TestAttachStreamsOff(t *testing.T) {
	s := fakeTor(t, "127.0.0.1:10", "12 NEW 0 1.2.3.4:80")
	tor, err := New(Config{Control: s.Addr(), Launch: "never", AttachStreams: false}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tor.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "connected", tor.ctl.Connected)
	s.Push("650 STREAM 5 NEW 0 127.0.0.1:80 SOURCE_ADDR=127.0.0.1:1 PURPOSE=USER")
	s.Push("650 STREAM 5 CONTROLLER_WAIT 0 127.0.0.1:80")
	s.Push("650 STREAM 5 CLOSED 0 127.0.0.1:80 REASON=DONE")
	testutil.WaitFor(t, "events consumed", func() bool { return tor.ctl.Conn() != nil && tor.ctl.Conn().EventBacklog() == 0 })
	tor.Close()
	for _, l := range s.Received() {
		for _, bad := range []string{"SETCONF", "RESETCONF", "ATTACHSTREAM", "EXTENDCIRCUIT", "GETINFO stream-status"} {
			if strings.HasPrefix(l, bad) {
				t.Errorf("attach_streams = false sent %q", l)
			}
		}
	}
}

// Another controller resetting __LeaveStreamsUnattached (e.g. an old socksd
// shutting down while a new one starts) is undone at once.
func TestLeaveUnattachedReasserted(t *testing.T) {
	s := fakeTor(t, "127.0.0.1:10", "")
	tor := startFakeTor(t, s.Addr(), nil)
	testutil.WaitFor(t, "connected", tor.ctl.Connected)
	testutil.WaitFor(t, "first SETCONF", func() bool { return received(s, "SETCONF __LeaveStreamsUnattached=") == 1 })
	s.Push("650-CONF_CHANGED\n650-__LeaveStreamsUnattached=0\n650 OK")
	testutil.WaitFor(t, "SETCONF again", func() bool { return received(s, "SETCONF __LeaveStreamsUnattached=") == 2 })
	s.Push("650-CONF_CHANGED\n650-__LeaveStreamsUnattached=1\n650 OK")
	s.Push("650-CONF_CHANGED\n650-MaxCircuitDirtiness=600\n650 OK")
	tor.Close()
	if n := received(s, "SETCONF __LeaveStreamsUnattached="); n != 2 {
		t.Errorf("SETCONF sent %d times, want 2", n)
	}
}

func TestDiscoverSocksPrefers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "socks")
	if err := os.WriteFile(sock, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "absent", "socks")
	for _, c := range []struct {
		name      string
		listeners string // GETINFO value
		conf      string // GETCONF SocksPort lines
		want      string
	}{
		{"debian defaults: unix over tcp", `"unix:` + sock + `" "127.0.0.1:9050"`,
			"250-SocksPort=unix:" + sock + " WorldWritable\n250 SocksPort=127.0.0.1:9050", "unix:" + sock},
		{"unix order does not matter", `"127.0.0.1:9050" "unix:` + sock + `"`,
			"250-SocksPort=127.0.0.1:9050\n250 SocksPort=unix:" + sock, "unix:" + sock},
		{"extended errors beat unix", `"unix:` + sock + `" "127.0.0.1:9150"`,
			"250-SocksPort=unix:" + sock + "\n250 SocksPort=9150 ExtendedErrors", "127.0.0.1:9150"},
		{"extended unix beats extended tcp", `"127.0.0.1:9150" "unix:` + sock + `"`,
			"250-SocksPort=9150 ExtendedErrors\n250 SocksPort=unix:" + sock + " GroupWritable ExtendedErrors", "unix:" + sock},
		{"unreachable unix passed over", `"unix:` + missing + `" "127.0.0.1:9050"`,
			"250-SocksPort=unix:" + missing + " ExtendedErrors\n250 SocksPort=127.0.0.1:9050", "127.0.0.1:9050"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := torctltest.New(t)
			s.AcceptNullAuth()
			s.Expect("GETINFO net/listeners/socks", `250-net/listeners/socks=`+c.listeners+"\n250 OK")
			s.Expect("GETCONF SocksPort", c.conf)
			ctl, err := torctl.Dial(context.Background(), s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer ctl.Close()
			if err := ctl.Authenticate(context.Background(), torctl.AuthOptions{}); err != nil {
				t.Fatal(err)
			}
			got, err := discoverSocks(context.Background(), ctl)
			if err != nil || got != c.want {
				t.Errorf("discoverSocks = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// A clean exit closes socksd's circuits that carry no stream (Tor never
// closes an idle CONTROLLER circuit itself) and leaves busy ones alone.
func TestCleanExitClosesIdleCircuits(t *testing.T) {
	s := fakeTor(t, "127.0.0.1:10", "")
	tor := startFakeTor(t, s.Addr(), nil)
	testutil.WaitFor(t, "connected", tor.ctl.Connected)
	tor.att.mu.Lock()
	tor.att.circs["77"] = &circuit{id: "77", built: true, pooled: true, streams: map[string]*stream{}}
	tor.att.circs["78"] = &circuit{id: "78", built: true, streams: map[string]*stream{"5": {id: "5"}}}
	tor.att.mu.Unlock()
	tor.Close()
	if received(s, "CLOSECIRCUIT 77 IfUnused") != 1 {
		t.Errorf("the idle pool circuit was not closed: %q", s.Received())
	}
	if received(s, "CLOSECIRCUIT 78") != 0 {
		t.Error("a circuit carrying a stream was closed")
	}
}

// A request that arrives right as socksd starts (under socket activation,
// the very request that started it) must not see "control connection
// down" in the moment between the first connect and its configuration
// being marked. Each round starts a fresh Tor and asks at once; without
// the wait, the mapping and the stream lose that race nearly every time.
func TestFirstRequestsWaitForTheFirstConnection(t *testing.T) {
	for round := range 10 {
		s := fakeTor(t, "127.0.0.1:10", "")
		s.Handle(`^MAPADDRESS `, func(line string) string {
			pair := strings.Fields(line)[1]
			return "250 " + pair
		})
		tor := startFakeTor(t, s.Addr(), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := tor.DNS().MapAddress(ctx, "10.66.0.1", "example.test"); err != nil {
			t.Fatalf("round %d: MapAddress right after Start: %v", round, err)
		}
		cancel()
		tor.Close()
	}
}

// Once the first attempt has failed, nothing waits: a Tor that is not
// there fails every request at once.
func TestNoWaitAfterAFailedFirstAttempt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tor := startFakeTor(t, addr, nil)
	start := time.Now()
	if _, err := tor.DNS().MapAddress(context.Background(), "10.66.0.1", "example.test"); !errors.Is(err, ErrControlDown) {
		t.Errorf("MapAddress without Tor: %v, want ErrControlDown", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("MapAddress without Tor took %v, want at once", d)
	}
}
