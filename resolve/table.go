package resolve

import (
	"container/list"
	"net/netip"
	"time"
)

// mapping is one virtual address and the name Tor maps it to.
type mapping struct {
	name       string
	addr       netip.Addr
	lastUsed   time.Time // last DNS answer, connection (Touch) or pin release
	lastAnswer time.Time // last DNS answer: the app may cache it until lastAnswer+TTL
	pins       int       // live streams to this address; >0 → never expired or reclaimed
	removed    bool      // expired or reclaimed; waiters must look again
	gen        uint64    // table generation that created it: answers wait until it is saved

	// Tor push state: pushedEpoch == table.epoch means Tor has this mapping
	// since its last (re)connect. pushing is non-nil while a MAPADDRESS for
	// it is in flight; it is closed when that call returns.
	pushedEpoch uint64
	pushing     chan struct{}

	elem *list.Element // in family.lru; front = most recently used
}

// family is the table half for one address family: its pool, its names and
// its LRU order.
type family struct {
	pool   *pool
	label  string // "ipv4" / "ipv6", for metrics
	byName map[string]*mapping
	byAddr map[netip.Addr]*mapping
	lru    *list.List
	// draining: addresses removed from the table whose "MAPADDRESS a=a" is
	// still in flight. They are not handed out until Tor confirms, so the
	// removal can never land after a new mapping for the same address.
	draining map[netip.Addr]struct{}
}

func newFamily(p *pool, label string) *family {
	if p == nil {
		return nil
	}
	return &family{
		pool:     p,
		label:    label,
		byName:   make(map[string]*mapping),
		byAddr:   make(map[netip.Addr]*mapping),
		lru:      list.New(),
		draining: make(map[netip.Addr]struct{}),
	}
}

func (f *family) free(a netip.Addr) bool {
	if _, used := f.byAddr[a]; used {
		return false
	}
	_, busy := f.draining[a]
	return !busy
}

// touch marks m used at now and moves it to the LRU front.
func (f *family) touch(m *mapping, now time.Time) {
	if now.After(m.lastUsed) {
		m.lastUsed = now
	}
	f.lru.MoveToFront(m.elem)
}

// insert adds a new mapping, most recently used.
func (f *family) insert(m *mapping) {
	f.byName[m.name] = m
	f.byAddr[m.addr] = m
	m.elem = f.lru.PushFront(m)
}

// insertLoaded adds a mapping restored from disk; callers insert in order of
// increasing lastUsed, so each goes to the front.
func (f *family) insertLoaded(m *mapping) { f.insert(m) }

// remove takes m out of the table.
func (f *family) remove(m *mapping) {
	delete(f.byName, m.name)
	delete(f.byAddr, m.addr)
	f.lru.Remove(m.elem)
	m.removed = true
}

// reclaimable reports whether m may be taken for another name at now: no
// live stream, no push in flight, and no app can still hold an answer for it.
func reclaimable(m *mapping, now time.Time, ttl time.Duration) bool {
	return m.pins == 0 && m.pushing == nil && !now.Before(m.lastAnswer.Add(ttl))
}

// reclaim removes the least recently used reclaimable mapping and returns its
// address, for a new name. The old mapping need not be removed from Tor:
// the new MAPADDRESS for the same address replaces it (control-spec §3.8).
func (f *family) reclaim(now time.Time, ttl time.Duration) (netip.Addr, bool) {
	for e := f.lru.Back(); e != nil; e = e.Prev() {
		m := e.Value.(*mapping)
		if reclaimable(m, now, ttl) {
			f.remove(m)
			return m.addr, true
		}
	}
	return netip.Addr{}, false
}

// expired returns (and removes) every mapping idle since before cutoff that
// is neither pinned nor being pushed. Their addresses go to draining.
func (f *family) expired(cutoff time.Time) []*mapping {
	var out []*mapping
	for e := f.lru.Back(); e != nil; {
		m := e.Value.(*mapping)
		prev := e.Prev()
		if !m.lastUsed.Before(cutoff) {
			break // the rest is newer
		}
		if m.pins == 0 && m.pushing == nil {
			f.remove(m)
			f.draining[m.addr] = struct{}{}
			out = append(out, m)
		}
		e = prev
	}
	return out
}
