package resolve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"socksd/socks5"
)

func TestExpiry(t *testing.T) {
	clk := newClock()
	tor := newFakeTor()
	b := newTestBridge(t, testConfig(clk), tor) // MappingIdle 1h
	ctx := context.Background()
	idle := onlyAddr(t, ask(t, b, "idle.test.", dns.TypeA))
	touched := onlyAddr(t, ask(t, b, "touched.test.", dns.TypeA))
	pinned := onlyAddr(t, ask(t, b, "pinned.test.", dns.TypeA))
	release, err := b.Pin(ctx, pinned)
	if err != nil {
		t.Fatalf("Pin of a mapped address: %v", err)
	}

	clk.Advance(40 * time.Minute)
	b.Touch(touched) // a SOCKS connection restarts the idle clock
	clk.Advance(40 * time.Minute)
	if n := b.Expire(ctx); n != 1 {
		t.Fatalf("expired %d, want 1 (idle.test)", n)
	}
	if _, ok := b.Lookup(idle); ok {
		t.Error("idle mapping still in the table")
	}
	if got := tor.mapped(idle.String()); got != "" {
		t.Errorf("Tor still maps %v to %q", idle, got)
	}
	if calls := tor.callLog(); calls[len(calls)-1] != idle.String()+"="+idle.String() {
		t.Errorf("last MAPADDRESS %q, want %v=%v", calls[len(calls)-1], idle, idle)
	}
	rev, _ := dns.ReverseAddr(idle.String())
	if m := ask(t, b, rev, dns.TypePTR); m.Rcode != dns.RcodeNameError {
		t.Errorf("PTR of an expired address: %s", dns.RcodeToString[m.Rcode])
	}

	clk.Advance(2 * time.Hour)
	if n := b.Expire(ctx); n != 1 {
		t.Fatalf("expired %d, want 1 (touched.test; pinned.test is pinned)", n)
	}
	if name, ok := b.Lookup(pinned); !ok || name != "pinned.test" {
		t.Fatal("pinned mapping expired")
	}
	release()
	release() // idempotent
	clk.Advance(59 * time.Minute)
	if n := b.Expire(ctx); n != 0 {
		t.Fatalf("expired %d right after release, want 0", n)
	}
	clk.Advance(2 * time.Minute)
	if n := b.Expire(ctx); n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
	for _, a := range []netip.Addr{pinned, netip.MustParseAddr("192.0.2.1")} {
		var re *socks5.ReplyError
		if _, err := b.Pin(ctx, a); !errors.As(err, &re) || re.Code != socks5.ReplyHostUnreachable || !errors.Is(err, ErrNotMapped) {
			t.Errorf("Pin(%v) of an unmapped address: %v, want host unreachable", a, err)
		}
	}
}

// tinyPool is a /29: offsets 0..7, of which .1-.7 are usable (no .0).
func tinyPool(clk *clock) Config {
	cfg := testConfig(clk)
	cfg.VirtualIPv4 = netip.MustParsePrefix("127.192.0.0/29")
	return cfg
}

// checkConsistent asserts Tor and the table agree on every address: no
// address stands for two names at once.
func checkConsistent(t *testing.T, b *Bridge, tor *fakeTor) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	names := map[string]bool{}
	for a, m := range b.v4.byAddr {
		if got := tor.mapped(a.String()); got != m.name {
			t.Errorf("table %v=%s, Tor %v=%q", a, m.name, a, got)
		}
		if names[m.name] {
			t.Errorf("name %s twice", m.name)
		}
		names[m.name] = true
	}
}

