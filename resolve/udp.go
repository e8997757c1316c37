package resolve

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The UDP fast path. miekg's dns.Server starts a goroutine per packet, sets
// a read deadline per read and sends every answer with sendmsg plus a
// control message: under load the profile of the bridge was a third
// sendmsg/recvmsg, a sixth goroutine start, stack growth and scheduling, and
// only a tenth answering. Here long-lived workers (one per socket) read
// up to udpBatch datagrams per recvmmsg, answer table hits in place with a
// reused Msg and buffers, and send the answers with one sendmmsg. Queries
// that must wait on Tor (a new name, a name resolved through Tor, a mapping
// not yet on disk) go to a goroutine of their own, as with miekg, so a slow
// Tor never stalls the socket. Protocol work (unpack, pack) stays miekg's.
//
// Only sockets bound to one address take this path: on a wildcard address
// the answer must leave from the address the query came to, which miekg's
// server does with IP_PKTINFO control messages; those sockets keep it
// (listenUDP).

const (
	udpBatch   = 16   // datagrams per recvmmsg/sendmmsg
	udpReadBuf = 4096 // a query never needs more; a longer datagram is cut and fails to unpack (FORMERR)
	udpPackBuf = 4096 // our answers are one record: far below ednsSize

	maxUDPSockets = 8 // per listen address
)

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share (their
// Message is the same type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpServer serves one listen address with the fast path: one worker per
// socket. Workers sharing one socket would take turns on its read lock, and
// each hand-over wakes another thread: the profile showed those wake-ups.
type udpServer struct {
	b     *Bridge
	conns []*net.UDPConn
	wg    sync.WaitGroup // workers
}

// listenUDP opens addr for UDP. A literal, specific IP address gets the fast
// path: GOMAXPROCS sockets (at most maxUDPSockets) in one SO_REUSEPORT group where the platform
// spreads datagrams over them, one socket elsewhere. In a reuseport group
// Linux admits only sockets of the same user. A second socksd on the same
// address would join it, but Start then fails on the TCP listener (bound
// without SO_REUSEPORT) and closes the UDP sockets again: as before, the
// second instance does not start (TestSecondBridgeSameAddress).
// A wildcard address or a host name gets one socket and miekg's server
// (fast is nil) — with a host name we cannot know the address before the
// system resolved it, and listening is no place for a lookup of ours.
func listenUDP(addr string) (pc net.PacketConn, fast *udpServer, err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	ip, perr := netip.ParseAddr(host)
	if perr != nil || ip.IsUnspecified() {
		pc, err = net.ListenPacket("udp", addr)
		return pc, nil, err
	}
	n := 1
	lc := net.ListenConfig{}
	if canReusePort && runtime.GOMAXPROCS(0) > 1 {
		// A few sockets carry any local app's load; each worker holds
		// about 128 KiB of buffers.
		n = min(runtime.GOMAXPROCS(0), maxUDPSockets)
		lc.Control = setReusePort
	}
	ctx := context.Background()
	if pc, err = lc.ListenPacket(ctx, "udp", addr); err != nil {
		return nil, nil, err
	}
	c, ok := pc.(*net.UDPConn)
	if !ok { // cannot happen for "udp"; serve it the plain way
		return pc, nil, nil
	}
	fast = &udpServer{conns: []*net.UDPConn{c}}
	for len(fast.conns) < n {
		// The same address and the port the first socket got (port 0).
		more, err := lc.ListenPacket(ctx, "udp", c.LocalAddr().String())
		if err != nil {
			fast.close()
			return nil, nil, err
		}
		fast.conns = append(fast.conns, more.(*net.UDPConn))
	}
	return pc, fast, nil
}

// start runs the workers; stop closes the sockets and waits for them.
func (u *udpServer) start(b *Bridge) {
	u.b = b
	for _, c := range u.conns {
		var bc batchConn = ipv6.NewPacketConn(c)
		if c.LocalAddr().(*net.UDPAddr).IP.To4() != nil {
			bc = ipv4.NewPacketConn(c)
		}
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			u.serve(c, bc)
		}()
	}
}

