package torup

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"socksd/dispatch"
	"socksd/internal/testutil"
	"socksd/socks5"
	"socksd/torctl"
)

// A control connection that stays open but stops answering is closed by
// the liveness probe; socksd reconnects and probes the new connection,
// which answers, so it stays.
func TestHungControlConnectionIsClosed(t *testing.T) {
	s := fakeTor(t, "127.0.0.1:10", "")
	var probes atomic.Int32
	s.Handle(`^GETINFO version$`, func(string) string {
		if probes.Add(1) == 1 {
			return "" // Tor hangs: no reply, no EOF
		}
		return "250-version=0.4.9.11\n250 OK"
	})
	hooks := make(chan *torctl.Conn, 4)
	tor := startFakeTor(t, s.Addr(), func(tor *Tor) {
		tor.ctlBackoff = 10 * time.Millisecond
		tor.ctlProbe = 20 * time.Millisecond
		tor.ctlProbeWait = time.Second // generous: an answered probe must never time out under -race
		tor.OnReconnect(func(_ context.Context, c *torctl.Conn) error {
			hooks <- c
			return nil
		})
	})
	first := <-hooks
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	select {
	case second := <-hooks:
		if second == first {
			t.Fatal("reconnect hook got the old connection")
		}
	case <-deadline.C:
		t.Fatalf("no reconnect after the probe went unanswered; received %q", s.Received())
	}
	select {
	case <-first.Done():
	default:
		t.Error("the hung connection was not closed")
	}
	var m dto.Metric
	if err := tor.m.ctlHung.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 1 {
		t.Errorf("control_hung_total = %v, want 1", got)
	}
	// Later probes are answered: the new connection stays.
	testutil.WaitFor(t, "probes on the new connection", func() bool { return probes.Load() >= 4 })
	if n := s.Conns(); n != 2 {
		t.Errorf("%d control connections, want 2 (answered probes must not reconnect)", n)
	}
	if !tor.ctl.Connected() {
		t.Error("not connected after the reconnect")
	}
}

// A connection that delivers events is alive: a tick after events is
// skipped, a tick with none since the last one probes.
func TestBusyConnectionNotProbed(t *testing.T) {
	s := fakeTor(t, "127.0.0.1:10", "")
	s.Handle(`^GETINFO version$`, func(string) string { return "250-version=0.4.9.11\n250 OK" })
	tor := startFakeTor(t, s.Addr(), func(tor *Tor) {
		tor.ctlProbe = time.Hour // the controller's own probe stays quiet
	})
	testutil.WaitFor(t, "connected", tor.ctl.Connected)
	conn := tor.ctl.Conn()
	var events atomic.Uint64
	stop := make(chan struct{})
	tick := make(chan time.Time) // unbuffered: a send returns once the previous tick is handled
	done := make(chan struct{})
	go func() {
		defer close(done)
		tor.ctl.probeLoop(conn, &events, stop, tick)
	}()
	tick <- time.Time{} // idle: probe 1
	tick <- time.Time{} // idle: probe 2
	events.Add(1)
	tick <- time.Time{} // an event since: skipped
	tick <- time.Time{} // idle again: probe 3
	events.Add(1)
	tick <- time.Time{} // skipped
	close(stop)
	<-done
	if n := received(s, "GETINFO version"); n != 3 {
		t.Errorf("%d probes, want 3 (two ticks followed events)", n)
	}
	if !tor.ctl.Connected() {
		t.Error("answered probes closed the connection")
	}
}

// silentSocksPort accepts connections and reads what they send, but
// never answers: a SocksPort of a frozen Tor (the kernel still accepts).
func silentSocksPort(t *testing.T) string {
	t.Helper()
	return testutil.Serve(t, "", func(c net.Conn) { io.Copy(io.Discard, c) }).String()
}

// When the control connection is lost, every stream still waiting for
// Tor's reply gets 0x01 at once (fail closed), RESOLVEs included.
func TestPendingStreamsFailWhenControlLost(t *testing.T) {
	s := fakeTor(t, silentSocksPort(t), "")
	tor := startFakeTor(t, s.Addr(), func(tor *Tor) { tor.ctlBackoff = time.Hour })
	testutil.WaitFor(t, "connected", tor.ctl.Connected)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := tor.Upstream().Open(ctx, connectReq("127.0.0.1", 80, "waiting"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	errs := make(chan error, 2)
	go func() { errs <- st.Await(ctx) }()
	go func() {
		_, err := tor.Resolver().Resolve(ctx, &dispatch.Request{Protocol: dispatch.ProtoSOCKS5, Command: dispatch.CmdResolve, Host: "example.test", Key: keyOf("r")})
		errs <- err
	}()
	testutil.WaitFor(t, "both requests registered", func() bool { return tor.reg.len() == 2 })
	s.DropConn()
	start := time.Now()
	for range 2 {
		select {
		case err := <-errs:
			if replyCode(err) != socks5.ReplyGeneralFailure || !errors.Is(err, ErrControlDown) {
				t.Errorf("waiting request: %v, want 0x01 ErrControlDown", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiting request kept waiting after the control connection was lost")
		}
	}
	t.Logf("both failed %v after the drop", time.Since(start).Round(time.Millisecond))
}

// A Tor slow to answer the probe while its events keep coming is busy,
// not hung: the probe waits longer instead of closing the connection.
func TestSlowProbeWithEventsIsNotHung(t *testing.T) {
	s := fakeTor(t, "127.0.0.1:10", "")
	release := make(chan struct{})
	s.Handle(`^GETINFO version$`, func(string) string {
		<-release
		return "250-version=0.4.9.11\n250 OK"
	})
	tor := startFakeTor(t, s.Addr(), func(tor *Tor) {
		tor.ctlProbe = time.Hour // driven by hand below
		tor.ctlProbeWait = 200 * time.Millisecond
	})
	testutil.WaitFor(t, "connected", tor.ctl.Connected)
	var events atomic.Uint64
	done := make(chan struct{})
	var timedOut bool
	var perr error
	go func() {
		defer close(done)
		perr, timedOut = tor.ctl.probeOnce(tor.ctl.Conn(), &events)
	}()
	// Events for 5 probe timeouts, then the answer.
	for range 50 {
		events.Add(1)
		time.Sleep(20 * time.Millisecond) // the pace of a busy Tor's events, not a synchronisation
	}
	close(release)
	<-done
	if timedOut || perr != nil {
		t.Errorf("probe of a busy tor: err %v, timedOut %v; want an answer", perr, timedOut)
	}
}
