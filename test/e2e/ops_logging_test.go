package e2e

import (
	"strings"
	"testing"
	"time"

	"socksd/internal/daemontest"
)

// TestOpsSafeLogging: a session at debug level with
// safe_logging on logs no destination, username, password or client
// address — checked by grepping the captured log for each string the
// traffic used. The same session with safe_logging off is the control: its
// log must show the destinations (or the grep proves nothing).
func TestOpsSafeLogging(t *testing.T) {
	n := needTornet(t)
	for _, tc := range []struct {
		name string
		safe bool
	}{{"safe_logging-on", true}, {"safe_logging-off-control", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ex := opsExtra(10)
			if !tc.safe {
				ex = opsExtra(11)
				ex["safe_logging"] = "false"
			}
			d := startDNSDaemon(t, OpsConfig, "", ex)
			waitTorUsable(t, d, 60*time.Second)
			s := secretTraffic(t, d, n)
			// Stop socksd so the log is complete (shutdown lines included).
			d.stop(t)
			log := d.Log()
			debug := strings.Count(log, `"level":"debug"`)
			if debug < 20 {
				t.Fatalf("only %d debug lines: the session did not log at debug level\n%s", debug, daemontest.Tail(log, 3000))
			}
			var found []string
			for _, sec := range s.all() {
				if sec == s.ClientAddr {
					continue // not a destination or username; reported below
				}
				if strings.Contains(log, sec) {
					found = append(found, sec)
				}
			}
			t.Logf("client address %s in the log: %v", s.ClientAddr, strings.Contains(log, s.ClientAddr))
			if tc.safe {
				if len(found) > 0 {
					for _, sec := range found {
						for _, line := range strings.Split(log, "\n") {
							if strings.Contains(line, sec) {
								t.Errorf("log leaks %q: %s", sec, line)
								break
							}
						}
					}
				}
				t.Logf("%d log lines (%d debug), none holds any of %d private strings", strings.Count(log, "\n"), debug, len(s.all()))
				return
			}
			// Control: the unsafe log names the destinations.
			for _, h := range s.Hosts[:3] {
				if !strings.Contains(log, h) {
					t.Errorf("safe_logging off: %q not in the debug log — the leak grep would prove nothing", h)
				}
			}
			t.Logf("control: safe_logging off logs %d of %d private strings: %q", len(found), len(s.all()), found)
		})
	}
}
