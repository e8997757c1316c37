package tornet

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The link injector. This kernel has no netem, so latency and faults are
// added in user space: every relay advertises an ORPort that is a Link
// (ORPort ... NoListen) and really listens on another (ORPort ... NoAdvertise);
// the test destinations (HTTP, DNS) sit behind Links the same way. Every
// OR connection — client to guard, relay to relay — and every exit's
// connection to a destination therefore crosses exactly one Link, whose
// Shape tests may change while the network runs.
//
// Written here rather than taken from a fault-injection library: the
// latency of toxiproxy's LatencyToxic sleeps once per chunk in sequence, so
// a burst of chunks is serialised (throughput falls to a chunk per
// latency), and its module brings an HTTP API, a CLI and two loggers
// along. A link on a real network delays bytes without limiting how many
// are in flight; that is what the pump below does.

// Shape is what a Link does to the traffic crossing it, the same in each
// direction. The zero Shape forwards at once.
type Shape struct {
	// Latency is added, one way, to every byte.
	Latency time.Duration
	// Jitter: each chunk's delay is Latency plus a uniform value in
	// [-Jitter, +Jitter] (never below zero). Delivery stays in order, as
	// on one TCP path: a chunk never overtakes the one read before it.
	Jitter time.Duration
	// StallEvery/StallFor: at the start of every StallEvery period the
	// link delivers nothing for StallFor (data waits, nothing is lost).
	StallEvery, StallFor time.Duration
	// ResetEvery: every ResetEvery one open connection, chosen at random,
	// is reset (RST to both ends), as a middlebox or a crashing peer does.
	ResetEvery time.Duration
}

// delay draws one chunk's one-way delay.
func (s Shape) delay() time.Duration {
	d := s.Latency
	if s.Jitter > 0 {
		d += time.Duration(rand.Int64N(int64(2*s.Jitter)+1)) - s.Jitter
	}
	return max(d, 0)
}

// linkQueueMax bounds the bytes a direction holds in flight. At 30 ms one
// way that still allows over 100 MB/s per connection: the link adds delay,
// not a bandwidth limit.
const linkQueueMax = 4 << 20

// linkDialTimeout bounds the connection to the node behind a Link.
const linkDialTimeout = 5 * time.Second

// Link is one shaped entry point: it listens on Addr, the address the
// network advertises, and forwards every connection (and, for DNS, every
// UDP datagram) to Target, the node's real listener.
type Link struct {
	Name   string // the node behind it: "auth0", "exit1", "hs", "http", "dns"
	Addr   string // where it listens ("127.0.0.1:P")
	Target string // where it forwards ("127.0.0.1:Q")

	ln      net.Listener
	udp     *udpLink // nil unless the link also carries UDP
	epoch   time.Time
	shape   atomic.Pointer[Shape]
	holdTo  atomic.Int64 // UnixNano until which Stall holds all traffic
	changed chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	conns  map[*linkConn]struct{}
	origin map[string]string // our outbound local address -> the client's address
	stats  LinkStats
	closed bool
}

// LinkStats counts what crossed a Link.
type LinkStats struct {
	Conns  int   // TCP connections accepted
	Open   int   // open now
	Resets int   // connections reset by the link (Reset, ResetEvery)
	Bytes  int64 // bytes handed to the receiving end, both directions
}

func newLink(name, addr, target string, shape Shape, udp bool) (*Link, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l := &Link{
		Name: name, Addr: addr, Target: target, ln: ln, epoch: time.Now(),
		changed: make(chan struct{}, 1), done: make(chan struct{}),
		conns: map[*linkConn]struct{}{}, origin: map[string]string{},
	}
	l.shape.Store(&shape)
	if udp {
		// The same port as the TCP side (addr may have asked for port 0).
		if l.udp, err = newUDPLink(l, ln.Addr().String(), target); err != nil {
			ln.Close()
			return nil, err
		}
	}
	l.wg.Add(2)
	go l.accept()
	go l.resetLoop()
	return l, nil
}

// Shape returns the link's current shape.
func (l *Link) Shape() Shape { return *l.shape.Load() }

