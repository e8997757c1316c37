package isolation

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// PeerCred identifies the process at the other end of a unix-socket
// connection with SO_PEERCRED (unix(7)): the kernel records the peer's
// pid and uid at connect time, so unlike the /proc/net/tcp search it cannot
// be fooled by a socket handed to another process later. The executable is
// /proc/PID/exe; when that is unreadable (another user's process, or
// ProtectProc=invisible) the App carries the uid with Known false and the
// error wraps ErrOwnerNotFound.
func PeerCred(c *net.UnixConn) (App, error) { return Proc{}.PeerCred(c) }

// PeerCred is the package function with p's procfs for the executable.
func (p Proc) PeerCred(c *net.UnixConn) (App, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return App{}, fmt.Errorf("isolation: peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := rc.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return App{}, fmt.Errorf("isolation: peer credentials: %w", err)
	}
	if credErr != nil {
		return App{}, fmt.Errorf("isolation: SO_PEERCRED: %w", credErr)
	}
	if cred.Pid <= 0 {
		// A peer in another pid namespace reports pid 0.
		return App{UID: cred.Uid}, fmt.Errorf("%w: peer pid not visible", ErrOwnerNotFound)
	}
	exe, err := os.Readlink(p.path(strconv.Itoa(int(cred.Pid)), "exe"))
	if err != nil {
		return App{UID: cred.Uid}, fmt.Errorf("%w: exe of pid %d: %v", ErrOwnerNotFound, cred.Pid, err)
	}
	return App{Known: true, UID: cred.Uid, Exe: exe}, nil
}
