package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"socksd/internal/testutil"
	"socksd/test/tornet"
)

// TestOpsStatusChromium: headless Chromium loads the status
// page (GET / on the metrics listener) of a socksd connected to a
// bootstrapped tor, with a stream live through Tor; the DOM shows the Tor
// state, the live stream and its hashed identity, the bridge's mappings
// and the replies by code — and none of the destinations or usernames of
// the traffic that ran before. Then tor is stopped: /healthz turns 503 and
// the page says so. Screenshots are kept in test/artifacts/TestOpsStatusChromium/.
func TestOpsStatusChromium(t *testing.T) {
	n := needTornet(t)
	o := needOwnTor(t)
	d := startDNSDaemon(t, OpsConfig, "", opsExtra(8))
	t.Logf("/healthz 200 after %v", waitHealthy(t, d, 60*time.Second).Round(time.Millisecond))
	s := secretTraffic(t, d, n)

	// A live stream through Tor while the page loads.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := tornet.DialSOCKS5(ctx, d.Listen, s.Hosts[0], n.HTTPPort, s.Users[0], s.Passwords[0])
	if err != nil {
		t.Fatal(err)
	}
	tu := newKeptTunnel(c)
	defer tu.Close()
	if via, err := tu.get("/via"); err != nil {
		t.Fatal(err)
	} else {
		wantExit(t, n, via)
	}

	dom := loadStatusPage(t, d, "status")
	for _, re := range []string{
		`<p id="tor-state" class="ok">[^<]*usable[^<]*</p>`,
		`<span class="ok">connected</span>`,
		`<td id="bootstrap">100%</td>`,
		`<th>socks5</th><td>1</td>`,                                 // live streams per protocol
		`<tr><td><code>[0-9a-f]{16,}</code></td><td>1</td><td>\d+ `, // hashed identity: 1 stream, its circuit
		`<td id="mappings">[1-9]\d* of \d+</td>`,
		`<tr><td>socks5</td><td>0x04</td><td>[1-9]\d*</td></tr>`, // replies by code
	} {
		if !regexp.MustCompile(re).MatchString(dom) {
			t.Errorf("status page lacks %s", re)
		}
	}
	for _, sec := range s.all() {
		if strings.Contains(dom, sec) {
			t.Errorf("status page shows private %q", sec)
		}
	}

	t.Run("healthz-and-newnym", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if code, body, err := httpDo(ctx, "GET", "http://"+d.Metrics+"/healthz"); err != nil || code != 200 {
			t.Fatalf("/healthz: %d %q %v", code, body, err)
		}
		if code, body, err := httpDo(ctx, "POST", "http://"+d.Metrics+"/newnym"); err != nil || code/100 != 2 {
			t.Fatalf("POST /newnym: %d %q %v", code, body, err)
		}
		if code, _, err := httpDo(ctx, "GET", "http://"+d.Metrics+"/newnym"); err != nil || code != 405 {
			t.Fatalf("GET /newnym: %d %v, want 405 (state changes need POST)", code, err)
		}
	})

	t.Run("tor-down", func(t *testing.T) {
		tu.Close()
		o.proc.Stop(10 * time.Second)
		t.Cleanup(func() {
			o.startAgain(t)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			if err := o.waitReady(ctx); err != nil {
				t.Fatal(err)
			}
		})
		var last string
		if !testutil.Poll(20*time.Second, pollEvery, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			code, body, err := httpDo(ctx, "GET", "http://"+d.Metrics+"/healthz")
			last = body
			return err == nil && code == 503
		}) {
			t.Fatalf("/healthz not 503 with tor stopped: %q", last)
		}
		dom := loadStatusPage(t, d, "status-tor-down")
		for _, re := range []string{`<p id="tor-state" class="bad">`, `<span class="bad">not connected</span>`} {
			if !regexp.MustCompile(re).MatchString(dom) {
				t.Errorf("tor down: status page lacks %s", re)
			}
		}
	})
}

// loadStatusPage loads http://METRICS/ in headless Chromium and returns
// the DOM; the DOM, a screenshot and Chromium's stderr are kept as
// artifacts named name.*.
func loadStatusPage(t *testing.T, d *Socksd, name string) string {
	t.Helper()
	dir := artifactDir(t, "")
	shot := filepath.Join(dir, name+".png")
	os.Remove(shot)
	t0 := time.Now()
	r := runCmd(t, 120*time.Second, nil, "chromium",
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--window-size=1024,1100",
		"--screenshot="+shot, "--dump-dom", "http://"+d.Metrics+"/")
	os.WriteFile(filepath.Join(dir, name+".dom.html"), []byte(r.Stdout), 0o644)
	os.WriteFile(filepath.Join(dir, name+".chromium.stderr"), []byte(r.Stderr), 0o644)
	r.wantOK(t)
	if !strings.Contains(r.Stdout, "<title>socksd status</title>") {
		t.Fatalf("not the status page:\n%s", r.Stdout)
	}
	st, err := os.Stat(shot)
	if err != nil || st.Size() < 1000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("%s: page loaded in Chromium in %v; screenshot %s (%d bytes)", name, time.Since(t0).Round(time.Millisecond), shot, st.Size())
	return r.Stdout
}
