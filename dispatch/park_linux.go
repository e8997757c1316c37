package dispatch

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Idle directions without goroutines (docs/performance.md "Profile
// findings" 3). A goroutine parked in Go's netpoller keeps its
// stack (2-8 KiB) for as long as the connection is idle; with thousands of
// idle connections the stacks are most of socksd's memory. Instead, a
// direction that finds its source empty registers the socket in one
// private epoll set and its goroutine ends; one long-lived goroutine waits
// for that set in Go's netpoller (see parker.wait) and starts a new one
// for a direction whose socket became readable. An idle direction then
// costs its pdir and an epoll entry.
//
// Moving a direction into the epoll set and back costs epoll_ctl calls and
// a hand-off between threads (measured: +30-40 us of CPU per proxied
// connection at C=64 when every wait went through it), so a direction
// first waits in Go's netpoller as usual and is moved only once it has
// been idle for parkAfter: the epoll goroutine sweeps every parkAfter and
// gives each direction that has waited since the sweep before a past read
// deadline, which ends its wait; the direction clears the deadline and
// parks. Short connections and bursts never park; a direction idle for
// more than 25-50 ms holds no goroutine. (What an idle connection still
// keeps is relayDown's goroutine, blocked on two channels with a shallow
// stack: the session runs the relay as one function whose return closes
// the connection, see server.go.) Closing a socket removes it from the
// epoll set without an event, so whoever closes the sockets of a relay
// kicks its parked directions afterwards (relayConn.kick, kickOnClose for
// Shutdown's force-close).
//
// Safety against descriptor reuse: every epoll_ctl runs inside
// RawConn.Control, which holds the descriptor open (so its number cannot
// be reused by another socket meanwhile) and fails once it is closed; a
// closed socket leaves the epoll set by itself (epoll(7): the file is
// gone). An event carries a token, never the descriptor; a token that no
// longer names a parked direction is a stale event and ignored.

// parkAfter is the sweep interval while some direction waits in the
// netpoller: a direction idle for one to two of them moves to the epoll
// set. It is also how long the epoll goroutine stays without any relay
// before it exits and closes the epoll set (so neither outlives the
// traffic, and tests see no leak). 25 ms is long against a loopback
// exchange (a request and its answer do not park in between) and short
// against how long browsers keep idle connections open (seconds to
// minutes). When every direction is parked or copying there is nothing
// to sweep: the epoll goroutine then wakes once per parkIdle, not 40 times
// a second, so a workstation with idle connections is left alone.
const (
	parkAfter = 25 * time.Millisecond
	parkIdle  = time.Second
)

// aLongTimeAgo is a read deadline that has passed: it ends a wait at once.
var aLongTimeAgo = time.Unix(1, 0)

// parking is the process-wide epoll set, as Go's netpoller is
// process-wide; created on first use, gone after parkAfter without users.
var parking struct {
	mu sync.Mutex
	p  *parker
}

var parkTokens atomic.Uint64 // 0 is never a token

type parker struct {
	epfd    int
	file    *os.File        // epfd, registered in Go's netpoller (see wait)
	rc      syscall.RawConn // file's
	users   int             // under parking.mu: pdirs not yet finished
	gen     atomic.Uint64   // sweeps so far
	waiting atomic.Int64    // pdirs waiting in the netpoller (sweep candidates)

	mu   sync.Mutex
	dirs map[uint64]*pdir // every unfinished pdir of this set, by token
}

// acquireParker returns the epoll set with one more user, starting it if
// needed.
func acquireParker() (*parker, error) {
	parking.mu.Lock()
	defer parking.mu.Unlock()
	if p := parking.p; p != nil {
		p.users++
		return p, nil
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// Non-blocking, so os.NewFile puts it in Go's netpoller; an epoll set
	// is pollable (readable while it has events ready).
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	f := os.NewFile(uintptr(epfd), "socksd-parking")
	rc, err := f.SyscallConn()
	if err == nil {
		err = f.SetReadDeadline(time.Time{}) // fails unless in the netpoller
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &parker{epfd: epfd, file: f, rc: rc, users: 1, dirs: make(map[uint64]*pdir)}
	parking.p = p
	go p.loop()
	return p, nil
}

// unused reports whether no relay uses the set (the loop then exits soon).
func (p *parker) unused() bool {
	parking.mu.Lock()
	defer parking.mu.Unlock()
	return p.users == 0
}

func (p *parker) releaseUser() {
	parking.mu.Lock()
	p.users--
	parking.mu.Unlock()
}

func (p *parker) loop() {
	events := make([]unix.EpollEvent, 128)
	lastSweep := time.Now()
	for {
		timeout := parkIdle
		if p.waiting.Load() > 0 || p.unused() {
			timeout = parkAfter
		}
		n, err := p.wait(events, timeout)
		if now := time.Now(); now.Sub(lastSweep) >= parkAfter {
			lastSweep = now
			if p.waiting.Load() > 0 {
				p.sweep()
			}
		}
		if err != nil && err != unix.EINTR {
			// Not expected (EBADF, EFAULT, EINVAL are bugs). Waking every
			// parked direction lets each of them find its own state.
			p.mu.Lock()
			for _, d := range p.dirs {
				d.wake()
			}
			p.mu.Unlock()
		}
		if n <= 0 {
			parking.mu.Lock()
			if p.users == 0 {
				parking.p = nil
				parking.mu.Unlock()
				p.file.Close()
				return
			}
			parking.mu.Unlock()
			continue
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			tok := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if d := p.dirs[tok]; d != nil {
				d.wake()
			}
		}
		p.mu.Unlock()
	}
}

// wait returns the events ready within timeout (0 events when it passed).
// It waits in Go's netpoller, not in a blocking epoll_wait: a goroutine
// blocked in a system call holds its P, and the runtime's sysmon, which
// takes such a P back after 10 ms, then stays awake polling every 20 us
// or so. With the sweep's 25 ms waits that cost more CPU than the relays
// themselves on a network with real latency (docs/performance.md).
func (p *parker) wait(events []unix.EpollEvent, timeout time.Duration) (int, error) {
	if err := p.file.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	var n int
	var werr error
	err := p.rc.Read(func(fd uintptr) bool {
		for {
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr != unix.EINTR {
				return n != 0 || werr != nil
			}
		}
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return n, werr
}

// sweep ends the netpoller wait of every direction that has waited since
// before the previous sweep (see parkAfter).
func (p *parker) sweep() {
	g := p.gen.Add(1)
	p.mu.Lock()
	for _, d := range p.dirs {
		if d.state.Load() == dirWaiting && d.waitGen.Load()+1 < g {
			// A direction that got bytes meanwhile sees the deadline on
			// its next read, clears it and parks: harmless.
			d.src.SetReadDeadline(aLongTimeAgo)
		}
	}
	p.mu.Unlock()
}

// pdir states.
const (
	dirRunning uint32 = iota // one goroutine owns the pdir, copying
	dirWaiting               // that goroutine waits in Go's netpoller
	dirParked                // no goroutine: an event or a kick starts one
)

// pdir is one direction of a relay that parks in the epoll set while its
// source is empty. It copies with the relay's copier, but its waits in the
// netpoller are ended by the sweep once it has been idle (see parkAfter).
type pdir struct {
	copier
	p       *parker
	tok     uint64
	state   atomic.Uint32
	waitGen atomic.Uint64 // p.gen when the netpoller wait began

	src  deadlineReader
	done func(n int64, err error)

	armed bool // registered in the epoll set; owned by the goroutine running the pdir
}

// startPdir prepares a parking direction copying src to dst (rf and
// bulkTail as in copier) that calls done once, when it ended; the caller
// runs it (d.run). It returns nil when the epoll set or src's descriptor
// is unavailable.
func startPdir(dst io.Writer, src deadlineReader, rf io.ReaderFrom, bulkTail func() (int64, error), done func(int64, error)) *pdir {
	d := &pdir{src: src, done: done}
	if d.init(dst, src, rf, bulkTail) != nil {
		return nil
	}
	p, err := acquireParker()
	if err != nil {
		return nil
	}
	d.p, d.tok = p, parkTokens.Add(1)
	d.read = d.waitRead
	p.mu.Lock()
	p.dirs[d.tok] = d
	p.mu.Unlock()
	return d
}

type deadlineReader interface {
	syscallReader
	SetReadDeadline(time.Time) error
}

// wake starts a goroutine for a parked direction: its socket is readable,
// or closed (kick).
func (d *pdir) wake() {
	if d.state.CompareAndSwap(dirParked, dirRunning) {
		go d.run()
	}
}

// run copies until the direction ends or fails, or has been idle long
// enough to park (then it returns and an event or a kick runs it again).
func (d *pdir) run() {
	for {
		end, err := d.step()
		if !end {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			d.finish(err)
			return
		}
		// The sweep ended an idle wait (or, rarely, hit a read just after
		// bytes came; parking then costs one event).
		d.src.SetReadDeadline(time.Time{})
		parked, err := d.park()
		if parked {
			return
		}
		if err != nil {
			d.finish(err)
			return
		}
	}
}

// waitRead is the copier's read: a wait in Go's netpoller that the sweep
// can end, with the parker's bookkeeping around it.
func (d *pdir) waitRead(f func(fd uintptr) bool) error {
	d.waitGen.Store(d.p.gen.Load())
	d.p.waiting.Add(1)
	d.state.Store(dirWaiting)
	err := d.rc.Read(f)
	d.state.Store(dirRunning)
	d.p.waiting.Add(-1)
	if err == nil {
		err = d.ierr
	}
	return err
}

// park registers src for one readiness event and gives up the goroutine
// (parked true). Re-arming also reports bytes that arrived since the
// read that found none (epoll_ctl checks readiness), so none are missed.
// parked false with err nil: the socket closed first; run again to see it.
func (d *pdir) park() (parked bool, err error) {
	op := unix.EPOLL_CTL_MOD
	if !d.armed {
		op, d.armed = unix.EPOLL_CTL_ADD, true
	}
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     int32(uint32(d.tok)), Pad: int32(uint32(d.tok >> 32)),
	}
	epfd := d.p.epfd
	// From here on another goroutine may own d (an event or a kick):
	// only locals are used.
	d.state.Store(dirParked)
	var cerr error
	err = d.rc.Control(func(fd uintptr) { cerr = unix.EpollCtl(epfd, op, int(fd), &ev) })
	if err == nil && cerr == nil {
		return true, nil
	}
	if !d.state.CompareAndSwap(dirParked, dirRunning) {
		return true, nil // a kick took it over
	}
	if err != nil {
		return false, nil // closed: the next read reports it
	}
	return false, cerr
}

// finish ends the direction: out of the epoll set and the token table,
// then done.
func (d *pdir) finish(err error) {
	d.release()
	if d.armed {
		epfd := d.p.epfd
		d.rc.Control(func(fd uintptr) { unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, int(fd), nil) })
	}
	d.p.mu.Lock()
	delete(d.p.dirs, d.tok)
	d.p.mu.Unlock()
	d.p.releaseUser()
	d.done(d.total, err)
}

// kick wakes a parked direction after its sockets were closed: closing a
// socket removes it from the epoll set without an event.
func (d *pdir) kick() {
	if d != nil {
		d.wake()
	}
}