func TestPoolExhaustionLRU(t *testing.T) {
	clk := newClock()
	tor := newFakeTor()
	b := newTestBridge(t, tinyPool(clk), tor)
	if b.v4.pool.capacity != 7 {
		t.Fatalf("capacity %d, want 7", b.v4.pool.capacity)
	}
	served := map[netip.Addr]string{}
	for i := 1; i <= 7; i++ {
		name := fmt.Sprintf("n%d.test.", i)
		a := onlyAddr(t, ask(t, b, name, dns.TypeA))
		if prev, dup := served[a]; dup {
			t.Fatalf("%v served for %s and %s", a, prev, name)
		}
		if a.As4()[3] == 0 {
			t.Fatalf("handed out network address %v", a)
		}
		served[a] = name
		clk.Advance(time.Second)
	}
	// Every answer is younger than the TTL: an app may still hold it, so
	// nothing may be reclaimed.
	if m := ask(t, b, "n8.test.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("pool full within TTL: rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	clk.Advance(2 * time.Minute)
	// n1 is the LRU, but a live stream pins it; n2 is used again by DNS.
	n1 := onlyAddr(t, ask(t, b, "n1.test.", dns.TypeA))
	n2 := onlyAddr(t, ask(t, b, "n2.test.", dns.TypeA))
	release, err := b.Pin(context.Background(), n1)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	n8 := onlyAddr(t, ask(t, b, "n8.test.", dns.TypeA))
	if n8 == n1 || n8 == n2 {
		t.Fatalf("reclaimed a pinned or recently used address %v", n8)
	}
	old := served[n8]
	if old != "n3.test." {
		t.Errorf("reclaimed %s's address, want n3 (least recently used, unpinned)", old)
	}
	if name, _ := b.Lookup(n8); name != "n8.test" {
		t.Errorf("Lookup(%v) = %q", n8, name)
	}
	checkConsistent(t, b, tor)
	// n3 comes back: it gets a fresh address, never n8's.
	clk.Advance(2 * time.Minute)
	n3 := onlyAddr(t, ask(t, b, "n3.test.", dns.TypeA))
	if n3 == n8 {
		t.Fatal("two names on one address")
	}
	checkConsistent(t, b, tor)
	release()

	// All pinned: SERVFAIL, nothing reclaimed.
	var releases []func()
	b.mu.Lock()
	var addrs []netip.Addr
	for a := range b.v4.byAddr {
		addrs = append(addrs, a)
	}
	b.mu.Unlock()
	for _, a := range addrs {
		r, err := b.Pin(context.Background(), a)
		if err != nil {
			t.Fatalf("Pin(%v): %v", a, err)
		}
		releases = append(releases, r)
	}
	clk.Advance(time.Hour)
	if m := ask(t, b, "n9.test.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("all pinned: rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	for _, r := range releases {
		r()
	}
	if m := ask(t, b, "n9.test.", dns.TypeA); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("after release: rcode %s", dns.RcodeToString[m.Rcode])
	}
	checkConsistent(t, b, tor)
}

// An expired address is not handed out again before Tor confirmed its
// removal, so "MAPADDRESS a=a" can never land after a new "a=name".
func TestExpiredAddressDrainsFirst(t *testing.T) {
	clk := newClock()
	tor := newFakeTor()
	cfg := tinyPool(clk)
	cfg.VirtualIPv4 = netip.MustParsePrefix("127.192.0.0/30") // .1 .2 .3
	b := newTestBridge(t, cfg, tor)
	for i := 1; i <= 3; i++ {
		onlyAddr(t, ask(t, b, fmt.Sprintf("d%d.test.", i), dns.TypeA))
	}
	clk.Advance(2 * time.Hour)
	gate := make(chan struct{})
	tor.mu.Lock()
	tor.unmapGt = gate
	tor.mu.Unlock()
	expired := make(chan int)
	go func() { expired <- b.Expire(context.Background()) }()
	gate <- struct{}{} // first unmap done; two still draining
	// Poll the real condition: the first unmap finished draining.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		n := len(b.v4.draining)
		b.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("draining %d, want 2", n)
		}
		time.Sleep(time.Millisecond)
	}
	// One address is free; the two draining ones must not be used.
	a := onlyAddr(t, ask(t, b, "new.test.", dns.TypeA))
	b.mu.Lock()
	_, drained := b.v4.draining[a]
	b.mu.Unlock()
	if drained {
		t.Fatalf("handed out %v while its removal was in flight", a)
	}
	// Pool: 1 mapped + 2 draining = full; the next name must wait.
	if m := ask(t, b, "more.test.", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("pool full of draining addresses: rcode %s", dns.RcodeToString[m.Rcode])
	}
	close(gate)
	if n := <-expired; n != 3 {
		t.Fatalf("expired %d, want 3", n)
	}
	checkConsistent(t, b, tor)
}