// SetShape changes the shape from now on; data already in flight keeps the
// delay it was given.
func (l *Link) SetShape(s Shape) {
	l.shape.Store(&s)
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// Stall holds all traffic of the link (both directions, every connection)
// for d from now, as a frozen router would; nothing is lost.
func (l *Link) Stall(d time.Duration) {
	l.holdTo.Store(time.Now().Add(d).UnixNano())
}

// Reset resets every open connection of the link (RST to both ends) and
// returns how many there were.
func (l *Link) Reset() int {
	l.mu.Lock()
	cs := make([]*linkConn, 0, len(l.conns))
	for c := range l.conns {
		cs = append(cs, c)
	}
	l.stats.Resets += len(cs)
	l.mu.Unlock()
	for _, c := range cs {
		c.abort()
	}
	return len(cs)
}

// Stats returns the link's counters.
func (l *Link) Stats() LinkStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Open = len(l.conns)
	return s
}

// holdUntil is the end of the stall covering now, or now when none does.
func (l *Link) holdUntil(now time.Time, s Shape) time.Time {
	until := now
	if h := time.Unix(0, l.holdTo.Load()); h.After(until) {
		until = h
	}
	if s.StallEvery > 0 && s.StallFor > 0 {
		into := now.Sub(l.epoch) % s.StallEvery
		if into < s.StallFor {
			if e := now.Add(s.StallFor - into); e.After(until) {
				until = e
			}
		}
	}
	return until
}

// waitDeliver waits until due and until no stall holds the link; false
// when dead closes first.
func (l *Link) waitDeliver(due time.Time, dead <-chan struct{}) bool {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		now := time.Now()
		t := l.holdUntil(now, l.Shape())
		if due.After(t) {
			t = due
		}
		if !t.After(now) {
			return true
		}
		if timer == nil {
			timer = time.NewTimer(t.Sub(now))
		} else {
			timer.Reset(t.Sub(now))
		}
		select {
		case <-timer.C:
		case <-dead:
			return false
		}
	}
}

// originOf maps the local address of a connection the link made to Target
// back to the address of the client that connected to the link, while that
// connection is open.
func (l *Link) originOf(outLocal string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, ok := l.origin[outLocal]
	return o, ok
}

// close stops the link: no new connections, every open one reset.
func (l *Link) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	close(l.done)
	l.ln.Close()
	if l.udp != nil {
		l.udp.close()
	}
	l.Reset()
	l.wg.Wait()
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			// EMFILE and the like: back off instead of spinning.
			select {
			case <-l.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		l.wg.Add(1)
		go l.serve(c.(*net.TCPConn))
	}
}

func (l *Link) resetLoop() {
	defer l.wg.Done()
	for {
		var tick <-chan time.Time
		var t *time.Timer
		if every := l.Shape().ResetEvery; every > 0 {
			t = time.NewTimer(every)
			tick = t.C
		}
		select {
		case <-l.done:
		case <-l.changed:
		case <-tick:
			l.resetOne()
		}
		if t != nil {
			t.Stop()
		}
		select {
		case <-l.done:
			return
		default:
		}
	}
}

func (l *Link) resetOne() {
	l.mu.Lock()
	var victim *linkConn
	k := 0
	for c := range l.conns {
		k++
		if rand.IntN(k) == 0 { // reservoir sample: each open connection alike
			victim = c
		}
	}
	if victim != nil {
		l.stats.Resets++
	}
	l.mu.Unlock()
	if victim != nil {
		victim.abort()
	}
}

// linkConn is one TCP connection through a Link: in is the client's, out
// the one the link made to Target.
type linkConn struct {
	l       *Link
	in, out *net.TCPConn
	once    sync.Once
	dead    chan struct{} // closed by abort
	up      *linkPipe     // in -> out
	down    *linkPipe     // out -> in
}

