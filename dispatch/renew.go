package dispatch

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"socksd/isolation"
)

// maxRenewals bounds the renewal table: past it, renewing one more
// identity moves the global epoch instead (every identity is renewed,
// which is never weaker than what was asked).
const maxRenewals = 4096

// renewals holds the epochs of identities renewed one by one (the status
// page's per-identity "new identity"): by SOCKS username, or by client application. Entries are keyed
// by a SHA-256 of kind and value, so no username is kept in clear. n is
// the table's size, read without the lock: with no renewals (the common
// case) a connection pays nothing.
type renewals struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]uint64
	n  atomic.Int64
}

const (
	renewUser = "user\x00"
	renewApp  = "app\x00"
)

func renewalKey(kind string, v []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write(v)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// bump renews one identity and returns its new epoch; ok is false when
// the table was full and the caller must renew every identity instead.
func (r *renewals) bump(kind string, v []byte) (uint64, bool) {
	k := renewalKey(kind, v)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[[sha256.Size]byte]uint64{}
	}
	if _, ok := r.m[k]; !ok && len(r.m) >= maxRenewals {
		clear(r.m)
		r.n.Store(0)
		return 0, false
	}
	r.m[k]++
	r.n.Store(int64(len(r.m)))
	return r.m[k], true
}

// epoch folds the renewals that apply to a stream into the global epoch.
// Without any it is the global epoch itself; otherwise a digest of the
// three counters, so each renewal gives the stream a key no earlier
// stream had.
func (r *renewals) epoch(global uint64, hasAuth bool, username []byte, app isolation.App) uint64 {
	if r.n.Load() == 0 {
		return global
	}
	var user, exe uint64
	r.mu.Lock()
	if hasAuth {
		user = r.m[renewalKey(renewUser, username)]
	}
	if app.Known {
		exe = r.m[renewalKey(renewApp, []byte(app.Exe))]
	}
	r.mu.Unlock()
	if user == 0 && exe == 0 {
		return global
	}
	var b [24]byte
	binary.BigEndian.PutUint64(b[0:], global)
	binary.BigEndian.PutUint64(b[8:], user)
	binary.BigEndian.PutUint64(b[16:], exe)
	sum := sha256.Sum256(b[:])
	return binary.BigEndian.Uint64(sum[:8])
}

// NewUserEpoch renews one identity: streams opened after it whose SOCKS
// username (SOCKS4 userid, SOCKS5 username, Proxy-Authorization user) is
// username get isolation keys no earlier stream had, so they never reuse
// a circuit of that identity; other identities keep theirs. It returns
// the username's new epoch (0: the table was full and every identity was
// renewed). Only listeners that isolate on SOCKS auth give usernames keys
// of their own in the first place.
func (s *Server) NewUserEpoch(username []byte) uint64 {
	e, ok := s.renewals.bump(renewUser, username)
	if !ok {
		s.NewEpoch()
	}
	return e
}

// NewAppEpoch is NewUserEpoch for one client application, by executable
// path as per-application isolation identifies it (isolation.App.Exe, the
// /proc/PID/exe target). It applies on listeners with client_app.
func (s *Server) NewAppEpoch(exe string) uint64 {
	e, ok := s.renewals.bump(renewApp, []byte(exe))
	if !ok {
		s.NewEpoch()
	}
	return e
}
