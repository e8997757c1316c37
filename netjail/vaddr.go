package netjail

import (
	"errors"
	"net/netip"
	"sync"
)

// The run-local virtual address pools. IPv4: the shared address space of
// RFC 6598 (100.64.0.0/10), which socksd's reject_internal refuses as a
// literal destination anyway, so a virtual address never shadows a
// destination the program could otherwise reach. IPv6: a ULA /48 of its
// own (RFC 4193), distinct from the DNS bridge's pool.
var (
	virtualIPv4 = netip.MustParsePrefix("100.64.0.0/10")
	virtualIPv6 = netip.MustParsePrefix("fd00:5ec5:7275::/48")
)

// maxNames bounds the table: a program that asks for millions of names gets
// SERVFAIL instead of growing the helper without end.
const maxNames = 1 << 16

var errTableFull = errors.New("netjail: virtual address table full")

// table maps names to virtual addresses and back. A name keeps its
// addresses for the whole run: the program may cache an answer as long as
// it likes, and the run is short-lived.
type table struct {
	mu     sync.Mutex
	byName map[string]*entry
	byAddr map[netip.Addr]string
	next4  netip.Addr
	next6  netip.Addr
}

type entry struct{ v4, v6 netip.Addr }

func newTable() *table {
	return &table{
		byName: map[string]*entry{},
		byAddr: map[netip.Addr]string{},
		// .0 and ::0 are skipped: some programs treat a zero host part as
		// "no address".
		next4: virtualIPv4.Addr().Next(),
		next6: virtualIPv6.Addr().Next(),
	}
}

// addr returns name's virtual address of the family (v6 false: IPv4),
// allocating one on first use. name must be normalised.
func (t *table) addr(name string, v6 bool) (netip.Addr, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.byName[name]
	if e == nil {
		if len(t.byName) >= maxNames {
			return netip.Addr{}, errTableFull
		}
		e = &entry{}
		t.byName[name] = e
	}
	p, next, slot := virtualIPv4, &t.next4, &e.v4
	if v6 {
		p, next, slot = virtualIPv6, &t.next6, &e.v6
	}
	if !slot.IsValid() {
		if !p.Contains(*next) {
			return netip.Addr{}, errTableFull
		}
		*slot = *next
		*next = next.Next()
		t.byAddr[*slot] = name
	}
	return *slot, nil
}

// lookup returns the name a virtual address stands for.
func (t *table) lookup(a netip.Addr) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.byAddr[a.Unmap()]
	return n, ok
}

// isVirtual reports whether a is in one of the pools, allocated or not.
func isVirtual(a netip.Addr) bool {
	a = a.Unmap()
	return virtualIPv4.Contains(a) || virtualIPv6.Contains(a)
}