func TestRepushAll(t *testing.T) {
	clk := newClock()
	tor := newFakeTor()
	b := newTestBridge(t, testConfig(clk), tor)
	var addrs []netip.Addr
	for i := 0; i < 20; i++ {
		addrs = append(addrs, onlyAddr(t, ask(t, b, fmt.Sprintf("r%d.test.", i), dns.TypeA)))
	}
	v6 := onlyAddr(t, ask(t, b, "r0.test.", dns.TypeAAAA))
	tor.reset() // Tor restarted: it forgot everything
	if err := b.RepushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, a := range addrs {
		if got := tor.mapped(a.String()); got != fmt.Sprintf("r%d.test", i) {
			t.Errorf("after RepushAll Tor maps %v to %q", a, got)
		}
	}
	if got := tor.mapped("[" + v6.String() + "]"); got != "r0.test" {
		t.Errorf("IPv6 not re-pushed: %q", got)
	}
	if n := len(tor.callLog()); n != 21 {
		t.Errorf("%d MAPADDRESS calls, want 21", n)
	}
	// A cached answer after the re-push does not push again.
	onlyAddr(t, ask(t, b, "r1.test.", dns.TypeA))
	if n := len(tor.callLog()); n != 21 {
		t.Errorf("%d MAPADDRESS calls after a cached answer, want 21", n)
	}
}

