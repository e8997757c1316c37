package systemd

import (
	"syscall"
	"unsafe"
)

// clockMonotonic is CLOCK_MONOTONIC from <time.h>; the syscall package does
// not export it. (golang.org/x/sys/unix has it, but importing x/sys v0.49
// currently needs a go.mod change: its go directive is 1.26.0.)
const clockMonotonic = 1

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock systemd uses
// for MONOTONIC_USEC=.
func monotonicUsec() int64 {
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return ts.Nano() / 1e3
}
