package netjail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"socksd/chain"
	"socksd/dispatch"
	"socksd/internal/backoff"
	"socksd/isolation"
)

// forwarder accepts the connections nftables redirected and opens a
// SOCKS5 stream to socksd for each, with the run's isolation credentials.
type forwarder struct {
	up    *chain.Upstream
	names *table
	key   isolation.Key
	// warn prints the one line a user sees when socksd is unreachable.
	warn func(string)
	// down is set while socksd is unreachable, so the line is printed once
	// per outage, not once per connection.
	down atomic.Bool
	wg   sync.WaitGroup
}

// runKey is the isolation key the forwarder's streams carry. socksd sees
// it as the password of a "<torS0X>0" login (the chain package's form)
// and isolates on it like any other credentials, so every run (or every
// identity) gets circuits of its own.
func runKey(token string) isolation.Key {
	p := isolation.Policy{Fields: isolation.SOCKSAuth, SessionGroup: "socksd run"}
	return p.Key(isolation.Input{HasAuth: true, Username: []byte("socksd-run"), Password: []byte(token)})
}

// serve accepts on ln until it is closed.
func (f *forwarder) serve(ln *net.TCPListener) {
	var wait backoff.Accept
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning; a Close
			// meanwhile ends the loop at the next Accept.
			backoff.Sleep(wait.Next(), nil)
			continue
		}
		wait.Reset()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.handle(c)
		}()
	}
}

// target turns an original destination into the SOCKS request: a virtual
// address becomes the name the resolver handed it out for; an address
// that is virtual but unknown (never handed out) has no destination.
func (f *forwarder) target(dst netip.AddrPort) (dispatch.Request, error) {
	req := dispatch.Request{Protocol: dispatch.ProtoSOCKS5, Command: dispatch.CmdConnect, Port: dst.Port(), Key: f.key}
	a := dst.Addr().Unmap()
	if isVirtual(a) {
		name, ok := f.names.lookup(a)
		if !ok {
			return req, fmt.Errorf("netjail: %v is a virtual address this run never handed out", a)
		}
		req.Host = name
		return req, nil
	}
	req.IP = a
	return req, nil
}

func (f *forwarder) handle(c *net.TCPConn) {
	dst, err := originalDst(c)
	if err != nil {
		reset(c)
		return
	}
	req, err := f.target(dst)
	if err != nil {
		reset(c)
		return
	}
	ctx := context.Background()
	s, err := f.up.Open(ctx, &req, nil)
	if err != nil {
		if errors.Is(err, chain.ErrDial) {
			if !f.down.Swap(true) {
				f.warn(fmt.Sprintf("cannot reach socksd (%v): the program's connections fail until it is back", errors.Unwrap(err)))
			}
		}
		reset(c)
		return
	}
	if f.down.Swap(false) {
		f.warn("socksd is reachable again")
	}
	st := s.(*chain.Stream)
	up := st.Conn() // socksd's Unix socket
	// The program's first bytes (a TLS hello, an HTTP request) go upstream
	// while Tor builds the stream: optimistic data, as socksd's own relay
	// does; Tor holds them until the stream is open. TCPConn.WriteTo and
	// ReadFrom with a *net.UnixConn on the other side splice(2): the
	// bytes never enter this process.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		c.WriteTo(up)
		st.CloseWrite()
	}()
	// fail ends both sides after the stream was opened: the program sees
	// a reset, and the upload goroutine ends with socksd's side.
	fail := func() {
		reset(c)
		st.Close()
		<-sent
	}
	if err := st.Await(ctx); err != nil {
		fail()
		return
	}
	if rest := st.Rest(); len(rest) > 0 {
		if _, err := c.Write(rest); err != nil {
			fail()
			return
		}
	}
	if _, err := c.ReadFrom(up); err != nil {
		fail()
		return
	}
	c.CloseWrite()
	<-sent
	st.Close()
	c.Close()
}

// reset closes c with an RST: the program sees ECONNRESET at once, the
// nearest a redirected connection (already accepted by the kernel) can
// come to ECONNREFUSED.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}
