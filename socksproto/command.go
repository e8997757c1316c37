package socksproto

// Command is what a client asks for, with its wire value: SOCKS4's CD and
// SOCKS5's CMD share the values (RFC 1928 §4, socks-extensions.txt §2),
// and an HTTP CONNECT is CmdConnect.
type Command byte

const (
	CmdConnect      Command = 0x01
	CmdBind         Command = 0x02 // not supported (socks-extensions.txt §1.1)
	CmdUDPAssociate Command = 0x03 // SOCKS5 only; not supported
	CmdResolve      Command = 0xF0 // Tor: forward lookup, answer in the reply's address
	CmdResolvePTR   Command = 0xF1 // Tor, SOCKS5 only: reverse lookup, answer as a hostname
)

// commandRule is what socksd does with one command: which SOCKS versions
// may send it (an HTTP CONNECT is always CmdConnect) and whether it is a
// lookup, answered by dispatch's Resolver in the reply with no stream.
type commandRule struct {
	socks4, socks5, lookup bool
}

// rule is the one table of accepted commands; every parser refuses a
// command it does not list (ErrCommand). A new command is a constant and a
// String case above and a row here, then its answer in dispatch (see
// docs/architecture.md, "Adding a SOCKS command").
func (c Command) rule() commandRule {
	switch c {
	case CmdConnect:
		return commandRule{socks4: true, socks5: true}
	case CmdResolve:
		return commandRule{socks4: true, socks5: true, lookup: true}
	case CmdResolvePTR:
		return commandRule{socks5: true, lookup: true} // a SOCKS4 request cannot carry the IPv6 it may name
	}
	return commandRule{}
}

// Accepted reports whether a SOCKS version (4 or 5) request may carry c.
func (c Command) Accepted(version byte) bool {
	r := c.rule()
	return (version == 4 && r.socks4) || (version == 5 && r.socks5)
}

// Lookup reports whether c is answered by a name or address lookup (in the
// reply, with no stream) rather than by opening a stream.
func (c Command) Lookup() bool { return c.rule().lookup }

func (c Command) String() string {
	switch c {
	case CmdConnect:
		return "CONNECT"
	case CmdBind:
		return "BIND"
	case CmdUDPAssociate:
		return "UDP ASSOCIATE"
	case CmdResolve:
		return "RESOLVE"
	case CmdResolvePTR:
		return "RESOLVE_PTR"
	}
	return "unknown command"
}
