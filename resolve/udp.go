package resolve

import (
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
// only a tenth answering. Here a few long-lived workers (GOMAXPROCS) read
// up to udpBatch datagrams per recvmmsg, answer table hits in place with a
// reused Msg and buffers, and send the answers with one sendmmsg. Queries
// that must wait on Tor (a new name, a name resolved through Tor, a mapping
// not yet on disk) go to a goroutine of their own, as with miekg, so a slow
// Tor never stalls the socket. Protocol work (unpack, pack) stays miekg's.
//
// Only sockets bound to one address take this path: on a wildcard address
// the answer must leave from the address the query came to, which miekg's
// server does with IP_PKTINFO control messages; those sockets keep it.

const (
	udpBatch   = 16   // datagrams per recvmmsg/sendmmsg
	udpReadBuf = 4096 // a query never needs more; a longer datagram is cut and fails to unpack (FORMERR)
	udpPackBuf = 4096 // our answers are one record: far below ednsSize
)

// batchConn is what ipv4.PacketConn and ipv6.PacketConn share (their
// Message is the same type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpServer serves one UDP socket with the fast path.
type udpServer struct {
	b     *Bridge
	conn  *net.UDPConn
	batch batchConn
	wg    sync.WaitGroup // workers
}

// fastUDP reports whether pc can take the fast path: a UDP socket bound to
// one address (not 0.0.0.0 or ::).
func fastUDP(pc net.PacketConn) (*net.UDPConn, bool) {
	c, ok := pc.(*net.UDPConn)
	if !ok {
		return nil, false
	}
	la, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok || la.IP.IsUnspecified() {
		return nil, false
	}
	return c, true
}

func newUDPServer(b *Bridge, c *net.UDPConn) *udpServer {
	u := &udpServer{b: b, conn: c}
	if c.LocalAddr().(*net.UDPAddr).IP.To4() != nil {
		u.batch = ipv4.NewPacketConn(c)
	} else {
		u.batch = ipv6.NewPacketConn(c)
	}
	return u
}

// start runs the workers; stop closes the socket and waits for them.
func (u *udpServer) start() {
	n := max(runtime.GOMAXPROCS(0), 2)
	for i := 0; i < n; i++ {
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			u.serve()
		}()
	}
}

func (u *udpServer) stop() error {
	err := u.conn.Close()
	u.wg.Wait()
	return err
}

// serve is one worker: read a batch, answer what the table can answer,
// hand the rest to goroutines, write the batch of answers.
func (u *udpServer) serve() {
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
		n, err := u.batch.ReadBatch(in, 0)
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
				u.b.serveSlow(u.conn, ap, req)
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
		u.writeAll(out[:k])
	}
}

// writeAll sends the answers; a failed datagram is dropped (the client
// retries), as miekg does.
func (u *udpServer) writeAll(ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := u.batch.WriteBatch(ms, 0)
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
		b.metrics.queries.WithLabelValues("none", "refused").Inc()
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
	b.metrics.queries.WithLabelValues(out.qtype, out.result).Inc()
	b.metrics.duration.WithLabelValues(out.source).Observe(time.Since(start).Seconds())
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
