package e2e

import (
	"context"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"socksd/internal/daemontest"
	"socksd/internal/testutil"
	"socksd/test/tornet"
)

// TestOpsReload: SIGHUP adds a listener while a tunnel
// through Tor on the old listener stays open and keeps working; a broken
// file is refused, the old listeners still serve; removing a listener
// closes it and leaves the other serving.
func TestOpsReload(t *testing.T) {
	n := needTornet(t)
	ex := opsExtra(9)
	d := startDNSDaemon(t, OpsConfig, "", ex)
	waitTorUsable(t, d, 60*time.Second)
	hp := strconv.Itoa(n.HTTPPort)

	// A kept-alive HTTP/1.1 tunnel through the first listener and Tor.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := tornet.DialSOCKS5(ctx, d.Listen, tornet.HostName, n.HTTPPort, "", "")
	if err != nil {
		t.Fatal(err)
	}
	tu := newKeptTunnel(c)
	defer tu.Close()
	use := func(t *testing.T, when string) {
		t.Helper()
		via, err := tu.get("/via")
		if err != nil {
			t.Fatalf("%s: the tunnel opened before the reload broke: %v", when, err)
		}
		wantExit(t, n, via)
	}
	use(t, "before reload")
	serves := func(t *testing.T, addr string) {
		t.Helper()
		r := curl(t, "--socks5-hostname", addr, "http://"+tornet.HostName+":"+hp+"/via")
		r.wantOK(t)
		wantExit(t, n, r.Stdout)
	}
	hup := func(t *testing.T, tmpl string) int {
		t.Helper()
		if tmpl != "" {
			d.writeConfig(t, tmpl)
		}
		off := len(d.Log())
		d.Proc.Signal(syscall.SIGHUP)
		return off
	}

	second := freeTCP(t)
	t.Run("add-listener", func(t *testing.T) {
		ex["listen2"] = `, "` + second + `"`
		off := hup(t, OpsConfig)
		if err := waitAccepting(d.Proc, second, 10*time.Second); err != nil {
			t.Fatalf("new listener %s: %v\n%s", second, err, daemontest.Tail(d.Log()[off:], 3000))
		}
		d.waitLog(t, off, "reloaded", 10*time.Second)
		serves(t, second)
		serves(t, d.Listen)
		use(t, "after adding a listener")
	})
	t.Run("broken-config-refused", func(t *testing.T) {
		cfg, err := os.ReadFile(d.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d.ConfigPath, append(cfg, []byte("\n[socks]\nlisten = 5\nno_such_key = true\n")...), 0o600); err != nil {
			t.Fatal(err)
		}
		off := hup(t, "")
		d.waitLog(t, off, "configuration refused", 10*time.Second)
		if d.Proc.Exited() {
			t.Fatalf("socksd exited on a broken config")
		}
		serves(t, d.Listen)
		serves(t, second)
		use(t, "after a refused reload")
	})
	t.Run("remove-listener", func(t *testing.T) {
		ex["listen2"] = ""
		off := hup(t, OpsConfig)
		d.waitLog(t, off, "reloaded", 10*time.Second)
		closed := testutil.Poll(10*time.Second, pollEvery, func() bool {
			c, err := net.DialTimeout("tcp", second, time.Second)
			if err != nil {
				return true
			}
			c.Close()
			return false
		})
		if !closed {
			t.Fatalf("removed listener %s still accepts", second)
		}
		serves(t, d.Listen)
		use(t, "after removing the other listener")
	})
}
