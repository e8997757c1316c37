package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"socksd/config"
	"socksd/dispatch"
	"socksd/internal/systemd"
	"socksd/isolation"
	"socksd/resolve"
	"socksd/torctl"
	"socksd/torup"
)

// errConfig marks a wiring failure that only a configuration change can
// fix (exit code exitConfig).
var errConfig = errors.New("configuration")

// torStartTimeout bounds finding, launching and first connecting to Tor
// at start-up. A control port that is configured but down is not waited
// for (socksd fails closed and keeps reconnecting); this only bounds a
// managed tor's start and the first authentication.
const torStartTimeout = 2 * time.Minute

// wired is everything wire() built.
type wired struct {
	srv     *dispatch.Server
	reg     *prometheus.Registry
	mux     *http.ServeMux
	tor     *torup.Tor
	bridge  *resolve.Bridge // nil when [dns] listen is empty
	track   *tracker
	closers []func() error
}

func (w *wired) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
	w.closers = nil
}

// wire builds the concrete graph: Tor upstream + resolver, the DNS bridge,
// the dispatcher and the metrics mux. It is the only place concrete
// Tor-facing types meet. socks are the sockets inherited from systemd.
func wire(cfg config.Config, log *zap.Logger, socks *inherited) (_ *wired, err error) {
	w := &wired{reg: newRegistry()}
	w.mux = newMux(w.reg)
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	t, err := torup.New(torConfig(cfg), log, w.reg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errConfig, err)
	}
	w.tor = t
	w.closers = append(w.closers, t.Close)

	var up dispatch.Upstream = t.Upstream()
	var res dispatch.Resolver = t.Resolver()
	var isVirtual func(netip.Addr) bool
	if len(cfg.DNS.Listen) > 0 {
		rc := dnsConfig(cfg)
		// The bridge's own listen addresses exclude the ones systemd
		// passed in: those are handed to the bridge below (serveInheritedDNS).
		rc.Listen = socks.dnsToBind(cfg.DNS.Listen)
		b, err := resolve.New(rc, t.DNS(), log, w.reg)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errConfig, err)
		}
		w.bridge = b
		w.closers = append(w.closers, b.Close)
		// Tor forgets MAPADDRESS mappings when it restarts, and a new
		// control connection may be a new Tor: push the table again
		// so addresses apps were told keep working. Runs on the first connection
		// too.
		t.OnReconnect(func(ctx context.Context, _ *torctl.Conn) error { return b.RepushAll(ctx) })
		// Tor's STREAM NEW names the virtual address, not what it maps
		// to; the attacher asks the bridge so virtual addresses that
		// stand for .onion/.exit go back to Tor with circuit 0.
		t.SetVirtualLookup(b.Lookup)
		isVirtual = b.IsVirtual
		up = &virtualUpstream{Upstream: up, bridge: b}
		res = &virtualResolver{Resolver: res, bridge: b}
	}

	ctx, cancel := context.WithTimeout(context.Background(), torStartTimeout)
	defer cancel()
	if err := t.Start(ctx); err != nil {
		if errors.Is(err, torup.ErrLaunchNever) {
			return nil, fmt.Errorf("%w: %v", errConfig, err)
		}
		return nil, err
	}
	if w.bridge != nil && t.Controller() == nil {
		return nil, fmt.Errorf("%w: dns.listen is set but no Tor control port was found (tor.control = %q): the DNS bridge needs one for MAPADDRESS; set tor.control, or clear tor.socks so socksd launches its own tor", errConfig, cfg.Tor.Control)
	}
	if w.bridge != nil {
		if err := w.bridge.Start(); err != nil {
			return nil, err
		}
		if err := serveInheritedDNS(w.bridge, socks, cfg.DNS.Listen, log); err != nil {
			return nil, err
		}
	}

	w.track = newTracker(up, res)
	srv, err := dispatch.New(dispatch.Options{
		Upstream:   w.track,
		Resolver:   w.track,
		IsVirtual:  isVirtual,
		Log:        log,
		Registerer: w.reg,
	})
	if err != nil {
		return nil, err
	}
	w.srv = srv
	return w, nil
}

// torConfig is the [tor] table with what torup needs from elsewhere in
// the file.
func torConfig(cfg config.Config) torup.Config {
	tc := cfg.Tor
	tc.StateDir = cfg.StateDir
	return tc
}

// dnsConfig is the [dns] table with what the bridge needs from elsewhere
// in the file.
func dnsConfig(cfg config.Config) resolve.Config {
	rc := cfg.DNS
	rc.StateDir = cfg.StateDir
	return rc
}

// listenersFrom turns the config's listeners into dispatcher listeners,
// with per-application lookup for listeners that isolate on it, and the
// sockets systemd passed in for their addresses.
func listenersFrom(cfg config.Config, socks *inherited) []dispatch.ListenerConfig {
	ls := cfg.Listeners()
	for i, lc := range ls {
		if lc.Policy.Fields&isolation.ClientApp != 0 {
			ls[i].AppLookup = isolation.LookupConn
		}
		ls[i].Listener = socks.take(lc.Addr)
	}
	return ls
}

// inherited holds the sockets systemd passed (socket activation) that no
// listener has taken yet. A SOCKS listener takes the socket bound to its
// address once; later reloads bind the address themselves if the listener
// was removed and added again (the inherited socket was closed with it).
type inherited struct {
	socks []systemd.Socket
}

func (in *inherited) take(listen string) net.Listener {
	if in == nil {
		return nil
	}
	ln, ok := systemd.Listener(in.socks, listen)
	if !ok {
		return nil
	}
	in.remove(func(s systemd.Socket) bool { return s.Listener == ln })
	return ln
}

func (in *inherited) takePacket(listen string) net.PacketConn {
	if in == nil {
		return nil
	}
	pc, ok := systemd.PacketConn(in.socks, listen)
	if !ok {
		return nil
	}
	in.remove(func(s systemd.Socket) bool { return s.PacketConn == pc })
	return pc
}

func (in *inherited) remove(match func(systemd.Socket) bool) {
	for i, s := range in.socks {
		if match(s) {
			in.socks = append(in.socks[:i], in.socks[i+1:]...)
			return
		}
	}
}

// dnsToBind returns the dns.listen addresses that systemd did not pass a
// socket for (neither UDP nor TCP): the bridge binds those itself.
func (in *inherited) dnsToBind(listen []string) []string {
	var out []string
	for _, l := range listen {
		if in != nil {
			_, udp := systemd.PacketConn(in.socks, l)
			_, tcp := systemd.Listener(in.socks, l)
			if udp || tcp {
				continue
			}
		}
		out = append(out, l)
	}
	return out
}

// leftover closes and reports the inherited sockets nobody took: a socket
// unit whose addresses the config does not name.
func (in *inherited) leftover(log *zap.Logger) {
	if in == nil {
		return
	}
	for _, s := range in.socks {
		var addr string
		if s.Listener != nil {
			addr = s.Listener.Addr().String()
		} else if s.PacketConn != nil {
			addr = s.PacketConn.LocalAddr().String()
		}
		log.Warn("systemd passed a socket that no socks.listen or dns.listen entry names; closing it (add its address to the config)",
			zap.String("name", s.Name), zap.String("addr", addr))
		s.Close()
	}
	in.socks = nil
}
