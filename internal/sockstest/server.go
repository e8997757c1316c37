// Package sockstest is a test-only SOCKS5 server standing in for Tor's
// SocksPort: it speaks RFC 1928/1929 plus Tor's RESOLVE (0xF0) and
// RESOLVE_PTR (0xF1), records what each client sent, and connects only to
// loopback destinations. It is written independently of package socks5 (in
// blocking style) so that tests of socksd's client side are not checked by
// the code under test.
package sockstest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Request is what a client asked the fake upstream.
type Request struct {
	Cmd      byte
	Host     string     // ATYP 3
	IP       netip.Addr // ATYP 1/4
	Port     uint16
	Methods  []byte
	Username []byte
	Password []byte
	Local    net.Addr // the fake's side of the connection
	Remote   net.Addr // the client's side (what a Tor attacher sees as SOURCE_ADDR)
}

// Server is a fake SOCKS5 upstream. Set the hook fields before Start.
type Server struct {
	// Hosts maps hostnames to the loopback address CONNECT and RESOLVE use.
	// "localhost" maps to 127.0.0.1 unless overridden.
	Hosts map[string]netip.Addr
	// PTR answers RESOLVE_PTR.
	PTR map[netip.Addr]string
	// Fail, if set, returns a non-zero reply code to refuse a request with.
	Fail func(r *Request) byte
	// Handle, if set, takes over a CONNECT after the request was read and
	// before any reply: it gets the buffered reader holding whatever the
	// client sent after its request, and must write the reply itself
	// (WriteReply). The server closes c when Handle returns.
	Handle func(r *Request, c net.Conn, rd *bufio.Reader)

	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	reqs []Request
	live map[net.Conn]struct{}
	done bool
}

// Start listens on 127.0.0.1:0 and serves until Close.
func (s *Server) Start() error { return s.start("tcp", "127.0.0.1:0") }

// StartUnix listens on a Unix socket at path (mode 0666, as socksd's own)
// and serves until Close: socksd's place for a client in another network
// namespace (socksd run).
func (s *Server) StartUnix(path string) error {
	if err := s.start("unix", path); err != nil {
		return err
	}
	return os.Chmod(path, 0o666)
}

func (s *Server) start(network, addr string) error {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	s.ln = ln
	s.live = map[net.Conn]struct{}{}
	s.wg.Add(1)
	go s.serve()
	return nil
}

// Addr is the "ip:port" to point socksd's upstream at.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Requests returns a copy of every request seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Close stops the listener, closes every connection and waits for all of
// the server's goroutines.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	s.done = true
	for c := range s.live {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.done {
			return false
		}
		s.live[c] = struct{}{}
	} else {
		delete(s.live, c)
	}
	return true
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if !s.track(c, true) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			defer c.Close()
			s.handle(c)
		}()
	}
}

// Sentinel errors of the fake.
var errProto = errors.New("sockstest: protocol error")

func (s *Server) handle(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(c)
	r, err := s.readRequest(c, rd)
	if err != nil {
		return
	}
	r.Local, r.Remote = c.LocalAddr(), c.RemoteAddr()
	s.mu.Lock()
	s.reqs = append(s.reqs, *r)
	s.mu.Unlock()
	c.SetReadDeadline(time.Time{})

	if s.Fail != nil {
		if code := s.Fail(r); code != 0 {
			WriteReply(c, code, nil)
			return
		}
	}
	switch r.Cmd {
	case 0xF0:
		a, ok := s.lookup(r.Host)
		if !ok {
			c.Write([]byte{5, 4, 0, 0, 0, 0, 0, 0, 0, 0}) // C Tor: ATYP 0 on failure
			return
		}
		WriteReply(c, 0, &a)
	case 0xF1:
		name, ok := s.PTR[r.IP]
		if !ok {
			c.Write([]byte{5, 4, 0, 0, 0, 0, 0, 0, 0, 0})
			return
		}
		b := []byte{5, 0, 0, 3, byte(len(name))}
		b = append(b, name...)
		c.Write(append(b, 0, 0))
	case 0x01:
		if s.Handle != nil {
			s.Handle(r, c, rd)
			return
		}
		s.connect(r, c, rd)
	default:
		WriteReply(c, 7, nil)
	}
}

