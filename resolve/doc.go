// Package resolve is socksd's DNS-to-MAPADDRESS bridge.
//
// Apps that can only speak SOCKS4 or SOCKS5-with-an-IP resolve names
// themselves. Pointed at this DNS server, they get a virtual address instead
// of a real one; the bridge tells Tor "MAPADDRESS <virtual>=<name>"
// (control-spec §3.8), so when the app connects to the virtual address
// through socksd, Tor turns it back into the name and resolves it at the exit
// (or reaches the onion service). No DNS packet ever leaves the host: the
// bridge answers from its own table or asks Tor, never another DNS server.
//
// Layout, by phase:
//
//	config.go   Config, Mode, defaults and validation
//	names.go    query names: validation, reverse (PTR) names, RFC 6761 names
//	pool.go     virtual address pools (next-fit allocation)
//	table.go    the mapping table: LRU, pins, expiry, Tor push epochs
//	handler.go  ServeDNS: one query in, one answer out
//	server.go   UDP/TCP listeners (miekg/dns), source allow-list
//	udp.go      the UDP fast path: a worker per SO_REUSEPORT socket,
//	            recvmmsg/sendmmsg, table hits answered in place
//	state.go    the table on disk: snapshot (atomic rename) + fsynced journal
//	bridge.go   Bridge: construction, mapping, Pin/Touch/Lookup, RepushAll, Expire
//	ctx.go      a lazily-timed per-query context
//	metrics.go  Prometheus collectors (no names in labels)
//
// Choices (see the tests for each):
//   - Zero or several questions: FORMERR (RFC 9619), not "answer the first"
//     as Tor's dnsserv does. Class other than IN: REFUSED. Opcode other than
//     QUERY, and every type but A, AAAA, PTR and ANY (answered as A): NOTIMP.
//   - An address is never handed to a second name while an app may still
//     hold it: reclaim takes only mappings with no live stream (Pin) whose
//     last answer is older than the TTL; otherwise the query gets SERVFAIL.
//   - The IPv6 pool defaults to a ULA /48 (fd00:5ec5:d000::/48) rather
//     than Tor's fe80::/10: a link-local address needs a zone to be used,
//     and resolvers, libc address sorting and browsers drop or demote it.
//   - Tor spells IPv6 virtual addresses in brackets in MAPADDRESS; without
//     them a SOCKS5 ATYP 4 request does not match (checked on tor 0.4.9.11).
//   - With stream attaching (__LeaveStreamsUnattached), Tor applies the
//     mapping only when the stream is attached: a virtual address standing
//     for a .onion must be attached with circuit 0, or Tor answers 551 and
//     kills the stream. Lookup tells the attacher which name it is.
package resolve
