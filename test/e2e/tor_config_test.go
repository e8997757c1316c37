package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// attachOpts shape attachConfig.
type attachOpts struct {
	SOCKS          string // [tor] socks; "" = discover through the control port
	NoExtended     bool   // [socks] extended_errors = false
	Isolation      string // lines for [isolation]
	CircuitTimeout string // [tor] socks_timeout (default 60s)
	NoAttach       bool   // [tor] attach_streams = false
	TorExtra       string // more lines for [tor] (circuit_lifetime = ...)
}

// attachConfig is a startSocksd template that makes socksd the controller
// of c (attach_streams = true, cookie authentication), with the loopback
// test server allowed (reject_internal = false).
func attachConfig(c *clientTor, o attachOpts) string {
	timeout := o.CircuitTimeout
	if timeout == "" {
		timeout = "60s"
	}
	return fmt.Sprintf(`
state_dir = "{{.StateDir}}"

[socks]
listen = ["{{.Listen}}"]
reject_internal = false
extended_errors = %t

[tor]
control = %q
cookie_file = %q
socks = %q
launch = "never"
attach_streams = %t
socks_timeout = %q
%s

[log]
level = "debug"
format = "console"
safe_logging = false

[metrics]
listen = "{{.Metrics}}"

[isolation]
%s
`, !o.NoExtended, c.Control, c.Cookie, o.SOCKS, !o.NoAttach, timeout, o.TorExtra, o.Isolation)
}

// torWaitController polls until some controller has set
// __LeaveStreamsUnattached=1 on the observer's tor (socksd does it right
// after authenticating, control-spec §3.1 SETCONF) and the tor lists an
// established circuit.
func torWaitController(t *testing.T, o *torObserver, s *Socksd) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		lines, err := o.do("GETCONF __LeaveStreamsUnattached")
		if err == nil && len(lines) > 0 && lines[0] == "__LeaveStreamsUnattached=1" {
			return
		}
		if s != nil && s.Proc.Exited() {
			t.Fatalf("socksd exited: %v\n%s", s.Proc.Err(), s.Log())
		}
		time.Sleep(20 * time.Millisecond) // poll interval of a bounded loop on a real condition
	}
	msg := ""
	if s != nil {
		msg = s.Log()
	}
	t.Fatalf("socksd never took control of the tor (__LeaveStreamsUnattached stays 0)\n%s", msg)
}

// torLeaveUnattached returns the tor's __LeaveStreamsUnattached value.
func torLeaveUnattached(t *testing.T, o *torObserver) string {
	t.Helper()
	lines, err := o.do("GETCONF __LeaveStreamsUnattached")
	if err != nil || len(lines) == 0 {
		t.Fatalf("GETCONF __LeaveStreamsUnattached: %v %q", err, lines)
	}
	_, v, _ := strings.Cut(lines[0], "=")
	return v
}

// torStartSocksdKillable is startSocksd for a socksd the test will kill -9:
// same rendering and start, but the cleanup only makes sure it is gone
// (no exit-status check; a SIGKILLed socksd exits -1 by design).
func torStartSocksdKillable(t *testing.T, tmpl string) *Socksd {
	t.Helper()
	return launchSocksd(t, tmpl, func(s *Socksd) {
		s.Proc.Stop(5 * time.Second)
		if t.Failed() {
			d := artifactDir(t, "killed-socksd")
			copyFile(s.LogPath, filepath.Join(d, "socksd.log"))
			copyFile(s.ConfigPath, filepath.Join(d, "socksd.toml"))
		}
	})
}

// torAdminPost sends POST path to socksd's metrics/admin listener and
// returns the status and body.
func torAdminPost(t *testing.T, s *Socksd, path string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Post("http://"+s.Metrics+path, "text/plain", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}

// torAdminGet is torAdminPost for GET.
func torAdminGet(t *testing.T, s *Socksd, path string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + s.Metrics + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// alive reports whether pid names a live (not zombie) process.
func torPIDAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// torChildren returns the PIDs of pid's child processes whose comm is
// name (/proc/PID/task/TID/children, Linux >= 3.5).
func torChildren(pid int, name string) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, w := range strings.Fields(string(b)) {
			var c int
			if _, err := fmt.Sscanf(w, "%d", &c); err != nil {
				continue
			}
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c))
			if err == nil && strings.TrimSpace(string(comm)) == name && torPIDAlive(c) {
				out = append(out, c)
			}
		}
	}
	return out
}
