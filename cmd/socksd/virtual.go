package main

import (
	"context"
	"net/netip"
	"sync"

	"socksd/dispatch"
	"socksd/resolve"
)

// virtualUpstream pins the DNS bridge's mapping for as long as a stream to
// one of its virtual addresses lives: the mapping
// is neither expired nor reclaimed under a live stream, and Pin pushes it
// to Tor first if Tor lost it (a restart not yet re-pushed), so the stream
// never reaches Tor as a bare 127.192.x.y. The request still goes to Tor
// as the virtual address: Tor's MAPADDRESS turns it back into the name.
type virtualUpstream struct {
	dispatch.Upstream
	bridge *resolve.Bridge
}

func (u *virtualUpstream) Open(ctx context.Context, req *dispatch.Request, early []byte) (dispatch.Stream, error) {
	if !req.IP.IsValid() || !u.bridge.IsVirtual(req.IP) {
		return u.Upstream.Open(ctx, req, early)
	}
	release, err := u.bridge.Pin(ctx, req.IP)
	if err != nil {
		return nil, err // *socks5.ReplyError: 0x04 not mapped, 0x01 Tor down
	}
	s, err := u.Upstream.Open(ctx, req, early)
	if err != nil {
		release()
		return nil, err
	}
	return &pinnedStream{StreamWrapper: dispatch.StreamWrapper{Stream: s}, release: release}, nil
}

// pinnedStream releases its mapping pin when the dispatcher closes it.
type pinnedStream struct {
	dispatch.StreamWrapper
	release func()
	once    sync.Once
}

func (s *pinnedStream) Close() error {
	err := s.Stream.Close()
	s.once.Do(s.release)
	return err
}

// virtualResolver answers RESOLVE_PTR for a virtual address from the
// bridge's table (the name it stands for) without asking Tor, as Tor's
// own DNSPort answers PTR for its automapped addresses; everything else
// goes through Tor.
type virtualResolver struct {
	dispatch.Resolver
	bridge *resolve.Bridge
}

func (r *virtualResolver) ResolvePTR(ctx context.Context, req *dispatch.Request) (string, error) {
	if req.IP.IsValid() && r.bridge.IsVirtual(req.IP) {
		if name, ok := r.bridge.Lookup(req.IP); ok {
			r.bridge.Touch(req.IP)
			return name, nil
		}
	}
	return r.Resolver.ResolvePTR(ctx, req)
}

// Resolve passes through; a virtual address literal is echoed by the
// dispatcher before it gets here.
func (r *virtualResolver) Resolve(ctx context.Context, req *dispatch.Request) (netip.Addr, error) {
	return r.Resolver.Resolve(ctx, req)
}