func (l *Link) serve(in *net.TCPConn) {
	defer l.wg.Done()
	d := net.Dialer{Timeout: linkDialTimeout}
	oc, err := d.Dial("tcp", l.Target)
	if err != nil {
		// The node is not listening (yet): the client sees what it would
		// see without the link, a refused connection.
		in.SetLinger(0)
		in.Close()
		return
	}
	out := oc.(*net.TCPConn)
	c := &linkConn{l: l, in: in, out: out, dead: make(chan struct{}), up: newLinkPipe(), down: newLinkPipe()}
	outLocal := out.LocalAddr().String()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.abort()
		return
	}
	l.conns[c] = struct{}{}
	l.origin[outLocal] = in.RemoteAddr().String()
	l.stats.Conns++
	l.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); c.read(in, c.up) }()
	go func() { defer wg.Done(); c.read(out, c.down) }()
	upOK := make(chan bool, 1)
	go func() { defer wg.Done(); upOK <- c.write(c.up, out) }()
	go func() {
		defer wg.Done()
		ok := c.write(c.down, in)
		if ok && <-upOK {
			// Both directions ended with a FIN, delivered in order.
			in.Close()
			out.Close()
		}
	}()
	wg.Wait()
	l.mu.Lock()
	delete(l.conns, c)
	delete(l.origin, outLocal)
	l.mu.Unlock()
}

// abort resets both ends at once (SO_LINGER 0 makes close send RST) and
// wakes every pump of the connection.
func (c *linkConn) abort() {
	c.once.Do(func() {
		close(c.dead)
		c.in.SetLinger(0)
		c.out.SetLinger(0)
		c.in.Close()
		c.out.Close()
		c.up.shut()
		c.down.shut()
	})
}

// read moves what src sends into p, each chunk stamped with its delivery
// time; a FIN becomes an end marker, an error resets the connection.
func (c *linkConn) read(src *net.TCPConn, p *linkPipe) {
	buf := make([]byte, 32<<10)
	var last time.Time
	stamp := func() time.Time {
		due := time.Now().Add(c.l.Shape().delay())
		if due.Before(last) {
			due = last // in order: never before the chunk read earlier
		}
		last = due
		return due
	}
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.push(linkChunk{b: append([]byte(nil), buf[:n]...), due: stamp()}) {
				return
			}
		}
		if errors.Is(err, io.EOF) {
			p.push(linkChunk{eof: true, due: stamp()})
			return
		}
		if err != nil {
			c.abort()
			return
		}
	}
}

// write delivers p's chunks to dst when they are due; it reports whether
// the direction ended with an orderly FIN.
func (c *linkConn) write(p *linkPipe, dst *net.TCPConn) bool {
	for {
		ch, ok := p.pop()
		if !ok {
			return false
		}
		if !c.l.waitDeliver(ch.due, c.dead) {
			return false
		}
		if ch.eof {
			if err := dst.CloseWrite(); err != nil {
				c.abort()
				return false
			}
			return true
		}
		c.l.mu.Lock()
		c.l.stats.Bytes += int64(len(ch.b))
		c.l.mu.Unlock()
		if _, err := dst.Write(ch.b); err != nil {
			c.abort()
			return false
		}
		p.done(len(ch.b))
	}
}

type linkChunk struct {
	b   []byte
	due time.Time
	eof bool
}

// linkPipe is one direction's queue, bounded in bytes: a full queue stops
// the reader, so TCP flow control reaches the sender as it would on a
// path with that much buffering.
type linkPipe struct {
	mu     sync.Mutex
	cond   sync.Cond
	q      []linkChunk
	bytes  int
	closed bool
}

func newLinkPipe() *linkPipe {
	p := &linkPipe{}
	p.cond.L = &p.mu
	return p
}

func (p *linkPipe) push(c linkChunk) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.bytes >= linkQueueMax && !p.closed {
		p.cond.Wait()
	}
	if p.closed {
		return false
	}
	p.q = append(p.q, c)
	p.bytes += len(c.b)
	p.cond.Broadcast()
	return true
}

func (p *linkPipe) pop() (linkChunk, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.q) == 0 && !p.closed {
		p.cond.Wait()
	}
	if p.closed {
		return linkChunk{}, false
	}
	c := p.q[0]
	p.q[0] = linkChunk{}
	p.q = p.q[1:]
	return c, true
}

// done returns n delivered bytes to the queue's budget.
func (p *linkPipe) done(n int) {
	p.mu.Lock()
	p.bytes -= n
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *linkPipe) shut() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
}
