package torctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"socksd/internal/endpoint"
)

// Conn is one control-port connection. It is safe for concurrent use.
type Conn struct {
	rw io.ReadWriteCloser

	// turn serialises callers: blocked channel senders are woken in FIFO
	// order, which serves callers in the order they asked. inflight is the
	// single command slot: taken before a command is written, released by
	// the reader when its reply arrives.
	turn     chan struct{}
	inflight chan struct{}

	mu      sync.Mutex
	pending chan *Reply // reply slot of the command in flight; nil if none
	err     error       // why the connection ended
	pinfo   *ProtocolInfo
	rand    io.Reader // SAFECOOKIE client nonce source; nil = crypto/rand (tests fix it)

	done       chan struct{} // closed when the reader has stopped
	userClosed chan struct{} // closed by Close
	closeOnce  sync.Once     // closes rw exactly once
	userOnce   sync.Once
	wg         sync.WaitGroup

	// Event queue: unbounded, so a slow event consumer never stalls the
	// reader (and with it every command's reply).
	evMu     sync.Mutex
	evQ      []Event
	evEnded  bool
	evNotify chan struct{}
	events   chan Event
}

// Dial connects to a control port: "unix:/path" or "host:port".
func Dial(ctx context.Context, addr string) (*Conn, error) {
	network, address := endpoint.Split(addr)
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("torctl: dial control port: %w", err)
	}
	return NewConn(nc), nil
}

// NewConn starts a Conn on any transport. rw.Close must unblock a pending
// Read (true of net.Conn and io.Pipe), or Close will wait for it.
func NewConn(rw io.ReadWriteCloser) *Conn {
	c := &Conn{
		rw:         rw,
		turn:       make(chan struct{}, 1),
		inflight:   make(chan struct{}, 1),
		done:       make(chan struct{}),
		userClosed: make(chan struct{}),
		evNotify:   make(chan struct{}, 1),
		events:     make(chan Event),
	}
	c.wg.Add(2)
	go c.readLoop()
	go c.deliverEvents()
	return c
}

// Events returns the channel of asynchronous events, in the order Tor sent
// them. Events are queued without bound until read: read them, or do not
// subscribe to them (SETEVENTS). When the connection ends, events already
// queued are still delivered, then the channel is closed; Close discards
// undelivered events and closes the channel at once.
func (c *Conn) Events() <-chan Event { return c.events }

// EventBacklog is the number of events queued but not yet received from
// Events (for metrics).
func (c *Conn) EventBacklog() int {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	return len(c.evQ)
}

// Done is closed when the connection has ended (Close, EOF or error).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is up, then why it ended: ErrClosed
// after Close, io.EOF if Tor closed it between replies, or the error.
func (c *Conn) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection and waits for the internal goroutines to exit.
func (c *Conn) Close() error {
	var err error
	c.userOnce.Do(func() {
		c.setErr(ErrClosed)
		close(c.userClosed)
		c.closeOnce.Do(func() { err = c.rw.Close() })
	})
	c.wg.Wait()
	return err
}

