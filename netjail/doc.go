// Package netjail runs a program where the only way out is socksd: new
// network, mount and PID namespaces (and a user namespace when the caller
// is not root), a loopback interface and nothing else.
//
// Inside the namespaces a helper process (the same binary, re-executed
// through /proc/self/exe) sets things up and stays as PID 1:
//
//   - lo is up with a default route through it for IPv4 and IPv6, so a
//     connect() to any address produces a packet instead of ENETUNREACH;
//     nothing can leave, because lo is the only interface;
//   - nftables rules (installed over netlink, no nft binary) redirect every
//     TCP connection to a non-loopback address to the helper's forwarder on
//     127.0.0.1 / ::1, and drop every other packet to a non-loopback
//     address, which the sender sees at once as EPERM (UDP, ICMP, raw);
//   - the forwarder learns the original destination (SO_ORIGINAL_DST,
//     IP6T_SO_ORIGINAL_DST) and opens a SOCKS5 stream to socksd through its
//     Unix-socket listener, which is a file system path and so crosses
//     network namespaces; the run's isolation token is the credential;
//   - /etc/resolv.conf, /etc/nsswitch.conf and /etc/hosts are replaced in
//     the mount namespace. resolv.conf names the helper's DNS server on
//     127.0.0.1:53, which answers A and AAAA with run-local virtual
//     addresses and remembers the name: a connection to a virtual address
//     becomes a SOCKS5 hostname request, so Tor's exit resolves the name
//     and .onion names work. Other query types are refused (REFUSED for
//     PTR of a non-virtual address, NOTIMP for the rest); the helper never
//     sends a query anywhere;
//   - the program runs in a further user namespace that maps the caller's
//     uid and gid back, so it has no capability in the network namespace
//     and cannot undo the rules.
//
// When the program exits the helper exits with its status; as PID 1 of the
// PID namespace its death kills whatever the program left behind, and the
// namespaces, mounts and rules go with the last process. The outer process
// forwards signals and dies together with the helper (Pdeathsig).
package netjail
