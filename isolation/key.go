// Package isolation decides which streams may share a Tor circuit
// (proposal 171). It imports only the standard library.
package isolation

import "net/netip"

// Policy is a listener's isolation policy.
type Policy struct {
	Fields Fields
	// SessionGroup names the listener's session group. It is part of every
	// key whatever Fields says, as in Tor, where every SocksPort is its own
	// session group unless SessionGroup= joins it to another (proposal 171,
	// "Interface": streams sent to different client ports never share a
	// circuit). Callers set it to the listen address when the configuration
	// names no group; "" is a group like any other.
	SessionGroup string
	// KeepAlive keeps a key's circuit past circuit_lifetime while it
	// carries streams (Tor's KeepAliveIsolateSOCKSAuth). It is not part of
	// the key: it changes how long a key keeps its circuit, not which
	// streams share it.
	KeepAlive bool
}

// App identifies the client application owning a connection.
type App struct {
	Known bool
	UID   uint32
	Exe   string
}

// Input is everything a key can be derived from.
type Input struct {
	Protocol   string // "socks4", "socks4a", "socks5", "http-connect"
	HasAuth    bool
	Username   []byte // SOCKS4 userid, SOCKS5 / Proxy-Authorization user
	Password   []byte
	ClientAddr netip.Addr
	DestHost   string // hostname, or "" when DestIP is set
	DestIP     netip.Addr
	DestPort   uint16
	Epoch      uint64 // new-identity epoch; always part of the key
	App        App
	// Fresh, when not 0, is a value no other stream has (the stream
	// option fresh; the dispatcher numbers such streams): it is always
	// part of the key, so the stream gets a circuit of its own whatever
	// the policy.
	Fresh uint64
}

// Key is a comparable isolation identity: two streams may share a circuit
// only if their keys are equal. It holds a digest, never a credential.
type Key struct {
	sum [16]byte
}
