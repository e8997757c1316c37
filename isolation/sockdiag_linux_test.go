package isolation

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
)

// TestSockDiagMatchesProc: the netlink answer names the same socket (inode,
// uid) as the /proc/net/tcp search, for IPv4, IPv6, and an AF_INET6 client
// socket talking to an IPv4 listener through a v4-mapped address.
func TestSockDiagMatchesProc(t *testing.T) {
	for _, tc := range []struct{ name, lnNet, lnAddr, dialNet, dialHost string }{
		{"v4", "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1"},
		{"v6", "tcp6", "[::1]:0", "tcp6", "::1"},
		{"v4-mapped client socket", "tcp4", "127.0.0.1:0", "tcp6", "::ffff:127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, ch := acceptOne(t, tc.lnNet, tc.lnAddr)
			port := ln.Addr().(*net.TCPAddr).Port
			dst := netip.AddrPortFrom(netip.MustParseAddr(tc.dialHost), uint16(port))
			if tc.dialNet == "tcp6" && dst.Addr().Is4In6() {
				// Go would dial a v4-mapped address with an AF_INET
				// socket; make the AF_INET6 one by hand.
				fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Skipf("AF_INET6: %v", err)
				}
				defer syscall.Close(fd)
				if err := syscall.Connect(fd, &syscall.SockaddrInet6{Port: port, Addr: dst.Addr().As16()}); err != nil {
					t.Skipf("connect to a v4-mapped address: %v", err)
				}
			} else {
				client, err := net.DialTCP(tc.dialNet, nil, net.TCPAddrFromAddrPort(dst))
				if err != nil {
					t.Skipf("dial: %v", err)
				}
				defer client.Close()
			}
			srv := accepted(t, ch)
			local, remote := addrPorts(t, srv)
			want := tcpEntry{Local: unmapAP(remote), Remote: unmapAP(local)}

			got, err := sockDiagLookup(want.Local, want.Remote)
			if errors.Is(err, errSockDiagUnavailable) {
				t.Skipf("no sock_diag here: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			var viaProc *tcpEntry
			for _, name := range []string{"tcp", "tcp6"} {
				if viaProc, err = (Proc{Root: "/proc"}).findTCP(name, want); err != nil || viaProc != nil {
					break
				}
			}
			if err != nil || viaProc == nil {
				t.Fatalf("/proc search: %v, %v", viaProc, err)
			}
			if got.Inode != viaProc.Inode || got.UID != viaProc.UID || got.Inode == 0 {
				t.Fatalf("sock_diag %+v, /proc %+v", got, *viaProc)
			}
			if got.UID != uint32(os.Getuid()) || got.State != 1 /* ESTABLISHED */ {
				t.Errorf("sock_diag entry %+v", got)
			}
			if unmapAP(got.Local) != want.Local || unmapAP(got.Remote) != want.Remote {
				t.Errorf("sock_diag id %v→%v, want %v→%v", got.Local, got.Remote, want.Local, want.Remote)
			}
		})
	}
}

func TestSockDiagNotFound(t *testing.T) {
	_, err := sockDiagLookup(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"))
	if errors.Is(err, errSockDiagUnavailable) {
		t.Skipf("no sock_diag here: %v", err)
	}
	if !errors.Is(err, ErrSocketNotFound) {
		t.Fatalf("err = %v, want ErrSocketNotFound", err)
	}
}

// diagReply builds a netlink reply as the kernel would (little-endian host).
func diagReply(typ uint16, body []byte) []byte {
	b := make([]byte, nlmsgHdrLen+len(body))
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	binary.LittleEndian.PutUint16(b[4:], typ)
	copy(b[nlmsgHdrLen:], body)
	return b
}

func TestParseSockDiagReply(t *testing.T) {
	msg := make([]byte, inetDiagMsgLen)
	msg[0], msg[1] = syscall.AF_INET, 1
	putDiagID(msg[4:], netip.MustParseAddrPort("127.0.0.1:54321"), netip.MustParseAddrPort("127.0.0.1:9350"))
	binary.LittleEndian.PutUint32(msg[64:], 1000)
	binary.LittleEndian.PutUint32(msg[68:], 777001)
	errno := func(e syscall.Errno) []byte {
		b := make([]byte, 4)
		binary.LittleEndian.PutUint32(b, uint32(-int32(e)))
		return b
	}
	enoent, eperm := errno(syscall.ENOENT), errno(syscall.EPERM)

	got, err := parseSockDiagReply(diagReply(sockDiagByFamily, msg), binary.LittleEndian)
	want := tcpEntry{netip.MustParseAddrPort("127.0.0.1:54321"), netip.MustParseAddrPort("127.0.0.1:9350"), 1, 1000, 777001}
	if err != nil || got != want {
		t.Errorf("message: %+v, %v", got, err)
	}
	if _, err := parseSockDiagReply(diagReply(syscall.NLMSG_ERROR, enoent), binary.LittleEndian); !errors.Is(err, ErrSocketNotFound) {
		t.Errorf("ENOENT: %v", err)
	}
	for name, b := range map[string][]byte{
		"EPERM":         diagReply(syscall.NLMSG_ERROR, eperm),
		"short message": diagReply(sockDiagByFamily, msg[:40]),
		"short header":  {1, 2, 3},
		"length lies":   append(diagReply(sockDiagByFamily, msg)[:4:4], 0xff),
		"other type":    diagReply(3, msg),
	} {
		if _, err := parseSockDiagReply(b, binary.LittleEndian); !errors.Is(err, errSockDiagUnavailable) {
			t.Errorf("%s: err = %v, want errSockDiagUnavailable", name, err)
		}
	}
}

func FuzzParseSockDiagReply(f *testing.F) {
	msg := make([]byte, inetDiagMsgLen)
	msg[0] = syscall.AF_INET6
	f.Add(diagReply(sockDiagByFamily, msg))
	f.Add(diagReply(syscall.NLMSG_ERROR, []byte{0xfe, 0xff, 0xff, 0xff}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseSockDiagReply(b, binary.LittleEndian)
		if err == nil && !e.Local.IsValid() {
			t.Fatalf("accepted reply without a valid address: %+v", e)
		}
	})
}
