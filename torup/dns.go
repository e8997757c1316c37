package torup

import (
	"context"
	"net/netip"

	"socksd/dispatch"
	"socksd/isolation"
)

// DNSTor is what the DNS bridge (package resolve) needs from Tor:
// MAPADDRESS on the control connection, and name lookups through Tor. It
// satisfies resolve.Tor without either package importing the other.
type DNSTor struct {
	t   *Tor
	key isolation.Key
}

// DNS returns the bridge's view of Tor. Lookups use their own isolation
// key (the zero key's digest as SOCKS credentials), so they never share a
// circuit with a client's streams.
func (t *Tor) DNS() *DNSTor { return &DNSTor{t: t} }

// MapAddress sends MAPADDRESS (control-spec §3.8), failing with
// ErrControlDown while the control connection is down or absent.
func (d *DNSTor) MapAddress(ctx context.Context, from, to string) (string, error) {
	if d.t.ctl == nil {
		return "", ErrControlDown
	}
	return d.t.ctl.MapAddress(ctx, from, to)
}

// Resolve looks name up through Tor's SocksPort (RESOLVE 0xF0, or
// RESOLVE_PTR 0xF1 when reverse), never locally. "No such name" is a
// *socks5.ReplyError with ReplyHostUnreachable, as Tor answers it.
func (d *DNSTor) Resolve(ctx context.Context, name string, reverse bool) (string, error) {
	req := &dispatch.Request{Protocol: dispatch.ProtoSOCKS5, Key: d.key}
	if reverse {
		ip, err := netip.ParseAddr(name)
		if err != nil {
			return "", err
		}
		req.Command, req.IP = dispatch.CmdResolvePTR, ip
		return d.t.up.ResolvePTR(ctx, req)
	}
	req.Command, req.Host = dispatch.CmdResolve, name
	ip, err := d.t.up.Resolve(ctx, req)
	if err != nil {
		return "", err
	}
	return ip.String(), nil
}
