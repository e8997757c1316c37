//go:build unix

// Package sockopttest reads socket options in tests: what a socket was
// really set to, not what the code meant to set.
package sockopttest

import (
	"syscall"
	"testing"
)

// Int returns the integer socket option level/opt of c, failing the test
// if it cannot be read.
func Int(t testing.TB, c syscall.Conn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), level, opt) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}