func (s *Server) lookup(host string) (netip.Addr, bool) {
	if a, ok := s.Hosts[host]; ok {
		return a, true
	}
	if host == "localhost" {
		return netip.MustParseAddr("127.0.0.1"), true
	}
	return netip.Addr{}, false
}

func (s *Server) connect(r *Request, c net.Conn, rd *bufio.Reader) {
	dst := r.IP
	if r.Host != "" {
		var ok bool
		if dst, ok = s.lookup(r.Host); !ok {
			WriteReply(c, 4, nil)
			return
		}
	}
	if !dst.Unmap().IsLoopback() {
		WriteReply(c, 2, nil) // tests never leave loopback
		return
	}
	d, err := net.DialTimeout("tcp", netip.AddrPortFrom(dst, r.Port).String(), 5*time.Second)
	if err != nil {
		WriteReply(c, 5, nil)
		return
	}
	defer d.Close()
	if !s.track(d, true) {
		return
	}
	defer s.track(d, false)
	if err := WriteReply(c, 0, nil); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(d, rd) // includes optimistic data already buffered
		d.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(c, d)
	c.(interface{ CloseWrite() error }).CloseWrite() // *net.TCPConn or *net.UnixConn
	<-done
}

// WriteReply writes a SOCKS5 reply; bound nil means 0.0.0.0:0.
func WriteReply(c net.Conn, code byte, bound *netip.Addr) error {
	b := []byte{5, code, 0}
	if bound != nil && bound.Is6() && !bound.Is4In6() {
		a := bound.As16()
		b = append(b, 4)
		b = append(b, a[:]...)
	} else {
		var a [4]byte
		if bound != nil {
			a = bound.Unmap().As4()
		}
		b = append(b, 1)
		b = append(b, a[:]...)
	}
	_, err := c.Write(append(b, 0, 0))
	return err
}

func (s *Server) readRequest(c net.Conn, rd *bufio.Reader) (*Request, error) {
	r := &Request{}
	var hdr [2]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil || hdr[0] != 5 {
		return nil, errProto
	}
	r.Methods = make([]byte, hdr[1])
	if _, err := io.ReadFull(rd, r.Methods); err != nil {
		return nil, err
	}
	method := byte(0xFF)
	for _, m := range r.Methods {
		if m == 2 {
			method = 2
		} else if m == 0 && method == 0xFF {
			method = 0
		}
	}
	if _, err := c.Write([]byte{5, method}); err != nil || method == 0xFF {
		return nil, errProto
	}
	if method == 2 {
		var v [2]byte
		if _, err := io.ReadFull(rd, v[:]); err != nil || v[0] != 1 {
			return nil, errProto
		}
		r.Username = make([]byte, v[1])
		if _, err := io.ReadFull(rd, r.Username); err != nil {
			return nil, err
		}
		pl, err := rd.ReadByte()
		if err != nil {
			return nil, err
		}
		r.Password = make([]byte, pl)
		if _, err := io.ReadFull(rd, r.Password); err != nil {
			return nil, err
		}
		if _, err := c.Write([]byte{1, 0}); err != nil {
			return nil, err
		}
	}
	var req [4]byte
	if _, err := io.ReadFull(rd, req[:]); err != nil || req[0] != 5 || req[2] != 0 {
		return nil, errProto
	}
	r.Cmd = req[1]
	switch req[3] {
	case 1:
		var a [4]byte
		if _, err := io.ReadFull(rd, a[:]); err != nil {
			return nil, err
		}
		r.IP = netip.AddrFrom4(a)
	case 4:
		var a [16]byte
		if _, err := io.ReadFull(rd, a[:]); err != nil {
			return nil, err
		}
		r.IP = netip.AddrFrom16(a)
	case 3:
		n, err := rd.ReadByte()
		if err != nil {
			return nil, err
		}
		h := make([]byte, n)
		if _, err := io.ReadFull(rd, h); err != nil {
			return nil, err
		}
		r.Host = string(h)
	default:
		return nil, fmt.Errorf("%w: atyp %d", errProto, req[3])
	}
	var p [2]byte
	if _, err := io.ReadFull(rd, p[:]); err != nil {
		return nil, err
	}
	r.Port = binary.BigEndian.Uint16(p[:])
	return r, nil
}
