package torup

import (
	"context"
	"sync"
	"time"

	"socksd/isolation"
	"socksd/socksproto"
)

// torS0X0 is the SOCKS5 username chain sends: "the password alone is the
// isolation token" (socks-extensions.txt, extended usernames). The
// password is the isolation key's hex digest.
const torS0X0 = socksproto.TorIsolationUsername

// registration is one of socksd's own connections to Tor's SocksPort. It is
// registered by the local address of that connection before the SOCKS
// request is written, so by the time Tor reports the stream (STREAM NEW with
// SOURCE_ADDR = that address) the attacher knows the stream's isolation key.
// The attacher reports the stream's end back through it, which is how a
// generic SOCKS failure is refined from REASON/REMOTE_REASON.
type registration struct {
	key       isolation.Key
	local     string
	keepAlive bool          // the request's listener or stream has keep_alive
	lifetime  time.Duration // the stream's lifetime option; 0: circuit_lifetime

	mu       sync.Mutex
	streamID string
	outcome  streamOutcome
	ended    bool
	done     chan struct{} // closed when the stream's last event was seen
	// answered: Tor's SOCKS reply said success, the stream relays. Until
	// then the stream is still being placed, and abort (set while its
	// reply is awaited) fails it when the control connection is lost.
	answered bool
	aborted  bool
	abort    context.CancelFunc
}

// streamOutcome is how Tor ended (or answered) a stream.
type streamOutcome struct {
	Status       string // SUCCEEDED, FAILED, CLOSED
	Reason       string
	RemoteReason string
	TimedOut     bool // socksd closed it after socks_timeout
}

func newRegistration(key isolation.Key, local string) *registration {
	return &registration{key: key, local: local, done: make(chan struct{})}
}

func (r *registration) setStream(id string) {
	r.mu.Lock()
	r.streamID = id
	r.mu.Unlock()
}

// markTimedOut records that socksd itself closed the stream for waiting
// longer than socks_timeout.
func (r *registration) markTimedOut() {
	r.mu.Lock()
	r.outcome.TimedOut = true
	r.mu.Unlock()
}

// finish records the stream's final status once.
func (r *registration) finish(status, reason, remote string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.ended = true
	r.outcome.Status, r.outcome.Reason, r.outcome.RemoteReason = status, reason, remote
	close(r.done)
}

// awaiting installs the cancel function of the wait for Tor's reply, or
// calls it at once if the registration was aborted already.
func (r *registration) awaiting(cancel context.CancelFunc) {
	r.mu.Lock()
	r.abort = cancel
	aborted := r.aborted
	r.mu.Unlock()
	if aborted {
		cancel()
	}
}

// markAnswered records that Tor answered the request with success: the
// stream is no longer being placed, and losing the control connection
// must not cut it.
func (r *registration) markAnswered() {
	r.mu.Lock()
	r.answered, r.abort = true, nil
	r.mu.Unlock()
}

// wasAborted reports whether the control connection was lost while the
// stream was being placed.
func (r *registration) wasAborted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.aborted
}

// abortPending fails every stream still being placed (fail closed: with
// the control connection gone nobody attaches it, and a frozen Tor would
// never answer it) and returns how many.
func (g *registry) abortPending() int {
	g.mu.Lock()
	var cancels []context.CancelFunc
	n := 0
	for _, r := range g.byLocal {
		r.mu.Lock()
		if !r.answered && !r.aborted {
			r.aborted = true
			n++
			if r.abort != nil {
				cancels = append(cancels, r.abort)
			}
		}
		r.mu.Unlock()
	}
	g.mu.Unlock()
	for _, c := range cancels {
		c()
	}
	return n
}

func (r *registration) result() streamOutcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outcome
}

// registry maps socksd's live SocksPort connections to isolation keys.
type registry struct {
	mu      sync.Mutex
	byLocal map[string]*registration
	// byCred counts live registrations per key digest: the fallback when
	// Tor gives no usable SOURCE_ADDR (a unix-socket SocksPort), matched on
	// the <torS0X>0 credentials chain sends.
	byCred map[string]*credRef
}

type credRef struct {
	key isolation.Key
	n   int
}

func newRegistry() *registry {
	return &registry{byLocal: make(map[string]*registration), byCred: make(map[string]*credRef)}
}

func (g *registry) add(r *registration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.byLocal[r.local] = r
	s := r.key.String()
	c := g.byCred[s]
	if c == nil {
		c = &credRef{key: r.key}
		g.byCred[s] = c
	}
	c.n++
}

func (g *registry) remove(r *registration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byLocal[r.local] == r {
		delete(g.byLocal, r.local)
	}
	s := r.key.String()
	if c := g.byCred[s]; c != nil {
		if c.n--; c.n <= 0 {
			delete(g.byCred, s)
		}
	}
}

// lookup identifies a stream as socksd's. reg is nil when only the
// credentials matched.
func (g *registry) lookup(source, user, pass string) (key isolation.Key, reg *registration, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.byLocal[source]; r != nil && source != "" {
		return r.key, r, true
	}
	if user == torS0X0 {
		if c := g.byCred[pass]; c != nil {
			return c.key, nil, true
		}
	}
	return isolation.Key{}, nil, false
}

func (g *registry) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.byLocal)
}
