package socksproto

import "errors"

// Action is what a sans-IO handshake (socks4.Handshake, socks5.Handshake)
// asks of its caller after one Step. The contract is the same for both:
//
//   - Step is given every byte the client sent that no earlier Step
//     consumed, and parses the next message at its start.
//   - ErrShortBuffer: the message is incomplete; nothing was consumed.
//     Keep the bytes, read more, call Step again with all of them.
//   - otherwise write Reply (if not nil) to the client and drop Consumed
//     bytes. With Done, the request is complete and the bytes after it are
//     optimistic data for the upstream. With an error, close after the
//     reply; Consumed then only says how far the parser read.
//   - ErrHandshakeOver: Step was called after Done or a failure.
type Action struct {
	Consumed int    // bytes of the input that belong to the message
	Reply    []byte // bytes to write to the client now; aliases the handshake
	Done     bool   // the request is complete
}

// Sentinel errors of the Step contract, shared by every handshake so a
// caller tests for them once whatever the protocol.
var (
	// ErrShortBuffer: the input holds no complete message yet.
	ErrShortBuffer = errors.New("socks: short buffer")
	// ErrHandshakeOver: Step called after the handshake finished or failed.
	ErrHandshakeOver = errors.New("socks: handshake already finished")

	// ErrVersion: the first byte of a message is not the protocol's
	// version. No reply is due: the peer does not speak the protocol, so
	// the connection is just closed.
	ErrVersion = errors.New("socks: wrong protocol version")
	// ErrCommand: BIND, UDP ASSOCIATE or an unknown command
	// (socks-extensions.txt §1.1: Tor supports neither BIND nor UDP).
	ErrCommand = errors.New("socks: command not supported")
	// ErrHostname: the destination name is empty or not ValidHostname.
	ErrHostname = errors.New("socks: invalid hostname")
	// ErrPortZero: CONNECT to port 0 (tor 0.4.9.11 refuses it too).
	ErrPortZero = errors.New("socks: connect to port 0")
)

// TorIsolationUsername is the SOCKS5 username of proposal 351's format 0:
// the password alone is the stream-isolation token. Every other username
// starting with the "<torS0X>" prefix is another format, which C Tor
// 0.4.9 refuses.
const (
	TorIsolationUsername = TorExtPrefix + "0"
	TorExtPrefix         = "<torS0X>"
)
