package systemd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// notifySocket creates the unixgram socket systemd would own, points
// NOTIFY_SOCKET at it and returns a function reading the next datagram.
func notifySocket(t *testing.T, name string) func() string {
	next, _ := notifyConn(t, name)
	return next
}

func notifyConn(t *testing.T, name string) (func() string, *net.UnixConn) {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return func() string {
		t.Helper()
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, _, err := c.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("reading notification: %v", err)
		}
		return string(buf[:n])
	}, c
}

func TestNotifyMessages(t *testing.T) {
	for _, tc := range []struct{ name, addr string }{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract", fmt.Sprintf("@socksd-test-notify-%d-%d", os.Getpid(), time.Now().UnixNano())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := notifySocket(t, tc.addr)
			pid := strconv.Itoa(os.Getpid())
			steps := []struct {
				send func() error
				want string
			}{
				{Ready, "READY=1\nMAINPID=" + pid},
				{func() error { return Status("Tor bootstrapped 45%\n(loading descriptors)") },
					"STATUS=Tor bootstrapped 45% (loading descriptors)"},
				{Watchdog, "WATCHDOG=1"},
				{Stopping, "STOPPING=1"},
			}
			for _, s := range steps {
				if err := s.send(); err != nil {
					t.Fatal(err)
				}
				if got := next(); got != s.want {
					t.Fatalf("got %q, want %q", got, s.want)
				}
			}
			if err := Reloading(); err != nil {
				t.Fatal(err)
			}
			got := next()
			usec, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
			if n, err := strconv.ParseInt(usec, 10, 64); !ok || err != nil || n <= 0 {
				t.Fatalf("reloading message %q", got)
			}
		})
	}
}

func TestNotifyUnsetIsNoop(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Ready(); err != nil {
		t.Fatalf("Ready without NOTIFY_SOCKET: %v", err)
	}
}

func TestNotifyErrors(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if err := Ready(); !errors.Is(err, ErrBadEnv) {
		t.Errorf("relative socket: err = %v, want ErrBadEnv", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if err := Ready(); err == nil {
		t.Error("missing socket: no error")
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		usec, pid string
		want      time.Duration
		ok, err   bool
	}{
		{"", "", 0, false, false},
		{"3000000", "", 3 * time.Second, true, false},
		{"3000000", pid, 3 * time.Second, true, false},
		{"3000000", "1", 0, false, false}, // for another process
		{"0", pid, 0, false, true},
		{"abc", pid, 0, false, true},
		{"-5", "", 0, false, true},
		{"3000000", "x", 0, false, true},
	}
	for _, tt := range tests {
		t.Setenv("WATCHDOG_USEC", tt.usec)
		t.Setenv("WATCHDOG_PID", tt.pid)
		d, ok, err := WatchdogInterval()
		if d != tt.want || ok != tt.ok || (err != nil) != tt.err {
			t.Errorf("USEC=%q PID=%q: got %v %v %v", tt.usec, tt.pid, d, ok, err)
		}
	}
}

// TestRunWatchdog: pings arrive while healthy; none while unhealthy; the
// loop ends with its context.
func TestRunWatchdog(t *testing.T) {
	next, conn := notifyConn(t, filepath.Join(t.TempDir(), "notify"))
	t.Setenv("WATCHDOG_USEC", "20000") // 20ms: pings every 10ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	healthy := make(chan bool)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunWatchdog(ctx, func() bool { return <-healthy })
	}()
	// Exactly one healthy answer is ever given, so exactly one ping may
	// arrive; the unhealthy ones must send nothing.
	healthy <- false
	healthy <- false
	healthy <- true
	if got := next(); got != "WATCHDOG=1" {
		t.Fatalf("got %q", got)
	}
	cancel()
	// The loop may be blocked asking healthy; answer until it returns.
	for {
		select {
		case healthy <- false:
			continue
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			// The loop is over, so every datagram it sent is queued
			// and a read finds one at once; the short deadline only
			// bounds the wait for none. (A deadline already in the past
			// would fail the read without looking at the queue.)
			if err := conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			if n, _, err := conn.ReadFromUnix(make([]byte, 64)); err == nil {
				t.Fatalf("extra notification after the single healthy answer (%d bytes)", n)
			}
			return
		case <-time.After(5 * time.Second):
			t.Fatal("RunWatchdog did not return after cancel")
		}
	}
}

func TestRunWatchdogOff(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	if err := RunWatchdog(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}
