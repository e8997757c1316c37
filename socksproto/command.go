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
