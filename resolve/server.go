package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

const (
	readTimeout  = 2 * time.Second // also the wait for a TCP connection's first query
	writeTimeout = 2 * time.Second
	shutdownWait = 5 * time.Second
)

// server is one listen address: a UDP server (our fast path, udp.go, or
// miekg's on a wildcard address) and a TCP miekg server.
type server struct {
	fast     *udpServer // nil: udp serves
	udp, tcp *dns.Server
	udpConn  net.PacketConn
	udpAddr  net.Addr
	tcpAddr  net.Addr
}

// Start opens every Config.Listen address on UDP and TCP and serves them
// in the background. Listener errors are returned before anything serves.
func (b *Bridge) Start() error {
	b.startMu.Lock()
	defer b.startMu.Unlock()
	if b.closed {
		return errors.New("resolve: bridge closed")
	}
	if b.started {
		return errors.New("resolve: bridge already started")
	}
	var servers []*server
	cleanup := func() {
		for _, s := range servers {
			closeUDP(s.udpConn, s.fast)
			s.tcp.Listener.Close()
		}
	}
	for _, addr := range b.cfg.Listen {
		pc, fast, err := listenUDP(addr)
		if err != nil {
			cleanup()
			return fmt.Errorf("resolve: listen udp %s: %w", addr, err)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeUDP(pc, fast)
			cleanup()
			return fmt.Errorf("resolve: listen tcp %s: %w", addr, err)
		}
		servers = append(servers, b.newServer(pc, fast, ln))
	}
	b.started = true
	for _, s := range servers {
		b.startServer(s)
	}
	return nil
}

// Serve serves one more address on sockets bound elsewhere (systemd's
// socket activation passes them in), with everything the bridge's own
// listeners have: the allow-list, the TCP bound and backoff, Close. Call
// it after Start.
func (b *Bridge) Serve(pc net.PacketConn, ln net.Listener) error {
	b.startMu.Lock()
	defer b.startMu.Unlock()
	if b.closed || !b.started {
		return errors.New("resolve: Serve needs a started, open bridge")
	}
	b.startServer(b.newServer(pc, nil, ln))
	return nil
}

func (b *Bridge) newServer(pc net.PacketConn, fast *udpServer, ln net.Listener) *server {
	s := &server{
		fast: fast, udpConn: pc, udpAddr: pc.LocalAddr(),
		tcp: b.newDNSServer(&dns.Server{Listener: b.newTCPListener(ln)}), tcpAddr: ln.Addr(),
	}
	if fast == nil {
		s.udp = b.newDNSServer(&dns.Server{PacketConn: pc})
	}
	return s
}

// startServer serves s in the background; b.startMu is held.
func (b *Bridge) startServer(s *server) {
	b.servers = append(b.servers, s)
	if s.fast != nil {
		s.fast.start(b)
	}
	for _, srv := range s.miekg() {
		// Wait until miekg marks the server started: a Shutdown before
		// that fails ("server not started") and would leave it serving.
		up := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(up) }
		exited := make(chan struct{})
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer close(exited)
			if err := srv.ActivateAndServe(); err != nil && b.ctx.Err() == nil {
				b.log.Error("dns server stopped", zap.Error(err))
			}
		}()
		select {
		case <-up:
		case <-exited:
		}
	}
	b.log.Info("dns bridge listening", zap.Stringer("udp", s.udpAddr), zap.Stringer("tcp", s.tcpAddr),
		zap.Int("max_tcp_connections", b.cfg.MaxTCPConns), zap.Duration("tcp_idle_timeout", b.cfg.TCPIdle))
}

func closeUDP(pc net.PacketConn, fast *udpServer) {
	if fast != nil {
		fast.close() // pc is its first socket
		return
	}
	pc.Close()
}

// miekg returns the miekg servers of s.
func (s *server) miekg() []*dns.Server {
	if s.udp == nil {
		return []*dns.Server{s.tcp}
	}
	return []*dns.Server{s.udp, s.tcp}
}

