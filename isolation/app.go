package isolation

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
)

// Errors of the client-application lookup. A caller treats any of them as
// "application unknown" (App.Known false) and counts it; the stream still
// proceeds, isolated under the "unknown application" value (see Policy.Key).
var (
	// ErrSocketNotFound: neither sock_diag nor /proc/net/tcp{,6} knows the client's
	// socket: the client is on another host or network namespace, or the
	// connection is already gone.
	ErrSocketNotFound = errors.New("isolation: client socket not found on this host")
	// ErrOwnerNotFound: the socket exists but no visible process holds it;
	// typically /proc/PID/fd of other users is unreadable (not root, no
	// CAP_SYS_PTRACE) or hidden (systemd ProtectProc=invisible, hidepid=).
	ErrOwnerNotFound = errors.New("isolation: no visible process owns the client socket")
	// ErrUnsupported: the platform has no SO_PEERCRED, or the connection
	// is neither a unix nor a TCP socket.
	ErrUnsupported = errors.New("isolation: client application lookup unsupported on this platform")
)

// Proc reads process and socket tables from a procfs mount; Root "" means
// "/proc". Tests point Root at a fixture tree.
type Proc struct {
	Root string
}

func (p Proc) path(elem ...string) string {
	root := p.Root
	if root == "" {
		root = "/proc"
	}
	return filepath.Join(append([]string{root}, elem...)...)
}

// LookupTCPOwner finds the application that owns the client end of a TCP
// connection socksd accepted on loopback. local and remote are the accepted
// connection's own addresses (conn.LocalAddr, conn.RemoteAddr); the client's
// socket is the one whose local address is our remote and whose remote
// address is our local. On Linux with the real procfs it is found with one
// sock_diag(7) netlink query (needs AF_NETLINK; see deploy/client-app.conf),
// else by reading /proc/net/tcp{,6}. Its inode is then searched in
// /proc/[pid]/fd.
//
// On ErrOwnerNotFound the returned App carries the socket's uid with Known
// false: the caller may log it, but the key treats the app as unknown.
func LookupTCPOwner(local, remote netip.AddrPort) (App, error) {
	return Proc{}.LookupTCPOwner(local, remote)
}

// LookupTCPOwner is the package function over p's procfs.
func (p Proc) LookupTCPOwner(local, remote netip.AddrPort) (App, error) {
	want := tcpEntry{Local: unmapAP(remote), Remote: unmapAP(local)}
	var found *tcpEntry
	if p.Root == "" {
		// The real procfs: ask the kernel for exactly this socket first.
		e, err := sockDiagLookup(want.Local, want.Remote)
		switch {
		case err == nil && e.Inode != 0:
			found = &e
		case err == nil: // a TIME_WAIT socket: no process holds it
			return App{}, ErrSocketNotFound
		case errors.Is(err, ErrSocketNotFound):
			return App{}, err
		}
		// Otherwise netlink is unavailable: fall back to /proc/net.
	}
	for _, name := range []string{"tcp", "tcp6"} {
		if found != nil {
			break
		}
		e, err := p.findTCP(name, want)
		if err != nil {
			return App{}, err
		}
		if e != nil {
			found = e
			break
		}
	}
	if found == nil {
		return App{}, ErrSocketNotFound
	}
	pid, err := p.findInodeOwner(found.Inode)
	if err != nil {
		return App{UID: found.UID}, err
	}
	exe, err := os.Readlink(p.path(strconv.Itoa(pid), "exe"))
	if err != nil {
		return App{UID: found.UID}, fmt.Errorf("%w: exe of pid %d: %v", ErrOwnerNotFound, pid, err)
	}
	return App{Known: true, UID: found.UID, Exe: exe}, nil
}

// findTCP scans /proc/net/tcp ("tcp") or /proc/net/tcp6 ("tcp6") for the
// live socket (inode ≠ 0; TIME_WAIT rows have none) with want's address
// pair. A missing table (no IPv6 in the kernel) is not an error.
// /proc/net is a link to /proc/self/net, which is the only one visible when
// procfs is mounted with subset=pid (systemd ProcSubset=pid); both name the
// same network namespace's table.
//
// A busy machine has tens of thousands of rows (39k TIME_WAIT rows were
// seen while load tests ran), so rows are first matched as bytes against
// the pair in the kernel's own hex form, and only a hit is parsed.
func (p Proc) findTCP(name string, want tcpEntry) (*tcpEntry, error) {
	needle, ok := procNeedle(name, want)
	if !ok {
		return nil, nil // an IPv6 pair cannot be in the IPv4 table
	}
	f, err := os.Open(p.path("net", name))
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.Open(p.path("self", "net", name))
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("isolation: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(bufio.NewReaderSize(f, 64<<10))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, needle) {
			continue
		}
		e, err := parseTCPLine(line, binary.NativeEndian)
		if err != nil || e.Inode == 0 {
			continue
		}
		if unmapAP(e.Local) == want.Local && unmapAP(e.Remote) == want.Remote {
			return &e, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("isolation: reading %s: %w", name, err)
	}
	return nil, nil
}

// procNeedle is " LOCAL REMOTE " as the table prints the pair: IPv4 in
// "tcp"; IPv6, or IPv4 as a v4-mapped address, in "tcp6".
func procNeedle(table string, want tcpEntry) ([]byte, bool) {
	l, r := want.Local, want.Remote
	if table == "tcp" {
		if !l.Addr().Is4() || !r.Addr().Is4() {
			return nil, false
		}
	} else if l.Addr().Is4() {
		l = netip.AddrPortFrom(netip.AddrFrom16(l.Addr().As16()), l.Port())
		r = netip.AddrPortFrom(netip.AddrFrom16(r.Addr().As16()), r.Port())
	}
	return []byte(" " + formatProcAddrPort(l, binary.NativeEndian) + " " +
		formatProcAddrPort(r, binary.NativeEndian) + " "), true
}

// findInodeOwner returns the first process with an fd on socket:[inode].
// Several processes may share the socket after fork; any of them runs the
// same executable in the common case, and the first found is used.
func (p Proc) findInodeOwner(inode uint64) (int, error) {
	ents, err := os.ReadDir(p.path())
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrOwnerNotFound, err)
	}
	target := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := p.path(ent.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && l == target {
				return pid, nil
			}
		}
	}
	return 0, ErrOwnerNotFound
}

// unmapAP puts an address in the form /proc/net shows it: IPv4 for a
// v4-mapped address (a dual-stack listener sees ::ffff:127.0.0.1 while the
// client's AF_INET socket sits in /proc/net/tcp), and no zone.
func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}

// LookupConn identifies the application behind an accepted client
// connection: SO_PEERCRED for a unix socket, the /proc/net/tcp search for
// TCP. Other connection types return ErrUnsupported. This is the one call
// the dispatcher needs when a listener's policy has ClientApp.
func LookupConn(c net.Conn) (App, error) { return Proc{}.LookupConn(c) }

// LookupConn is the package function over p's procfs.
func (p Proc) LookupConn(c net.Conn) (App, error) {
	switch c := c.(type) {
	case *net.UnixConn:
		return p.PeerCred(c)
	case *net.TCPConn:
		l, lok := c.LocalAddr().(*net.TCPAddr)
		r, rok := c.RemoteAddr().(*net.TCPAddr)
		if !lok || !rok {
			return App{}, ErrUnsupported
		}
		return p.LookupTCPOwner(l.AddrPort(), r.AddrPort())
	}
	return App{}, ErrUnsupported
}