// A query for a mapping Tor may not have (Tor reconnected, RepushAll not
// done yet) pushes it before answering.
func TestAnswerPushesUnpushed(t *testing.T) {
	tor := newFakeTor()
	b := newTestBridge(t, testConfig(newClock()), tor)
	a := onlyAddr(t, ask(t, b, "x.test.", dns.TypeA))
	tor.reset()
	b.mu.Lock()
	b.epoch++ // what RepushAll does first
	b.mu.Unlock()
	if again := onlyAddr(t, ask(t, b, "x.test.", dns.TypeA)); again != a {
		t.Fatalf("address changed: %v → %v", a, again)
	}
	if tor.mapped(a.String()) != "x.test" {
		t.Fatal("answered without Tor knowing the mapping")
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	tor := newFakeTor()
	cfg := testConfig(clk)
	cfg.StateDir = dir
	b1, err := New(cfg, tor, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a.test.", "b.onion.", "c.test."}
	addrs := map[string]netip.Addr{}
	for _, n := range names {
		addrs[n] = onlyAddr(t, ask(t, b1, n, dns.TypeA))
		clk.Advance(time.Second)
	}
	addrs["b.onion.6"] = onlyAddr(t, ask(t, b1, "b.onion.", dns.TypeAAAA))
	// The answers waited for the disk: a crash now (a copy of the files
	// while b1 runs) loses nothing.
	crashDir := t.TempDir()
	for _, f := range []string{StateFile, StateFile + ".journal"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashDir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(filepath.Join(dir, f)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	crashCfg := cfg
	crashCfg.StateDir = crashDir
	crashed := newTestBridge(t, crashCfg, newFakeTor())
	for n, a := range addrs {
		if name, ok := crashed.Lookup(a); !ok || name != strings.TrimSuffix(strings.TrimSuffix(n, "6"), ".") {
			t.Errorf("after a crash Lookup(%v) = %q %v, want %s", a, name, ok, n)
		}
	}
	crashed.Close()
	// Load folded the journal into a new snapshot.
	if fi, err := os.Stat(filepath.Join(crashDir, StateFile+".journal")); err != nil || fi.Size() != 0 {
		t.Errorf("journal not folded after load: %v %v", fi.Size(), err)
	}
	var st stateFile
	if data, err := os.ReadFile(filepath.Join(crashDir, StateFile)); err != nil || json.Unmarshal(data, &st) != nil || len(st.Mappings) != 4 {
		t.Errorf("snapshot after folding: %d mappings, %v", len(st.Mappings), err)
	}
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}

	// socksd restarts (Tor did not): same addresses, pushed again.
	tor2 := newFakeTor()
	b2 := newTestBridge(t, cfg, tor2)
	// LRU order survives: oldest at the back, newest at the front.
	if back, front := b2.v4.lru.Back().Value.(*mapping), b2.v4.lru.Front().Value.(*mapping); back.name != "a.test" || front.name != "c.test" {
		t.Errorf("LRU after load: back %s front %s, want a.test, c.test", back.name, front.name)
	}
	for _, n := range names {
		if name, ok := b2.Lookup(addrs[n]); !ok || name+"." != n {
			t.Errorf("after restart Lookup(%v) = %q %v, want %s", addrs[n], name, ok, n)
		}
	}
	if err := b2.RepushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if got := tor2.mapped(addrs[n].String()); got+"." != n {
			t.Errorf("after RepushAll Tor maps %v to %q", addrs[n], got)
		}
		if a := onlyAddr(t, ask(t, b2, n, dns.TypeA)); a != addrs[n] {
			t.Errorf("%s: %v after restart, was %v", n, a, addrs[n])
		}
	}
	if a := onlyAddr(t, ask(t, b2, "b.onion.", dns.TypeAAAA)); a != addrs["b.onion.6"] {
		t.Errorf("AAAA changed across restart")
	}
	// A new name does not collide with the loaded ones (the cursor was saved).
	if a := onlyAddr(t, ask(t, b2, "d.test.", dns.TypeA)); a == addrs["a.test."] || a == addrs["b.onion."] || a == addrs["c.test."] {
		t.Errorf("new name got a loaded address %v", a)
	}
}

func TestCorruptState(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":        "{not json",
		"wrong version":  `{"version":99,"mappings":[]}`,
		"unknown field":  `{"version":1,"mappings":[],"x":1}`,
		"truncated json": `{"version":1,"mappings":[{"addr":"127.192.0.1","name":"a.te`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, StateFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(newClock())
			cfg.StateDir = dir
			b := newTestBridge(t, cfg, newFakeTor())
			if n := len(b.v4.byAddr); n != 0 {
				t.Errorf("%d mappings from a corrupt file", n)
			}
			if kept, err := os.ReadFile(path + ".corrupt"); err != nil || string(kept) != content {
				t.Errorf("corrupt file not set aside: %v", err)
			}
			onlyAddr(t, ask(t, b, "a.test.", dns.TypeA)) // and the bridge works
		})
	}
	// Entries that do not fit the current config are dropped, the rest kept.
	dir := t.TempDir()
	st := `{"version":1,"cursor_ipv4":5,"cursor_ipv6":0,"mappings":[
		{"addr":"127.192.0.1","name":"ok.test","last_used":1,"last_answer":1},
		{"addr":"10.0.0.1","name":"outside.test","last_used":2,"last_answer":2},
		{"addr":"127.192.0.2","name":"BAD NAME","last_used":3,"last_answer":3},
		{"addr":"127.192.0.3","name":"ok.test","last_used":4,"last_answer":4},
		{"addr":"127.192.0.1","name":"dup.test","last_used":5,"last_answer":5},
		{"addr":"127.192.0.0","name":"zero.test","last_used":6,"last_answer":6}]}`
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(st), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(newClock())
	cfg.StateDir = dir
	b := newTestBridge(t, cfg, newFakeTor())
	if n := len(b.v4.byAddr); n != 1 {
		t.Errorf("%d mappings kept, want 1", n)
	}
	if name, ok := b.Lookup(netip.MustParseAddr("127.192.0.1")); !ok || name != "ok.test" {
		t.Errorf("Lookup = %q %v", name, ok)
	}
}

func TestWriteAtomicLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", StateFile)
	for i := 0; i < 3; i++ {
		if err := writeAtomic(path, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the state file", len(entries))
	}
	if data, _ := os.ReadFile(path); string(data) != "2" {
		t.Errorf("content %q", data)
	}
}

func TestJournalReplay(t *testing.T) {
	dir := t.TempDir()
	snap := `{"version":1,"cursor_ipv4":3,"cursor_ipv6":0,"mappings":[
		{"addr":"127.192.0.1","name":"one.test","last_used":1,"last_answer":1},
		{"addr":"127.192.0.2","name":"two.test","last_used":2,"last_answer":2}]}`
	journal := `{"op":"+","addr":"127.192.0.3","name":"three.test","t":3}
{"op":"-","addr":"127.192.0.1"}
{"op":"+","addr":"127.192.0.2","name":"reclaimed.test","t":4}
{"op":"+","addr":"127.192.0.4","name":"three.test","t":5}
{"op":"+","addr":"127.192.0.5","name":"torn.te`
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(snap), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, StateFile+".journal"), []byte(journal), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(newClock())
	cfg.StateDir = dir
	b := newTestBridge(t, cfg, newFakeTor())
	want := map[string]string{
		"127.192.0.1": "", // removed
		"127.192.0.2": "reclaimed.test",
		"127.192.0.3": "", // three.test moved to .4
		"127.192.0.4": "three.test",
		"127.192.0.5": "", // torn line
	}
	for a, name := range want {
		got, ok := b.Lookup(netip.MustParseAddr(a))
		if got != name || ok != (name != "") {
			t.Errorf("Lookup(%s) = %q %v, want %q", a, got, ok, name)
		}
	}
	if n := len(b.v4.byAddr); n != 2 {
		t.Errorf("%d mappings, want 2", n)
	}
	// A new name after replay does not take a replayed address.
	if a := onlyAddr(t, ask(t, b, "new.test.", dns.TypeA)); a == netip.MustParseAddr("127.192.0.2") || a == netip.MustParseAddr("127.192.0.4") {
		t.Errorf("new name got replayed address %v", a)
	}
}

// Pin pushes a mapping Tor may have lost before the stream goes out, and
// fails closed when Tor cannot be told.
func TestPinPushes(t *testing.T) {
	tor := newFakeTor()
	b := newTestBridge(t, testConfig(newClock()), tor)
	a := onlyAddr(t, ask(t, b, "p.test.", dns.TypeA))
	tor.reset()
	b.mu.Lock()
	b.epoch++ // a reconnect, RepushAll not there yet
	b.mu.Unlock()
	release, err := b.Pin(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if tor.mapped(a.String()) != "p.test" {
		t.Fatal("Pin did not push the mapping")
	}
	tor.reset()
	b.mu.Lock()
	b.epoch++
	b.mu.Unlock()
	tor.mu.Lock()
	tor.mapErr = errors.New("control port down")
	tor.mu.Unlock()
	var re *socks5.ReplyError
	if _, err := b.Pin(context.Background(), a); !errors.As(err, &re) || re.Code != socks5.ReplyGeneralFailure {
		t.Fatalf("Pin with Tor down: %v, want general failure", err)
	}
	b.mu.Lock()
	pins := b.v4.byAddr[a].pins
	b.mu.Unlock()
	if pins != 0 {
		t.Fatalf("failed Pin left %d pins", pins)
	}
}
