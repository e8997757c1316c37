package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"socksd/resolve"
)

// dnsServers serves the DNS bridge on sockets systemd passed in
// (socksd-dns.socket binds 127.0.0.1:53 so socksd needs no capability).
// The bridge's Start binds only addresses it is given; these sockets are
// already bound, so they get their own miekg servers with the bridge as
// handler. The bridge's ServeDNS applies dns.allow itself.
//
// resolve could take inherited sockets itself (a Config field); until it
// does, this keeps the wiring on cmd/socksd's side.
type dnsServers struct {
	log     *zap.Logger
	servers []*dns.Server
	wg      sync.WaitGroup
}

// serveInheritedDNS starts a server for every inherited socket whose
// address dns.listen names. When systemd passed only one of UDP and TCP
// for an address, the other is bound here.
func serveInheritedDNS(b *resolve.Bridge, socks *inherited, listen []string, log *zap.Logger) (*dnsServers, error) {
	ds := &dnsServers{log: log.Named("dns")}
	if socks == nil {
		return ds, nil
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
		if err != nil {
			if pc != nil {
				pc.Close()
			}
			if ln != nil {
				ln.Close()
			}
			ds.Close()
			return nil, fmt.Errorf("dns: %s: %w", l, err)
		}
		ds.start(&dns.Server{PacketConn: pc, Handler: b})
		ds.start(&dns.Server{Listener: ln, Handler: b})
		ds.log.Info("dns bridge serving inherited socket", zap.String("listen", l))
	}
	return ds, nil
}

func (ds *dnsServers) start(s *dns.Server) {
	s.ReadTimeout, s.WriteTimeout = 2*time.Second, 2*time.Second
	s.IdleTimeout = func() time.Duration { return 10 * time.Second }
	// As the bridge's own servers: responses are dropped, everything else
	// reaches the handler, which chooses its own rcodes (miekg's default
	// would FORMERR several questions itself).
	s.MsgAcceptFunc = func(dh dns.Header) dns.MsgAcceptAction {
		if dh.Bits&(1<<15) != 0 {
			return dns.MsgIgnore
		}
		return dns.MsgAccept
	}
	up := make(chan struct{})
	s.NotifyStartedFunc = func() { close(up) }
	exited := make(chan struct{})
	ds.wg.Add(1)
	go func() {
		defer ds.wg.Done()
		defer close(exited)
		if err := s.ActivateAndServe(); err != nil {
			ds.log.Error("dns server stopped", zap.Error(err))
		}
	}()
	// A Shutdown before miekg marks the server started would fail and
	// leave it serving.
	select {
	case <-up:
		ds.servers = append(ds.servers, s)
	case <-exited:
	}
}

// Close stops every server and waits for them.
func (ds *dnsServers) Close() error {
	if ds == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, s := range ds.servers {
		errs = append(errs, s.ShutdownContext(ctx))
	}
	ds.wg.Wait()
	ds.servers = nil
	return errors.Join(errs...)
}
