// Package dispatch owns a client connection's life: it sniffs the protocol,
// runs the handshake under one deadline, asks a Resolver or an Upstream, and
// relays. It declares the small interfaces it needs; cmd/socksd wires the
// concrete Tor-facing types in.
package dispatch

import (
	"context"
	"io"
	"net"
	"net/netip"
	"time"

	"socksd/isolation"
	"socksd/socksproto"
)

// Protocol is the client's protocol.
type Protocol uint8

const (
	ProtoUnknown Protocol = iota // before the first byte is read, or none fits
	ProtoSOCKS4
	ProtoSOCKS4a
	ProtoSOCKS5
	ProtoHTTPConnect
	ProtoHTTP // a plain HTTP request: only ever a handshake failure
)

// Command is what the client asked for: the one command type of the SOCKS
// wire layer. A request that reaches an Upstream or a Resolver is one of
// these three; the parsers refuse the others.
type Command = socksproto.Command

const (
	CmdConnect    = socksproto.CmdConnect
	CmdResolve    = socksproto.CmdResolve    // Tor's RESOLVE (0xF0)
	CmdResolvePTR = socksproto.CmdResolvePTR // Tor's RESOLVE_PTR (0xF1)
)

// Request is a parsed client request, whatever its protocol.
type Request struct {
	Protocol Protocol
	Command  Command
	Host     string     // destination hostname; "" when IP is set
	IP       netip.Addr // destination address; invalid when Host is set
	Port     uint16

	HasAuth  bool
	Username []byte // SOCKS4 userid, SOCKS5 username, Proxy-Authorization user
	Password []byte

	ClientAddr net.Addr
	Listener   string        // the listener's configured address (its session group by default)
	Key        isolation.Key // filled in by the dispatcher from the listener's policy
	KeepAlive  bool          // the listener's Policy.KeepAlive or the stream's keep_alive, filled in with Key
	// Lifetime, when not 0, is the stream's lifetime option: new streams
	// of its identity take the identity's circuit for at most this long.
	// The upstream caps it at its own circuit lifetime.
	Lifetime time.Duration

	opts    socksproto.StreamOptions // the stream's options (applyStreamOptions)
	extAuth bool                     // the client negotiated SOCKS5 method 0x97
}

// Stream is an upstream stream whose request has been written but whose
// answer may still be pending, so the client's optimistic data can flow
// before the upstream replies.
type Stream interface {
	io.ReadWriteCloser
	CloseWrite() error
	// Await blocks until the upstream accepted the stream (nil) or refused
	// it (a *socks5.ReplyError, or any error meaning general failure).
	Await(ctx context.Context) error
}

// Upstream opens streams towards Tor. Implementations never resolve a name
// locally and never dial a destination directly.
type Upstream interface {
	// Open connects to the upstream and writes the request together with
	// early (optimistic data the client already sent), without waiting for
	// the upstream's answer. early is valid only during the call (it
	// aliases the dispatcher's pooled handshake buffer): copy it to keep it.
	Open(ctx context.Context, req *Request, early []byte) (Stream, error)
}

// Resolver answers Tor's RESOLVE and RESOLVE_PTR commands. Errors are
// *socks5.ReplyError (ReplyHostUnreachable for "no answer").
type Resolver interface {
	Resolve(ctx context.Context, req *Request) (netip.Addr, error) // req.Host → address
	ResolvePTR(ctx context.Context, req *Request) (string, error)  // req.IP → name
}
