// Package torctltest is a scripted fake Tor control port for unit tests.
//
// A Server listens on loopback (New) or serves one end of a net.Pipe (Pipe).
// It reads command lines, records them, and answers from a script:
//
//	s := torctltest.New(t)
//	s.AcceptNullAuth()
//	s.Expect("SETEVENTS STREAM CIRC", "250 OK")
//	s.ExpectRegexp(`^ATTACHSTREAM 153 \d+$`, "250 OK")
//	s.Handle(`^GETINFO version$`, func(string) string { return "250-version=Tor 0.4.9.11\n250 OK" })
//	s.Push("650 STREAM 153 NEW 0 example.test:80 PURPOSE=USER")
//	... run the client against s.Addr() ...
//	s.Done(ctx) // every expectation met, no unexpected command
//
// Replies and pushed text are written line by line: lines are separated by
// "\n" in the Go string and sent with CRLF. Expectations are consumed in
// order; a command that does not match the next expectation is offered to the
// persistent handlers (Handle), and if none matches it is recorded as a
// script error and answered `510 Unrecognized command "..."` as Tor does.
//
// The package speaks only the wire protocol (it does not import torctl), so
// torctl's own tests can use it.
package torctltest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Server is a fake control port. Safe for concurrent use.
type Server struct {
	t  testing.TB
	ln net.Listener

	mu       sync.Mutex
	script   []*step
	handlers []*step
	received []string
	errs     []error
	conn     net.Conn // current connection (the latest accepted)
	conns    int
	prePush  []string // pushed before any client connected
	changed  chan struct{}
	wg       sync.WaitGroup
	closed   bool
}

type step struct {
	desc  string
	match func(string) bool
	reply func(string) string
	close bool // close the connection instead of replying
}

// New starts a Server on 127.0.0.1:0; it is closed by t.Cleanup.
func New(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("torctltest: listen: %v", err)
	}
	s := newServer(t)
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return s
}

// Pipe returns a Server serving the far end of a net.Pipe and the client end.
func Pipe(t testing.TB) (*Server, net.Conn) {
	t.Helper()
	s := newServer(t)
	client, server := net.Pipe()
	s.serveConn(server)
	return s, client
}

func newServer(t testing.TB) *Server {
	s := &Server{t: t, changed: make(chan struct{})}
	t.Cleanup(s.Close)
	return s
}

// Addr is the "host:port" to dial (New only).
func (s *Server) Addr() string { return s.ln.Addr().String() }

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.serveConn(nc)
	}
}

func (s *Server) serveConn(nc net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if s.conn != nil {
		s.conn.Close() // one client at a time, like a restarted tor
	}
	s.conn = nc
	s.conns++
	pre := s.prePush
	s.prePush = nil
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer nc.Close()
		for _, p := range pre {
			if err := s.write(nc, p); err != nil {
				return
			}
		}
		s.read(nc)
	}()
}

// read handles commands until the connection ends.
func (s *Server) read(nc net.Conn) {
	lr := newLineReader(nc)
	for {
		line, err := lr.next()
		if err != nil {
			return
		}
		reply, closeConn := s.handle(line)
		if closeConn {
			return
		}
		if reply != "" {
			if err := s.write(nc, reply); err != nil {
				return
			}
		}
	}
}

func (s *Server) handle(line string) (reply string, closeConn bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received = append(s.received, line)
	defer s.notify()
	var st *step
	if len(s.script) > 0 && s.script[0].match(line) {
		st = s.script[0]
		s.script = s.script[1:]
	} else {
		for _, h := range s.handlers {
			if h.match(line) {
				st = h
				break
			}
		}
	}
	if st == nil {
		want := "nothing (script finished)"
		if len(s.script) > 0 {
			want = s.script[0].desc
		}
		s.errs = append(s.errs, fmt.Errorf("torctltest: unexpected command %q, want %s", line, want))
		verb, _, _ := strings.Cut(line, " ")
		return fmt.Sprintf("510 Unrecognized command %q", verb), false
	}
	if st.close {
		return "", true
	}
	return st.reply(line), false
}

// notify wakes Done waiters; called with mu held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// write sends text as CRLF lines; one write per call so pushed events and
// replies never interleave mid-line.
func (s *Server) write(nc net.Conn, text string) error {
	_, err := nc.Write([]byte(crlf(text)))
	return err
}

