package tornet

import (
	"net"
	"sync"
	"time"
)

// udpLink is the UDP side of a Link (the exits ask the test DNS server over
// UDP first). Each client address gets its own socket towards the target,
// so replies find their way back. Every datagram is delayed on its own, so
// with jitter datagrams may overtake each other, as on a real path; a stall
// holds them; ResetEvery and Reset do not apply (UDP has no connection).
type udpLink struct {
	l      *Link
	pc     *net.UDPConn
	target *net.UDPAddr
	mu     sync.Mutex
	peers  map[string]*net.UDPConn // client address -> socket to target
	wg     sync.WaitGroup
}

// udpPeerIdle closes a client's socket towards the target after this long
// without a datagram either way.
const udpPeerIdle = 2 * time.Minute

func newUDPLink(l *Link, addr, target string) (*udpLink, error) {
	la, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, err
	}
	u := &udpLink{l: l, pc: pc, target: ta, peers: map[string]*net.UDPConn{}}
	u.wg.Add(1)
	go u.serve()
	return u, nil
}

func (u *udpLink) close() {
	u.pc.Close()
	u.mu.Lock()
	for _, c := range u.peers {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// later runs send once the datagram is due and no stall holds the link.
func (u *udpLink) later(send func()) {
	due := time.Now().Add(u.l.Shape().delay())
	var fire func()
	fire = func() {
		now := time.Now()
		t := u.l.holdUntil(now, u.l.Shape())
		if due.After(t) {
			t = due
		}
		if t.After(now) {
			time.AfterFunc(t.Sub(now), fire)
			return
		}
		send()
	}
	fire()
}

func (u *udpLink) serve() {
	defer u.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := u.pc.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		up, err := u.peer(from)
		if err != nil {
			continue // the datagram is lost, as on a network
		}
		b := append([]byte(nil), buf[:n]...)
		u.later(func() { up.Write(b) })
	}
}

// peer returns the socket towards the target for client address from,
// making it (and its reply pump) on first use.
func (u *udpLink) peer(from *net.UDPAddr) (*net.UDPConn, error) {
	key := from.String()
	u.mu.Lock()
	defer u.mu.Unlock()
	if c, ok := u.peers[key]; ok {
		return c, nil
	}
	c, err := net.DialUDP("udp", nil, u.target)
	if err != nil {
		return nil, err
	}
	u.peers[key] = c
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() {
			u.mu.Lock()
			delete(u.peers, key)
			u.mu.Unlock()
			c.Close()
		}()
		buf := make([]byte, 64<<10)
		for {
			c.SetReadDeadline(time.Now().Add(udpPeerIdle))
			n, err := c.Read(buf)
			if err != nil {
				return // idle, or closed
			}
			b := append([]byte(nil), buf[:n]...)
			u.later(func() { u.pc.WriteToUDP(b, from) })
		}
	}()
	return c, nil
}
