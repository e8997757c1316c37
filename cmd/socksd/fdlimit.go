package main

import (
	"fmt"
	"syscall"

	"go.uber.org/zap"

	"socksd/config"
)

// Descriptors a connection holds: a SOCKS client holds its own socket and
// the one to Tor's SocksPort; a DNS-over-TCP client holds one.
const fdsPerSOCKSConn = 2

// fdReserveBase is what socksd needs besides client connections: the
// Go runtime's epoll and pipes, the relay's parking epoll and splice
// pipes in flight, the control connection, a managed tor's pipes, the
// metrics listener and its scrapes, the state files, stdio.
const fdReserveBase = 64

// fdBudget fits socks.max_connections and dns.max_tcp_connections under
// RLIMIT_NOFILE. The Go runtime raises the soft limit to the hard one at
// start, so the limit read here is the one that will bite. Past it every
// accept fails with EMFILE and every new stream's dial to Tor fails too:
// a limit that cannot be reached is better than one that takes the whole
// process down. So an oversized limit is clamped (with a warning that
// names both numbers and how to raise the ceiling), as C Tor sizes its
// connection table from the rlimit; socksd refuses to start only when
// not one SOCKS connection fits.
type fdBudget struct {
	limit   uint64 // RLIMIT_NOFILE; 0 = unknown or unlimited: nothing clamped
	reserve int
	dnsTCP  int // effective dns.max_tcp_connections, fixed at start
}

func readNOFILE() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == ^uint64(0) {
		return 0
	}
	return rl.Cur
}

// fit clamps cfg's connection limits in place to what limit allows and
// logs what they are. At start (dnsTCP < 0) it also sizes the DNS
// bridge's TCP bound; on reload the bridge keeps the one it started with.
func (b *fdBudget) fit(cfg *config.Config, log *zap.Logger, atStart bool) error {
	if atStart {
		b.reserve = fdReserveBase + len(cfg.Listeners()) + 9*len(cfg.DNS.Listen) // 8 UDP sockets and a TCP listener each
		b.dnsTCP = 0
		if len(cfg.DNS.Listen) > 0 {
			b.dnsTCP = cfg.DNS.MaxTCPConns
		}
	}
	wantSOCKS, wantDNS := cfg.SOCKS.MaxConnections, b.dnsTCP
	if b.limit == 0 {
		if atStart {
			log.Info("file descriptor budget: no RLIMIT_NOFILE limit", zap.Int("max_connections", wantSOCKS), zap.Int("dns_max_tcp_connections", wantDNS))
		}
		return nil
	}
	avail := int(min(b.limit, 1<<30)) - b.reserve
	if atStart && wantDNS > 0 && wantDNS > avail/8 {
		// DNS over TCP is the rare path: at most an eighth of what is left.
		b.dnsTCP = max(avail/8, 1)
	}
	socks := min(wantSOCKS, (avail-b.dnsTCP)/fdsPerSOCKSConn)
	if socks < 1 {
		return fmt.Errorf("RLIMIT_NOFILE is %d: not one SOCKS connection fits beside the %d descriptors socksd itself needs; raise it (ulimit -n, or LimitNOFILE= in the systemd unit)", b.limit, b.reserve+b.dnsTCP)
	}
	cfg.SOCKS.MaxConnections = socks
	cfg.DNS.MaxTCPConns = b.dnsTCP
	fields := []zap.Field{zap.Uint64("nofile", b.limit),
		zap.Int("max_connections", socks), zap.Int("dns_max_tcp_connections", b.dnsTCP)}
	if socks < wantSOCKS || (atStart && b.dnsTCP < wantDNS) {
		log.Warn(fmt.Sprintf("connection limits lowered to fit the open-file limit (socks.max_connections %d -> %d, dns.max_tcp_connections %d -> %d); raise it with ulimit -n or LimitNOFILE= to keep the configured values",
			wantSOCKS, socks, wantDNS, b.dnsTCP), fields...)
		return nil
	}
	if atStart {
		log.Info("file descriptor budget", fields...)
	}
	return nil
}