func (b *Bridge) newDNSServer(s *dns.Server) *dns.Server {
	s.Handler = b
	s.ReadTimeout = readTimeout
	s.WriteTimeout = writeTimeout
	idle := b.cfg.TCPIdle
	s.IdleTimeout = func() time.Duration { return idle }
	s.MsgAcceptFunc = acceptQuery
	s.DecorateReader = func(r dns.Reader) dns.Reader { return allowReader{Reader: r, b: b} }
	return s
}

// acceptQuery replaces miekg's default accept function, which would FORMERR
// a message with zero or several questions itself: we want the allow-list
// and our own rcode choices (handler.go) to decide. Responses are dropped.
func acceptQuery(dh dns.Header) dns.MsgAcceptAction {
	if dh.Bits&(1<<15) != 0 { // QR
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}

// Addrs returns the bound UDP and TCP addresses (useful with port 0).
func (b *Bridge) Addrs() (udp, tcp []net.Addr) {
	b.startMu.Lock()
	defer b.startMu.Unlock()
	for _, s := range b.servers {
		udp = append(udp, s.udpAddr)
		tcp = append(tcp, s.tcpAddr)
	}
	return udp, tcp
}

// ListenAndServe starts the bridge and serves until ctx ends, then closes it.
func (b *Bridge) ListenAndServe(ctx context.Context) error {
	if err := b.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return b.Close()
}

// Close stops the listeners, abandons queries waiting on Tor, saves the table
// and waits for every goroutine the bridge started. The mappings stay in Tor
// (a restarted socksd loads the same table).
func (b *Bridge) Close() error {
	b.startMu.Lock()
	if b.closed {
		b.startMu.Unlock()
		return nil
	}
	b.closed = true
	servers := b.servers
	b.startMu.Unlock()

	b.lifeMu.Lock()
	b.lifeClosed = true
	b.lifeMu.Unlock()

	b.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	var firstErr error
	for _, s := range servers {
		if s.fast != nil {
			if err := s.fast.stop(); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		for _, srv := range s.miekg() {
			if err := srv.ShutdownContext(ctx); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	b.handlers.Wait()
	b.stopSaver()
	b.wg.Wait()
	return firstErr
}

// enter registers a running handler; false once the bridge is closing.
func (b *Bridge) enter() bool {
	b.lifeMu.RLock()
	defer b.lifeMu.RUnlock()
	if b.lifeClosed {
		return false
	}
	b.handlers.Add(1)
	return true
}

// allowReader answers clients outside Config.Allow with a bare REFUSED
// header before miekg parses anything, so a stranger gets no FORMERR, no
// NOTIMP and no echo of its question — and never more bytes than it sent.
type allowReader struct {
	dns.Reader
	b *Bridge
}

func (r allowReader) ReadUDP(conn *net.UDPConn, timeout time.Duration) ([]byte, *dns.SessionUDP, error) {
	for {
		m, s, err := r.Reader.ReadUDP(conn, timeout)
		if err != nil || r.b.cfg.allowed(remoteAddr(s.RemoteAddr())) {
			return m, s, err
		}
		if resp := refusedHeader(m); resp != nil {
			r.b.metrics.query("none", "refused").Inc()
			_, _ = dns.WriteToSessionUDP(conn, resp, s)
		}
	}
}

func (r allowReader) ReadTCP(conn net.Conn, timeout time.Duration) ([]byte, error) {
	for {
		m, err := r.Reader.ReadTCP(conn, timeout)
		if err != nil || r.b.cfg.allowed(remoteAddr(conn.RemoteAddr())) {
			return m, err
		}
		if resp := refusedHeader(m); resp != nil {
			r.b.metrics.query("none", "refused").Inc()
			_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			framed := append([]byte{0, byte(len(resp))}, resp...)
			if _, err := conn.Write(framed); err != nil {
				return nil, err
			}
		}
	}
}

// refusedHeader is a 12-byte REFUSED answer to query header m (RFC 1035
// §4.1.1): same ID, opcode and RD, QR and RA set, no sections. Nil if m is
// too short to be a query or is itself a response.
func refusedHeader(m []byte) []byte {
	if len(m) < 12 || m[2]&0x80 != 0 {
		return nil
	}
	return []byte{m[0], m[1], 0x80 | m[2]&0x79, 0x80 | dns.RcodeRefused, 0, 0, 0, 0, 0, 0, 0, 0}
}
