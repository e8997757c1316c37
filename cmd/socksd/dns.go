package main

import (
	"fmt"
	"net"

	"go.uber.org/zap"

	"socksd/resolve"
)

// serveInheritedDNS hands the bridge the sockets systemd passed in for
// the addresses dns.listen names (socksd-dns.socket binds 127.0.0.1:53
// so socksd needs no capability). When systemd passed only one of UDP
// and TCP for an address, the other is bound here. The bridge serves and
// closes them like its own listeners.
func serveInheritedDNS(b *resolve.Bridge, socks *inherited, listen []string, log *zap.Logger) error {
	if socks == nil {
		return nil
	}
	for _, l := range listen {
		pc := socks.takePacket(l)
		ln := socks.take(l)
		if pc == nil && ln == nil {
			continue // the bridge bound it itself
		}
		var err error
		if pc == nil {
			pc, err = net.ListenPacket("udp", l)
		} else if ln == nil {
			ln, err = net.Listen("tcp", l)
		}
		if err == nil {
			err = b.Serve(pc, ln)
		}
		if err != nil {
			if pc != nil {
				pc.Close()
			}
			if ln != nil {
				ln.Close()
			}
			return fmt.Errorf("dns: %s: %w", l, err)
		}
		log.Named("dns").Info("dns bridge serving inherited socket", zap.String("listen", l))
	}
	return nil
}
