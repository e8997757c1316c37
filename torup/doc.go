// Package torup is socksd's Tor upstream: data goes to Tor's
// SocksPort, decisions go over its control port.
//
// Data path. Every client stream gets its own connection to the SocksPort
// (package chain), carrying the stream's isolation key as SOCKS5
// credentials (<torS0X>0 / key digest) pipelined with the request and the
// client's optimistic data. The SocksPort is discovered with GETINFO
// net/listeners/socks (the ExtendedErrors one preferred, then a Unix socket
// this process may open: no loopback TCP hop) unless configured,
// and rediscovered after every reconnect (a managed tor's port changes).
//
// Control path (Controller). socksd authenticates, subscribes to STREAM,
// CIRC, CIRC_MINOR, ADDRMAP, STATUS_CLIENT and CONF_CHANGED, sets
// __LeaveStreamsUnattached=1 and attaches every one of its streams itself
// (the attacher). While the control connection is down, Open and Resolve
// fail at once with 0x01 (ErrControlDown): socksd never forwards a stream
// it cannot place. A connection that stays open but stops answering (a
// stopped or wedged tor: no EOF) is caught by a liveness probe: GETINFO
// version after 12s without an event, closed if unanswered within 5s. It
// reconnects with backoff, re-authenticates,
// re-subscribes, re-sets its configuration, realigns with Tor (GETINFO
// stream-status, circuit-status) and runs the OnReconnect hooks (the DNS
// bridge re-pushes its MAPADDRESS table there). Concurrent MAPADDRESS
// calls (Controller.MapAddress) share one multi-pair command while another
// is in flight (control-spec §3.8 answers one line per pair), since torctl
// runs one command at a time. A clean exit resets
// __LeaveStreamsUnattached and hands socksd's waiting streams back.
//
// Circuits (attacher). A stream is socksd's when STREAM NEW's SOURCE_ADDR
// is the local address of one of its SocksPort connections (registered in
// chain's OnConnect hook, before the request is written), or failing that
// when its credentials carry a key socksd has a live connection for. Each
// key gets circuits socksd built with EXTENDCIRCUIT 0 (Tor's own path
// selection), one build in flight per key, streams queued until BUILT:
//
//   - CONNECT streams use CONTROLLER-purpose circuits. Tor rejects
//     "EXTENDCIRCUIT 0 purpose=controller" (551), so the circuit is launched
//     GENERAL and switched with SETCIRCUITPURPOSE before it can be built.
//     Tor never puts a stream of its own choosing on a CONTROLLER circuit,
//     so only one key's streams ever share one.
//   - RESOLVE streams (NEWRESOLVE) use GENERAL circuits of their own, per
//     key: attaching one to a CONTROLLER circuit aborts tor 0.4.9.11
//     (assertion in connection_ap_handshake_send_resolve). Tor could put
//     its own pending streams on a fresh GENERAL circuit at BUILT; a
//     circuit on which a stream socksd did not attach shows up is retired.
//   - A circuit is reused until circuit_lifetime after its first stream
//     (Tor's MaxCircuitDirtiness rule), or longer while it carries streams
//     when the listener has keep_alive; then it is retired and closed once
//     idle (CLOSECIRCUIT IfUnused; a janitor sweeps every 30s because Tor
//     never expires CONTROLLER circuits). NewIdentity (SIGNAL NEWNYM)
//     retires every circuit.
//   - A warm pool (pool.go) keeps clean CONTROLLER circuits, built the
//     same way and never used, sized from the recent demand for new
//     circuits: a key that needs a circuit takes one whose exit's policy
//     summary accepts the stream's port, at once, for good. It empties
//     without demand (5 minutes), on NEWNYM, and closes circuits unused
//     for circuit_lifetime.
//   - Build failures: FAILED, CIRC_MINOR PURPOSE_CHANGED to
//     MEASURE_TIMEOUT (Tor's build-time measurement takes over a GENERAL
//     circuit silently), or no answer within 30s: another build, up to 8 in
//     a row, then the key's waiting streams are closed (0x01).
//   - ATTACHSTREAM 552/551 (the circuit or stream is gone / cannot take
//     it): the circuit is retired and the stream placed again; 555 (not
//     waiting for a controller): left alone. A stream is attached at most
//     4 times, then handed back to Tor, which still isolates it by the
//     credentials carrying its key.
//   - DETACHED (the exit refused, REASON=END): placed again, avoiding that
//     exit for that stream, as Tor's own retry would.
//   - .onion streams go back to Tor with circuit 0 (it builds the
//     rendezvous circuit; attaching one to another circuit kills it), and
//     so do .exit names (Tor builds a circuit to the named exit, or
//     refuses the name without AllowDotExit). Tor reports a stream to a
//     DNS-bridge virtual address by the address and applies MAPADDRESS only
//     at ATTACHSTREAM (its STREAM REMAP comes after), so the attacher asks
//     the bridge's table (Tor.SetVirtualLookup) what an address stands for
//     and treats an address for a .onion or .exit name like the name.
//   - Streams that are not socksd's are handed back with circuit 0 when
//     they wait for a controller (CONTROLLER_WAIT); those carrying
//     <torS0X>0 credentials, and unknown ones found waiting at start-up (a
//     crashed predecessor's), after a 2s grace so another socksd on the
//     same Tor can attach its own. PURPOSE=DIR_* streams are Tor's: ignored.
//   - A stream not answered after socks_timeout is closed with CLOSESTREAM
//     reason TIMEOUT, which Tor answers with SOCKS 0x06.
//
// Replies. Tor's SOCKS reply (F0-F7 with ExtendedErrors) is the client's
// reply; when it is the generic 0x01 (or missing), the STREAM event's
// REASON/REMOTE_REASON refines it the way C Tor maps end reasons
// (CONNECTREFUSED 0x05, RESOLVEFAILED 0x04, EXITPOLICY 0x02, TIMEOUT 0x06),
// and socksd's own socks_timeout close is 0x06.
//
// Managed tor (package launch): with no control port configured or found,
// no [tor] socks and launch = "auto" (or launch = "always"), socksd starts
// tor with its own DataDirectory, a Unix-socket control port with cookie
// authentication, a Unix-socket SocksPort with ExtendedErrors (TCP
// 127.0.0.1:auto when the path is too long), an empty
// defaults torrc, __OwningControllerProcess plus TAKEOWNERSHIP, and
// [tor] torrc_extra appended; it restarts tor when it dies and stops it on
// Close.
package torup
