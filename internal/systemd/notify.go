// Package systemd speaks the two small systemd protocols a Type=notify
// service needs, with the standard library only: sd_notify(3) over
// $NOTIFY_SOCKET, and socket activation via LISTEN_FDS (sd_listen_fds(3)).
// Outside systemd every function is a harmless no-op.
package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Errors of this package.
var (
	// ErrBadEnv: a systemd variable is set but malformed.
	ErrBadEnv = errors.New("systemd: malformed environment variable")
)

// Notify sends one sd_notify(3) message ("READY=1", "STATUS=...", several
// assignments separated by newlines) to the socket named by $NOTIFY_SOCKET.
// A name starting with '@' is a Linux abstract socket (Go's net package
// maps the '@' to the leading NUL). With $NOTIFY_SOCKET unset, Notify does
// nothing and returns nil: the daemon is not run by systemd, or the unit is
// not Type=notify.
//
// Each call dials a fresh datagram socket, so Notify is safe for concurrent
// use and keeps no state.
func Notify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] != '/' && name[0] != '@' {
		// systemd also allows vsock: addresses; socksd never runs in a VM
		// guest whose manager is on the host.
		return fmt.Errorf("%w: NOTIFY_SOCKET=%q", ErrBadEnv, name)
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("systemd: notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("systemd: notify: %w", err)
	}
	return nil
}

// Ready tells systemd that start-up finished: with Type=notify, the unit
// becomes "active" and units ordered after it start. socksd sends it once
// its listeners are up and the Tor control connection is authenticated.
// MAINPID is included so the message also holds with NotifyAccess=all.
func Ready() error {
	return Notify("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()))
}

// Reloading marks the start of a SIGHUP reload; call Ready when done. The
// monotonic timestamp is what systemd ≥ 253 requires for Type=notify-reload
// and is ignored by older versions.
func Reloading() error {
	return Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping tells systemd that shutdown began (the grace period for live
// streams), so `systemctl status` says "deactivating" rather than hanging.
func Stopping() error { return Notify("STOPPING=1") }

// Status sets the one-line free-form status shown by `systemctl status`,
// e.g. "Tor bootstrapped 45% (loading descriptors)". Newlines would start a
// new assignment, so they are replaced by spaces.
func Status(s string) error {
	return Notify("STATUS=" + strings.NewReplacer("\n", " ", "\r", " ").Replace(s))
}

// Watchdog is the keep-alive ping for WatchdogSec=.
func Watchdog() error { return Notify("WATCHDOG=1") }

// WatchdogInterval returns how often systemd expects Watchdog: WATCHDOG_USEC
// when it is set and (if WATCHDOG_PID is set) meant for this process. ok is
// false when the watchdog is off. Ping at half the interval, as
// sd_watchdog_enabled(3) advises.
func WatchdogInterval() (d time.Duration, ok bool, err error) {
	usec := os.Getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, false, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p <= 0 {
			return 0, false, fmt.Errorf("%w: WATCHDOG_PID=%q", ErrBadEnv, pid)
		}
		if p != os.Getpid() {
			return 0, false, nil // meant for our parent or a wrapper
		}
	}
	n, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || n == 0 {
		return 0, false, fmt.Errorf("%w: WATCHDOG_USEC=%q", ErrBadEnv, usec)
	}
	return time.Duration(n) * time.Microsecond, true, nil
}