// setErr records the first reason the connection ended.
func (c *Conn) setErr(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// fail ends the connection because of err (read error, protocol error,
// failed write): a desynchronised stream is never reused.
func (c *Conn) fail(err error) {
	c.setErr(err)
	c.closeOnce.Do(func() { c.rw.Close() })
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	lr := newLineReader(ackingReader(c.rw), MaxLineLength)
	var a assembler
	var err error
	for {
		var line []byte
		line, err = lr.next()
		if err != nil {
			if err == io.EOF && a.midMessage() {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		var lines []ReplyLine
		lines, err = a.feed(line)
		if err != nil {
			break
		}
		if lines == nil {
			continue
		}
		if lines[0].Code >= 600 {
			c.pushEvent(lines)
			continue
		}
		if err = c.deliverReply(lines); err != nil {
			break
		}
	}
	c.fail(err)
	// Wake the command in flight, if any: Do selects on done.
	close(c.done)
	c.evMu.Lock()
	c.evEnded = true
	c.evMu.Unlock()
	c.notifyEvents()
}

func (c *Conn) deliverReply(lines []ReplyLine) error {
	c.mu.Lock()
	p := c.pending
	c.pending = nil
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: %d %s", ErrUnexpectedReply, lines[0].Code, lines[0].Text)
	}
	p <- &Reply{Code: lines[len(lines)-1].Code, Lines: lines} // buffered: never blocks
	<-c.inflight                                              // the command slot is free again
	return nil
}

func (c *Conn) pushEvent(lines []ReplyLine) {
	text := lines[0].Text
	typ, _, _ := strings.Cut(text, " ")
	c.evMu.Lock()
	c.evQ = append(c.evQ, Event{Type: typ, Text: text, Lines: lines, Received: time.Now()})
	c.evMu.Unlock()
	c.notifyEvents()
}

func (c *Conn) notifyEvents() {
	select {
	case c.evNotify <- struct{}{}:
	default:
	}
}

// deliverEvents moves events from the unbounded queue to the channel.
func (c *Conn) deliverEvents() {
	defer c.wg.Done()
	defer close(c.events)
	for {
		c.evMu.Lock()
		if len(c.evQ) > 0 {
			ev := c.evQ[0]
			c.evQ[0] = Event{}
			c.evQ = c.evQ[1:]
			if len(c.evQ) == 0 {
				c.evQ = nil // let the backing array go
			}
			c.evMu.Unlock()
			select {
			case c.events <- ev:
			case <-c.userClosed:
				return
			}
			continue
		}
		ended := c.evEnded
		c.evMu.Unlock()
		if ended {
			return
		}
		select {
		case <-c.evNotify:
		case <-c.userClosed:
			return
		}
	}
}

// acquire takes the caller's turn, in FIFO order. A turn may span several
// commands (Authenticate); release gives it back.
func (c *Conn) acquire(ctx context.Context) error {
	select {
	case <-c.done:
		return c.endErr()
	default:
	}
	select {
	case c.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.endErr()
	}
}

func (c *Conn) release() { <-c.turn }

// endErr is the error returned to commands once the connection has ended.
func (c *Conn) endErr() error {
	err := c.Err()
	if err == nil {
		err = ErrClosed
	}
	if errors.Is(err, ErrClosed) {
		return err
	}
	return fmt.Errorf("torctl: connection lost: %w", err)
}

// Do sends one command and returns its reply. A CRLF is appended; a command
// may contain "\r\n" for "+" multi-line commands (the caller then supplies
// the data block, see DotStuff). If any line of the reply is not 2xx, Do
// returns the reply together with an *Error for the first such line.
//
// If ctx ends before the command is written, nothing is sent. If it ends
// after, Do returns ctx.Err() at once but the reply is still consumed by the
// reader, and the next command is written only after it has arrived.
func (c *Conn) Do(ctx context.Context, command string) (*Reply, error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.release()
	r, err := c.roundTrip(ctx, command)
	if err != nil {
		return r, err
	}
	return r, r.err()
}

// roundTrip writes command and waits for its reply; the caller holds the
// turn. The in-flight slot is taken here and released by the reader when the
// reply arrives, so a reply abandoned by a cancelled caller is still
// consumed before anything else is written.
func (c *Conn) roundTrip(ctx context.Context, command string) (*Reply, error) {
	select {
	case c.inflight <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.endErr()
	}
	if err := ctx.Err(); err != nil {
		<-c.inflight
		return nil, err
	}
	ch := make(chan *Reply, 1)
	c.mu.Lock()
	c.pending = ch
	c.mu.Unlock()
	if err := c.write(ctx, command+"\r\n"); err != nil {
		// A partly written command would desynchronise the stream.
		c.fail(fmt.Errorf("torctl: write: %w", err))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.endErr()
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		select {
		case r := <-ch:
			return r, nil
		default:
		}
		return nil, c.endErr()
	}
}

// write writes s; a context that ends mid-write aborts the write through the
// transport's write deadline when it has one. Any write error is fatal to the
// connection (a partial command would desynchronise it).
func (c *Conn) write(ctx context.Context, s string) error {
	d, ok := c.rw.(interface{ SetWriteDeadline(time.Time) error })
	if !ok || ctx.Done() == nil {
		_, err := io.WriteString(c.rw, s)
		return err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		d.SetWriteDeadline(time.Unix(1, 0))
		close(fired)
	})
	_, err := io.WriteString(c.rw, s)
	if !stop() {
		// The deadline was (being) set: wait for it, then clear it so a
		// write that completed in time does not poison the next command.
		<-fired
		d.SetWriteDeadline(time.Time{})
	}
	return err
}
