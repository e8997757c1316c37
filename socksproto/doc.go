// Package socksproto is the part of the SOCKS wire layer that SOCKS4a,
// SOCKS5 and HTTP CONNECT share, so each rule exists once: which
// destination names are acceptable (ValidHostname, ParseIPLiteral), the
// commands (Command), the sans-IO Step contract (Action, ErrShortBuffer,
// ErrHandshakeOver) and the proposal 351 isolation username.
//
// Like the protocol packages built on it (socks4, socks5, httpguard) it
// imports only the standard library and knows nothing of sockets, Tor or
// logging. The shape follows Arti's tor-socksproto: one crate of codecs
// for every SOCKS version, fed bytes by a caller that owns the I/O.
package socksproto
