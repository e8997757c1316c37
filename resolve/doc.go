// Package resolve is socksd's DNS-to-MAPADDRESS bridge (issue 5).
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
//	state.go    the table on disk (atomic write) and back
//	bridge.go   Bridge: construction, lifecycle, hooks for the dispatcher
//	metrics.go  Prometheus collectors (no names in labels)
package resolve