func crlf(text string) string {
	text = strings.TrimSuffix(text, "\n")
	return strings.ReplaceAll(text, "\n", "\r\n") + "\r\n"
}

func (s *Server) add(st *step) *Server {
	s.mu.Lock()
	s.script = append(s.script, st)
	s.mu.Unlock()
	return s
}

// Expect adds an expectation: the next command is exactly cmd; answer reply.
func (s *Server) Expect(cmd, reply string) *Server {
	return s.add(&step{desc: fmt.Sprintf("%q", cmd), match: func(l string) bool { return l == cmd }, reply: fixed(reply)})
}

// ExpectRegexp adds an expectation matched by a regular expression.
func (s *Server) ExpectRegexp(re, reply string) *Server {
	rx := regexp.MustCompile(re)
	return s.add(&step{desc: "/" + re + "/", match: rx.MatchString, reply: fixed(reply)})
}

// ExpectFunc adds an expectation with a computed reply ("" sends nothing).
func (s *Server) ExpectFunc(desc string, match func(cmd string) bool, reply func(cmd string) string) *Server {
	return s.add(&step{desc: desc, match: match, reply: reply})
}

// ExpectClose: when the next command matches re, close the connection
// without answering (Tor does that after a failed AUTHENTICATE).
func (s *Server) ExpectClose(re string) *Server {
	rx := regexp.MustCompile(re)
	return s.add(&step{desc: "/" + re + "/ (then close)", match: rx.MatchString, close: true})
}

// Handle adds a persistent handler for commands matching re that are not
// the next scripted expectation (e.g. every ATTACHSTREAM in an attacher
// test). Handlers are tried in the order added.
func (s *Server) Handle(re string, reply func(cmd string) string) *Server {
	rx := regexp.MustCompile(re)
	s.mu.Lock()
	s.handlers = append(s.handlers, &step{desc: "/" + re + "/", match: rx.MatchString, reply: reply})
	s.mu.Unlock()
	return s
}

func fixed(reply string) func(string) string { return func(string) string { return reply } }

// Push sends text (e.g. "650 STREAM ...") to the current client now, or to
// the first client to connect if none is connected yet.
func (s *Server) Push(text string) {
	s.mu.Lock()
	nc := s.conn
	if nc == nil {
		s.prePush = append(s.prePush, text)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if err := s.write(nc, text); err != nil {
		s.mu.Lock()
		s.errs = append(s.errs, fmt.Errorf("torctltest: push: %w", err))
		s.mu.Unlock()
	}
}

// PushRaw sends bytes exactly as given (no CRLF conversion), for malformed
// input tests.
func (s *Server) PushRaw(b []byte) error {
	s.mu.Lock()
	nc := s.conn
	s.mu.Unlock()
	if nc == nil {
		return errors.New("torctltest: no client connected")
	}
	_, err := nc.Write(b)
	return err
}

// DropConn closes the current client connection (Tor restarting or dying).
func (s *Server) DropConn() {
	s.mu.Lock()
	nc := s.conn
	s.conn = nil
	s.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// Conns is how many client connections were accepted so far.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Received returns every command line received so far, in order.
func (s *Server) Received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.received...)
}

// WaitReceived blocks until at least n command lines have been received.
func (s *Server) WaitReceived(ctx context.Context, n int) ([]string, error) {
	for {
		s.mu.Lock()
		got, ch := len(s.received), s.changed
		s.mu.Unlock()
		if got >= n {
			return s.Received(), nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s.Received(), fmt.Errorf("torctltest: %d of %d commands received: %w", got, n, ctx.Err())
		}
	}
}

// Done waits until every expectation has been consumed, then returns the
// script errors (unexpected commands, failed pushes), if any.
func (s *Server) Done(ctx context.Context) error {
	for {
		s.mu.Lock()
		left, ch := len(s.script), s.changed
		var next string
		if left > 0 {
			next = s.script[0].desc
		}
		errs := errors.Join(s.errs...)
		s.mu.Unlock()
		if left == 0 || errs != nil {
			return errs
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("torctltest: %d expectations left, next %s: %w", left, next, ctx.Err())
		}
	}
}

// Err returns the script errors recorded so far.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// Close stops the server, closes its connections and waits for its
// goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	nc := s.conn
	s.conn = nil
	s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
	}
	if nc != nil {
		nc.Close()
	}
	s.wg.Wait()
}
