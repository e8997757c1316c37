package torup

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"socksd/internal/testutil"
)

// A stopped (SIGSTOP) tor keeps its control socket open and answers
// nothing: the liveness probe closes the connection, socksd fails closed,
// and it serves again once tor runs again. Needs SOCKSD_TOR_PID, the pid
// of the client tor (a test network's, never a system tor).
func TestRealHungTor(t *testing.T) {
	e := realTor(t)
	pid, err := strconv.Atoi(strings.TrimSpace(os.Getenv("SOCKSD_TOR_PID")))
	if err != nil || pid <= 1 {
		t.Skip("SOCKSD_TOR_PID not set")
	}
	tor, err := New(Config{
		Control: e.Control, CookieFile: e.Cookie, SOCKS: e.SOCKS, Launch: "never",
		AttachStreams: true, CircuitLifetime: 10 * time.Minute, SOCKSTimeout: 60 * time.Second,
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tor.ctlBackoff = 50 * time.Millisecond
	tor.ctlProbe = 200 * time.Millisecond
	tor.ctlProbeWait = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := tor.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer tor.Close()
	<-tor.ctl.Ready()
	if _, err := fetch(ctx, tor, connectReq("127.0.0.1", e.HTTPPort, "hung")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer resume()
	stopped := time.Now()
	testutil.WaitFor(t, "the hung connection to be dropped", func() bool { return !tor.ctl.Connected() })
	t.Logf("hung control connection dropped after %v", time.Since(stopped).Round(time.Millisecond))
	if _, err := tor.Upstream().Open(ctx, connectReq("127.0.0.1", e.HTTPPort, "hung"), nil); replyCode(err) != 0x01 {
		t.Errorf("Open while tor is stopped: %v, want 0x01", err)
	}
	resume()
	testutil.WaitFor(t, "reconnect", tor.ctl.Connected)
	if _, err := fetch(ctx, tor, connectReq("127.0.0.1", e.HTTPPort, "hung")); err != nil {
		t.Errorf("after SIGCONT: %v", err)
	}
}
