package tornet

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Tor never binds an outgoing socket for a loopback destination
// (connection.c connection_connect: `if (!tor_addr_is_loopback(addr))`
// guards the OutboundBindAddress* bind), so every exit's connection to the
// test HTTP server comes from 127.0.0.1 whatever OutboundBindAddressExit
// says. To tell exits apart, the server finds which of our tor processes
// owns the other end of the TCP connection: the socket with that local
// port in /proc/net/tcp gives an inode, and /proc/PID/fd of the owner holds
// "socket:[inode]".

// socketInode returns the inode of the IPv4 TCP socket local→remote.
func socketInode(local, remote netip.AddrPort) (string, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return "", err
	}
	defer f.Close()
	want := procNetAddr(local) + " " + procNetAddr(remote)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) > 9 && fl[1]+" "+fl[2] == want {
			return fl[9], nil
		}
	}
	return "", fmt.Errorf("tornet: no socket %s -> %s in /proc/net/tcp", local, remote)
}

// procNetAddr formats an IPv4 address:port as /proc/net/tcp does: the
// address as a host-order (little-endian here) 32-bit hex number.
func procNetAddr(ap netip.AddrPort) string {
	a := ap.Addr().As4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], ap.Port())
}

// ownsSocket reports whether process pid has socket inode open.
func ownsSocket(pid int, inode string) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	want := "socket:[" + inode + "]"
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == want {
			return true
		}
	}
	return false
}

// peerTor names the tor of this network (exit0, hs, ...) that owns the
// client end of a connection the test HTTP server accepted, or "". A
// connection that came through the HTTP Link is the Link's own: the one
// to look up is the connection the exit made to the Link.
func (n *Network) peerTor(remote, local string) string {
	if l := n.Link("http"); l != nil {
		if o, ok := l.originOf(remote); ok {
			remote, local = o, l.Addr
		}
	}
	r, err1 := netip.ParseAddrPort(remote)
	l, err2 := netip.ParseAddrPort(local)
	if err1 != nil || err2 != nil || !r.Addr().Is4() {
		return ""
	}
	inode, err := socketInode(r, l)
	if err != nil {
		return ""
	}
	for name, pid := range n.PIDs() {
		if ownsSocket(pid, inode) {
			return name
		}
	}
	return ""
}
