package isolation

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

var procNetTests = []struct {
	name  string
	line  string
	order binary.ByteOrder
	want  tcpEntry
	err   bool
}{
	{"v4 listener", "   0: 0100007F:3F02 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12896 1 0000000043cefeed 100 0 0 10 5",
		binary.LittleEndian, tcpEntry{netip.MustParseAddrPort("127.0.0.1:16130"), netip.MustParseAddrPort("0.0.0.0:0"), 0x0A, 0, 12896}, false},
	{"v4 established", "   1: 0100007F:D431 0100007F:2382 01 00000000:00000000 00:00000000 00000000  1000        0 777001 1 0000000043cefeed 20 4 30 10 -1",
		binary.LittleEndian, tcpEntry{netip.MustParseAddrPort("127.0.0.1:54321"), netip.MustParseAddrPort("127.0.0.1:9090"), 1, 1000, 777001}, false},
	{"v4 non-loopback byte order", "   1: 0A02000A:0050 6401A8C0:C350 01 00000000:00000000 00:00000000 00000000  1000        0 5 1",
		binary.LittleEndian, tcpEntry{netip.MustParseAddrPort("10.0.2.10:80"), netip.MustParseAddrPort("192.168.1.100:50000"), 1, 1000, 5}, false},
	{"v4 big-endian host", "   1: 7F000001:D431 C0A80164:2382 01 00000000:00000000 00:00000000 00000000  7        0 9 1",
		binary.BigEndian, tcpEntry{netip.MustParseAddrPort("127.0.0.1:54321"), netip.MustParseAddrPort("192.168.1.100:9090"), 1, 7, 9}, false},
	{"v6 loopback", "   1: 00000000000000000000000001000000:B0C5 00000000000000000000000001000000:2382 01 00000000:00000000 00:00000000 00000000  1001        0 888001 1 0000000000000000 20 4 30 10 -1",
		binary.LittleEndian, tcpEntry{netip.MustParseAddrPort("[::1]:45253"), netip.MustParseAddrPort("[::1]:9090"), 1, 1001, 888001}, false},
	{"v6 v4-mapped", "   2: 0000000000000000FFFF00000100007F:C001 0000000000000000FFFF00000100007F:2382 01 00000000:00000000 00:00000000 00000000  1002        0 999001 1",
		binary.LittleEndian, tcpEntry{netip.MustParseAddrPort("[::ffff:127.0.0.1]:49153"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:9090"), 1, 1002, 999001}, false},
	{"v6 global", "   3: B80D0120000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 42 1",
		binary.LittleEndian, tcpEntry{netip.MustParseAddrPort("[2001:db8::1]:22"), netip.MustParseAddrPort("[::]:0"), 0x0A, 0, 42}, false},
	{"time-wait inode 0", "   3: 0100007F:D432 0100007F:2382 06 00000000:00000000 03:00001388 00000000     0        0 0 3 0000000000000000",
		binary.LittleEndian, tcpEntry{netip.MustParseAddrPort("127.0.0.1:54322"), netip.MustParseAddrPort("127.0.0.1:9090"), 6, 0, 0}, false},

	{"header", "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode", binary.LittleEndian, tcpEntry{}, true},
	{"empty", "", binary.LittleEndian, tcpEntry{}, true},
	{"truncated", "   0: 0100007F:3F02 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0", binary.LittleEndian, tcpEntry{}, true},
	{"short address", "   0: 00007F:3F02 00000000:0000 0A 0:0 0:0 0 0 0 1 1", binary.LittleEndian, tcpEntry{}, true},
	{"short port", "   0: 0100007F:3F0 00000000:0000 0A 0:0 0:0 0 0 0 1 1", binary.LittleEndian, tcpEntry{}, true},
	{"mixed families", "   0: 0100007F:3F02 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 1 1", binary.LittleEndian, tcpEntry{}, true},
	{"non-hex address", "   0: 0100G07F:3F02 00000000:0000 0A 0:0 0:0 0 0 0 1 1", binary.LittleEndian, tcpEntry{}, true},
	{"signed hex", "   0: +100007F:3F02 00000000:0000 0A 0:0 0:0 0 0 0 1 1", binary.LittleEndian, tcpEntry{}, true},
	{"uid overflow", "   0: 0100007F:3F02 00000000:0000 0A 0:0 0:0 0 4294967296 0 1 1", binary.LittleEndian, tcpEntry{}, true},
	{"negative inode", "   0: 0100007F:3F02 00000000:0000 0A 0:0 0:0 0 0 0 -1 1", binary.LittleEndian, tcpEntry{}, true},
	{"state too big", "   0: 0100007F:3F02 00000000:0000 100 0:0 0:0 0 0 0 1 1", binary.LittleEndian, tcpEntry{}, true},
}

func TestParseTCPLine(t *testing.T) {
	for _, tt := range procNetTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTCPLine([]byte(tt.line), tt.order)
			if tt.err {
				if !errors.Is(err, errProcNetLine) {
					t.Fatalf("err = %v, want errProcNetLine", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
			for _, ap := range []netip.AddrPort{got.Local, got.Remote} {
				back, err := parseProcAddrPort([]byte(formatProcAddrPort(ap, tt.order)), tt.order)
				if err != nil || back != ap {
					t.Errorf("round trip of %v: %v, %v", ap, back, err)
				}
			}
		})
	}
}

// FuzzParseTCPLine: the parser never panics, and what it accepts survives
// a format/parse round trip in both byte orders.
func FuzzParseTCPLine(f *testing.F) {
	for _, tt := range procNetTests {
		f.Add(tt.line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			e, err := parseTCPLine([]byte(line), order)
			if err != nil {
				continue
			}
			for _, ap := range []netip.AddrPort{e.Local, e.Remote} {
				back, err := parseProcAddrPort([]byte(formatProcAddrPort(ap, order)), order)
				if err != nil || back != ap {
					t.Fatalf("round trip of %v: %v, %v", ap, back, err)
				}
			}
		}
	})
}

// fixtureProc builds a fake procfs: testdata/proc/net plus processes whose
// fd and exe links are made here (symlinks to nowhere do not belong in git).
func fixtureProc(t *testing.T) Proc {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(filepath.Join(root, "net"), os.DirFS("testdata/proc/net")); err != nil {
		t.Fatal(err)
	}
	type proc struct {
		pid string
		exe string // "" = no exe link (unreadable)
		fds map[string]string
	}
	for _, p := range []proc{
		{"4242", "/usr/lib/firefox-esr/firefox-esr", map[string]string{"3": "socket:[777001]", "4": "pipe:[5]"}},
		{"4343", "/usr/bin/ssh", map[string]string{"7": "socket:[888001]"}},
		{"4444", "", map[string]string{"0": "socket:[999001]"}},
		{"4545", "/usr/sbin/socksd", map[string]string{"9": "socket:[777002]"}},
	} {
		fd := filepath.Join(root, p.pid, "fd")
		if err := os.MkdirAll(fd, 0o755); err != nil {
			t.Fatal(err)
		}
		if p.exe != "" {
			if err := os.Symlink(p.exe, filepath.Join(root, p.pid, "exe")); err != nil {
				t.Fatal(err)
			}
		}
		for n, target := range p.fds {
			if err := os.Symlink(target, filepath.Join(fd, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Non-pid entries are ignored.
	if err := os.MkdirAll(filepath.Join(root, "sys"), 0o755); err != nil {
		t.Fatal(err)
	}
	return Proc{Root: root}
}

func TestLookupTCPOwnerFixture(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures are little-endian /proc/net files")
	}
	p := fixtureProc(t)
	tests := []struct {
		name          string
		local, remote string // our accepted connection's own addresses
		want          App
		err           error
	}{
		{"v4 client", "127.0.0.1:9090", "127.0.0.1:54321", App{Known: true, UID: 1000, Exe: "/usr/lib/firefox-esr/firefox-esr"}, nil},
		{"v4 client seen through a dual-stack listener", "[::ffff:127.0.0.1]:9090", "[::ffff:127.0.0.1]:54321",
			App{Known: true, UID: 1000, Exe: "/usr/lib/firefox-esr/firefox-esr"}, nil},
		{"v6 client", "[::1]:9090", "[::1]:45253", App{Known: true, UID: 1001, Exe: "/usr/bin/ssh"}, nil},
		{"mapped row in tcp6", "127.0.0.1:9090", "127.0.0.1:49153", App{UID: 1002}, ErrOwnerNotFound},
		{"time-wait row has no inode", "127.0.0.1:9090", "127.0.0.1:54322", App{}, ErrSocketNotFound},
		{"reversed pair is our own socket, not the client", "127.0.0.1:54321", "127.0.0.1:9090",
			App{Known: true, UID: 110, Exe: "/usr/sbin/socksd"}, nil},
		{"not on this host", "127.0.0.1:9090", "192.0.2.7:1234", App{}, ErrSocketNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.LookupTCPOwner(netip.MustParseAddrPort(tt.local), netip.MustParseAddrPort(tt.remote))
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("app = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLookupTCPOwnerNoProcfs(t *testing.T) {
	p := Proc{Root: filepath.Join(t.TempDir(), "missing")}
	_, err := p.LookupTCPOwner(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"))
	if !errors.Is(err, ErrSocketNotFound) {
		t.Fatalf("err = %v, want ErrSocketNotFound", err)
	}
}

// TestLookupTCPOwnerProcSubsetPid: with procfs mounted subset=pid only
// /proc/self/net exists; the lookup must use it.
func TestLookupTCPOwnerProcSubsetPid(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures are little-endian /proc/net files")
	}
	p := fixtureProc(t)
	if err := os.MkdirAll(filepath.Join(p.Root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(p.Root, "net"), filepath.Join(p.Root, "self", "net")); err != nil {
		t.Fatal(err)
	}
	app, err := p.LookupTCPOwner(netip.MustParseAddrPort("[::1]:9090"), netip.MustParseAddrPort("[::1]:45253"))
	if err != nil || app != (App{Known: true, UID: 1001, Exe: "/usr/bin/ssh"}) {
		t.Fatalf("app = %+v, err = %v", app, err)
	}
}