func (u *udpServer) close() error {
	var first error
	for _, c := range u.conns {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (u *udpServer) stop() error {
	err := u.close()
	u.wg.Wait()
	return err
}

// serve is one worker: read a batch, answer what the table can answer,
// hand the rest to goroutines, write the batch of answers.
func (u *udpServer) serve(conn *net.UDPConn, bc batchConn) {
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, udpBatch)
	packBufs := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, udpReadBuf)}
		out[i].Buffers = [][]byte{nil}
		packBufs[i] = make([]byte, udpPackBuf)
	}
	req := new(dns.Msg)
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// ICMP errors from an earlier answer (ECONNREFUSED) and the
			// like are about one client, not the socket.
			u.b.log.Debug("udp read", zap.Error(err))
			continue
		}
		k := 0
		for i := 0; i < n; i++ {
			ua, ok := in[i].Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			ap := ua.AddrPort()
			resp, slow := u.b.handlePacket(in[i].Buffers[0][:in[i].N], ap.Addr().Unmap(), req, packBufs[k])
			if slow {
				u.b.serveSlow(conn, ap, req)
				req = new(dns.Msg) // the goroutine owns the old one
				continue
			}
			if resp == nil {
				continue
			}
			out[k].Buffers[0] = resp
			out[k].Addr = ua
			k++
		}
		u.writeAll(bc, out[:k])
	}
}

// writeAll sends the answers; a failed datagram is dropped (the client
// retries), as miekg does.
func (u *udpServer) writeAll(bc batchConn, ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := bc.WriteBatch(ms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			u.b.log.Debug("udp write", zap.Error(err))
			n = max(n, 1) // skip the datagram the kernel refused
		}
		ms = ms[n:]
	}
}

// handlePacket answers one UDP datagram pkt from src the way miekg's server
// plus ServeDNS would, packing the answer into buf (nil: send nothing).
// slow: the query needs Tor or the disk; req holds it, unpacked, for
// serveSlow. req is reused: it is overwritten by every call.
func (b *Bridge) handlePacket(pkt []byte, src netip.Addr, req *dns.Msg, buf []byte) (resp []byte, slow bool) {
	if len(pkt) < 12 || pkt[2]&0x80 != 0 {
		return nil, false // too short for a header, or a response: drop (acceptQuery)
	}
	if !b.cfg.allowed(src) {
		// As allowReader: a bare header, before anything is parsed.
		b.metrics.query("none", "refused").Inc()
		return append(buf[:0], refusedHeader(pkt)...), false
	}
	if !b.enter() {
		return nil, false // closing
	}
	defer b.handlers.Done()
	if err := req.Unpack(pkt); err != nil {
		// miekg's server: FORMERR with the header and what did unpack,
		// outside ServeDNS (no metrics).
		req.SetRcodeFormatError(req)
		req.Zero = false
		req.Ns, req.Answer, req.Extra = nil, nil, nil
		return b.pack(req, buf), false
	}
	start := time.Now()
	m, out, wait := b.answer(b.ctx, src, req, true)
	if wait {
		return nil, true
	}
	if m == nil {
		return nil, false
	}
	resp = b.pack(m, buf)
	b.metrics.query(out.qtype, out.result).Inc()
	b.metrics.took(out.source).Observe(time.Since(start).Seconds())
	return resp, false
}

func (b *Bridge) pack(m *dns.Msg, buf []byte) []byte {
	p, err := m.PackBuffer(buf)
	if err != nil {
		b.log.Debug("packing answer", zap.Error(err))
		return nil
	}
	return p
}

// serveSlow answers req on its own goroutine, through ServeDNS, and sends
// the answer from conn to dst.
func (b *Bridge) serveSlow(conn *net.UDPConn, dst netip.AddrPort, req *dns.Msg) {
	if !b.enter() {
		return
	}
	go func() {
		defer b.handlers.Done()
		b.ServeDNS(&udpWriter{conn: conn, dst: dst}, req)
	}()
}

// udpWriter is the dns.ResponseWriter of a slow query.
type udpWriter struct {
	conn *net.UDPConn
	dst  netip.AddrPort
}

func (w *udpWriter) LocalAddr() net.Addr  { return w.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.dst) }
func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	p, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(p)
	return err
}
func (w *udpWriter) Write(p []byte) (int, error) { return w.conn.WriteToUDPAddrPort(p, w.dst) }
func (w *udpWriter) Close() error                { return nil }
func (w *udpWriter) TsigStatus() error           { return nil }
func (w *udpWriter) TsigTimersOnly(bool)         {}
func (w *udpWriter) Hijack()                     {}
func (w *udpWriter) Network() string             { return "udp" }
