package systemd

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// listenFDsStart is SD_LISTEN_FDS_START: inherited sockets begin at fd 3.
const listenFDsStart = 3

// Socket is one socket passed in by socket activation.
type Socket struct {
	// Name is the socket's FileDescriptorName= (LISTEN_FDNAMES); systemd
	// defaults it to the socket unit's name. socksd's unit names its
	// sockets "socks" and "dns".
	Name string
	// Exactly one of Listener (SOCK_STREAM, SOCK_SEQPACKET: TCP or unix
	// listeners) and PacketConn (SOCK_DGRAM: the DNS bridge's UDP) is set.
	Listener   net.Listener
	PacketConn net.PacketConn
}

// Close closes whichever of Listener and PacketConn is set.
func (s Socket) Close() error {
	if s.Listener != nil {
		return s.Listener.Close()
	}
	if s.PacketConn != nil {
		return s.PacketConn.Close()
	}
	return nil
}

// Sockets takes over the sockets systemd passed (sd_listen_fds(3)): fds
// 3..3+LISTEN_FDS-1 when LISTEN_PID is this process. It returns nil when
// nothing was passed, or when the variables were meant for another process
// (inherited through a wrapper that did not exec). It unsets LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES so that children (a launched tor) do not
// believe the sockets are theirs, and marks the fds close-on-exec; so it
// returns the sockets only on its first call.
//
// A socket that is neither stream nor datagram, or that net cannot wrap,
// is an error; the sockets already wrapped are closed in that case, so a
// misconfigured socket unit fails the start loudly instead of leaving a
// port that accepts but is never served.
func Sockets() ([]Socket, error) {
	pidEnv, fdsEnv, namesEnv := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	if pidEnv == "" || fdsEnv == "" {
		return nil, nil
	}
	pid, err := strconv.Atoi(pidEnv)
	if err != nil {
		return nil, fmt.Errorf("%w: LISTEN_PID=%q", ErrBadEnv, pidEnv)
	}
	if pid != os.Getpid() {
		return nil, nil
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(k)
	}
	n, err := strconv.Atoi(fdsEnv)
	if err != nil || n < 0 || n > 1024 {
		return nil, fmt.Errorf("%w: LISTEN_FDS=%q", ErrBadEnv, fdsEnv)
	}
	var names []string
	if namesEnv != "" {
		names = strings.Split(namesEnv, ":")
	}
	if len(names) != n {
		names = nil // systemd always sends n names; ignore a mangled list
	}

	out := make([]Socket, 0, n)
	for i := 0; i < n; i++ {
		fd := listenFDsStart + i
		name := ""
		if names != nil {
			name = names[i]
		}
		s, err := wrap(fd, name)
		if err != nil {
			for _, s := range out {
				s.Close()
			}
			// wrap closed fd; close the ones we did not get to, so no
			// socket is left half owned.
			for j := fd + 1; j < listenFDsStart+n; j++ {
				syscall.Close(j)
			}
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// wrap turns an inherited fd into a net type. net.FileListener and
// net.FilePacketConn duplicate the fd; wrap always closes the original.
func wrap(fd int, name string) (Socket, error) {
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "systemd:"+name)
	defer f.Close()
	typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
	if err != nil {
		return Socket{}, fmt.Errorf("systemd: fd %d (%q) is not a socket: %w", fd, name, err)
	}
	s := Socket{Name: name}
	switch typ {
	case syscall.SOCK_STREAM, syscall.SOCK_SEQPACKET:
		// Accept=yes units pass one connected socket per instance; socksd's
		// unit uses Accept=no and must get listening sockets.
		if acc, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err == nil && acc == 0 {
			return Socket{}, fmt.Errorf("systemd: fd %d (%q) is not listening (Accept=yes is not supported)", fd, name)
		}
		s.Listener, err = net.FileListener(f)
	case syscall.SOCK_DGRAM:
		s.PacketConn, err = net.FilePacketConn(f)
	default:
		err = fmt.Errorf("socket type %d", typ)
	}
	if err != nil {
		return Socket{}, fmt.Errorf("systemd: fd %d (%q): %w", fd, name, err)
	}
	return s, nil
}
