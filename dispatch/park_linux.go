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
// in epoll_wait and starts a new one for a direction whose socket became
// readable. An idle direction then costs its pdir and an epoll entry.
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
	users   int           // under parking.mu: pdirs not yet finished
	gen     atomic.Uint64 // sweeps so far
	waiting atomic.Int64  // pdirs waiting in the netpoller (sweep candidates)

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
	p := &parker{epfd: epfd, users: 1, dirs: make(map[uint64]*pdir)}
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
		n, err := unix.EpollWait(p.epfd, events, int(timeout/time.Millisecond))
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
				unix.Close(p.epfd)
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
// source is empty. It copies as relay does (small reads through a pooled
// buffer, splice once bulk) but never waits in the netpoller for input.
type pdir struct {
	p       *parker
	tok     uint64
	state   atomic.Uint32
	waitGen atomic.Uint64 // p.gen when the netpoller wait began

	rc  syscall.RawConn
	src deadlineReader
	dst io.Writer
	rf  io.ReaderFrom // nil: bulkTail copies the rest
	// bulkTail copies the rest of the stream once it turned bulk and rf
	// is nil (TCP→Unix: TCPConn.WriteTo, which holds a goroutine).
	bulkTail func() (int64, error)
	done     func(n int64, err error)

	// Owned by the goroutine running the pdir.
	armed    bool // registered in the epoll set
	bulk     bool
	total    int64
	bp       *[]byte
	n, avail int
	again    bool // src was empty (the read did not wait)
	wait     bool // the callbacks wait in the netpoller on EAGAIN
	ierr     error
	trySmall func(fd uintptr) bool
	tryBulk  func(fd uintptr) bool
}

// startPdir prepares a parking direction copying src to dst that calls
// done once, when it ended; the caller runs it (d.run). It returns nil
// when the epoll set or src's descriptor is unavailable.
func startPdir(dst io.Writer, src deadlineReader, rf io.ReaderFrom, bulkTail func() (int64, error), done func(int64, error)) *pdir {
	rc, err := src.SyscallConn()
	if err != nil {
		return nil
	}
	p, err := acquireParker()
	if err != nil {
		return nil
	}
	d := &pdir{p: p, tok: parkTokens.Add(1), rc: rc, src: src, dst: dst, rf: rf, bulkTail: bulkTail, done: done}
	d.trySmall = d.readSmall
	d.tryBulk = d.peekBulk
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

func (d *pdir) readSmall(fd uintptr) bool {
	if d.bp == nil {
		d.bp = relayBufs.Get().(*[]byte)
	}
	for {
		d.n, d.ierr = unix.Read(int(fd), *d.bp)
		if d.ierr != unix.EINTR {
			break
		}
	}
	if d.ierr == unix.EAGAIN {
		relayBufs.Put(d.bp) // nothing queued: wait without the buffer
		d.bp = nil
		if d.wait {
			return false
		}
		d.ierr, d.again = nil, true
	}
	return true
}

func (d *pdir) peekBulk(fd uintptr) bool {
	d.avail, d.ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	if d.ierr != nil || d.avail > 0 {
		return true
	}
	var b [1]byte
	m, _, e := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	switch {
	case e == unix.EAGAIN:
		if d.wait {
			return false
		}
		d.again = true
	case e == nil && m > 0:
		d.avail, d.ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		d.avail = max(d.avail, m)
	default:
		d.ierr = e // nil: EOF (m == 0); else the socket's error
	}
	return true
}

// run copies until the direction ends or fails, or has been idle long
// enough to park (then it returns and an event or a kick runs it again).
func (d *pdir) run() {
	for {
		again, end, err := d.step()
		if end && errors.Is(err, os.ErrDeadlineExceeded) {
			// The sweep ended an idle wait (or, rarely, hit a read just
			// after bytes came; parking then costs one event).
			d.src.SetReadDeadline(time.Time{})
			again, end = true, false
		}
		if end {
			d.finish(err)
			return
		}
		if again {
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
}

// step waits in the netpoller until src is readable, then moves what is
// queued once. again: src is empty (only when d.wait is false); end: EOF
// or err.
func (d *pdir) step() (again, end bool, err error) {
	d.again, d.ierr, d.wait = false, nil, true
	d.waitGen.Store(d.p.gen.Load())
	d.p.waiting.Add(1)
	d.state.Store(dirWaiting)
	if !d.bulk {
		switch err := d.waitRead(d.trySmall); {
		case err != nil:
			return false, true, err
		case d.again:
			return true, false, nil
		case d.n <= 0:
			return false, true, nil // EOF
		}
		m, err := d.dst.Write((*d.bp)[:d.n])
		d.total += int64(m)
		full := d.n == len(*d.bp)
		relayBufs.Put(d.bp)
		d.bp = nil
		if err != nil {
			return false, true, err
		}
		if full {
			if d.rf == nil {
				m, err := d.bulkTail()
				d.total += m
				return false, true, err
			}
			d.bulk = true
		}
		return false, false, nil
	}
	switch err := d.waitRead(d.tryBulk); {
	case err != nil:
		return false, true, err
	case d.again:
		return true, false, nil
	case d.avail == 0:
		return false, true, nil // EOF
	case d.avail < relayBufSize:
		d.bulk = false // the next read finds these bytes at once
		return false, false, nil
	}
	m, err := d.rf.ReadFrom(&io.LimitedReader{R: d.src, N: int64(d.avail)})
	d.total += m
	return false, err != nil, err
}

// waitRead runs one of the read callbacks in Go's netpoller (a sweep may
// end the wait) and returns the socket's error or the callback's.
func (d *pdir) waitRead(f func(fd uintptr) bool) error {
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
	if d.bp != nil {
		relayBufs.Put(d.bp)
		d.bp = nil
	}
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
