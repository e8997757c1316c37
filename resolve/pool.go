package resolve

import (
	"net/netip"
)

// maxPoolOffsets caps how many offsets of a pool we walk: 2^32 is far more
// than MaxMappings will ever let us use, and keeps offsets in a uint64.
const maxPoolOffsets = 1 << 32

// pool is one virtual network. Addresses are handed out next-fit: a cursor
// walks the network and wraps, so a freed address is reused as late as
// possible (an app that still caches it has the longest time to forget it).
type pool struct {
	prefix   netip.Prefix
	base     [16]byte // the network address, in 16-byte form
	is4      bool
	size     uint64 // offsets walked: min(2^hostbits, maxPoolOffsets)
	capacity int    // usable addresses, capped by MaxMappings
	cursor   uint64 // next offset to try
}

func newPool(p netip.Prefix, maxMappings int) *pool {
	if !p.IsValid() {
		return nil
	}
	p = p.Masked()
	pl := &pool{prefix: p, base: p.Addr().As16(), is4: p.Addr().Is4()}
	hostBits := p.Addr().BitLen() - p.Bits()
	if hostBits >= 32 {
		pl.size = maxPoolOffsets
	} else {
		pl.size = 1 << hostBits
	}
	usable := uint64(0)
	if pl.is4 && pl.size < 256 {
		for i := uint64(0); i < pl.size; i++ {
			if pl.usable(i) {
				usable++
			}
		}
	} else if pl.is4 {
		usable = pl.size - 2*(pl.size/256) // no .0, no .255
	} else {
		usable = pl.size - 1 // no subnet-router anycast address
	}
	pl.capacity = maxMappings
	if usable < uint64(maxMappings) {
		pl.capacity = int(usable)
	}
	return pl
}

// usable reports whether offset i may be handed out. Like Tor's own
// addressmap_get_virtual_address, no IPv4 address ending in .0 or .255 (some
// apps treat them as network or broadcast addresses); for IPv6 not the
// all-zero host (RFC 4291 §2.6.1 subnet-router anycast).
func (p *pool) usable(i uint64) bool {
	if p.is4 {
		last := p.base[15] + byte(i)
		return last != 0 && last != 255
	}
	return i != 0
}

// addrAt returns base + i.
func (p *pool) addrAt(i uint64) netip.Addr {
	b := p.base
	carry := i
	for k := 15; k >= 0 && carry != 0; k-- {
		s := uint64(b[k]) + carry&0xff
		b[k] = byte(s)
		carry = carry>>8 + s>>8
	}
	a := netip.AddrFrom16(b)
	if p.is4 {
		return a.Unmap()
	}
	return a
}

// contains reports whether a is in the pool's network.
func (p *pool) contains(a netip.Addr) bool {
	return p != nil && p.prefix.Contains(a)
}

// next returns the next usable address for which free is true, advancing
// the cursor past it; ok is false after one full lap without a free address.
func (p *pool) next(free func(netip.Addr) bool) (netip.Addr, bool) {
	for n := uint64(0); n < p.size; n++ {
		i := p.cursor
		p.cursor++
		if p.cursor == p.size {
			p.cursor = 0
		}
		if !p.usable(i) {
			continue
		}
		if a := p.addrAt(i); free(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}
