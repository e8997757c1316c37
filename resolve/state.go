package resolve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
)

// stateVersion is the on-disk format's version; a file with another one is
// set aside, not guessed at.
const stateVersion = 1

// maxStateSize bounds what load reads: 2×65536 mappings of ~330 bytes.
const maxStateSize = 64 << 20

// stateFile is the table on disk. It holds every name apps asked for in the
// last mapping_idle, so it is written 0600 inside state_dir.
type stateFile struct {
	Version    int            `json:"version"`
	CursorIPv4 uint64         `json:"cursor_ipv4"`
	CursorIPv6 uint64         `json:"cursor_ipv6"`
	Mappings   []stateMapping `json:"mappings"`
}

type stateMapping struct {
	Addr       netip.Addr `json:"addr"`
	Name       string     `json:"name"`
	LastUsed   int64      `json:"last_used"`   // unix seconds
	LastAnswer int64      `json:"last_answer"` // unix seconds
}

// snapshotLocked captures the table; b.mu is held.
func (b *Bridge) snapshotLocked() stateFile {
	st := stateFile{Version: stateVersion, Mappings: []stateMapping{}}
	if b.v4 != nil {
		st.CursorIPv4 = b.v4.pool.cursor
	}
	if b.v6 != nil {
		st.CursorIPv6 = b.v6.pool.cursor
	}
	for _, f := range b.families() {
		// Oldest first, so load can push each to the LRU front in order.
		for e := f.lru.Back(); e != nil; e = e.Prev() {
			m := e.Value.(*mapping)
			st.Mappings = append(st.Mappings, stateMapping{
				Addr: m.addr, Name: m.name,
				LastUsed: m.lastUsed.Unix(), LastAnswer: m.lastAnswer.Unix(),
			})
		}
	}
	return st
}

// load restores the table from disk. A missing file is a fresh start; a
// corrupt one is renamed aside (kept for a human, never half-trusted) and the
// bridge starts empty. Entries outside the configured pools (the config
// changed) or with invalid names are dropped.
func (b *Bridge) load() {
	path := b.saver.path
	data, err := readLimited(path, maxStateSize)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var st stateFile
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err = dec.Decode(&st)
		if err == nil && st.Version != stateVersion {
			err = fmt.Errorf("version %d, want %d", st.Version, stateVersion)
		}
	}
	if err != nil {
		aside := path + ".corrupt"
		if rerr := os.Rename(path, aside); rerr != nil {
			b.log.Error("mapping table unreadable and cannot be set aside", zap.Error(err), zap.NamedError("rename", rerr))
		} else {
			b.log.Warn("mapping table unreadable, starting empty", zap.Error(err), zap.String("kept_as", aside))
		}
		return
	}
	sort.SliceStable(st.Mappings, func(i, j int) bool { return st.Mappings[i].LastUsed < st.Mappings[j].LastUsed })
	b.mu.Lock()
	defer b.mu.Unlock()
	dropped := 0
	for _, sm := range st.Mappings {
		f := b.familyOf(sm.Addr)
		name, nerr := normalizeName(sm.Name)
		if f == nil || nerr != nil || name != sm.Name || !f.pool.usable(offsetOf(f.pool, sm.Addr.Unmap())) {
			dropped++
			continue
		}
		a := sm.Addr.Unmap()
		if f.byAddr[a] != nil || f.byName[name] != nil || len(f.byAddr) >= f.pool.capacity {
			dropped++
			continue
		}
		f.insertLoaded(&mapping{
			name: name, addr: a,
			lastUsed: time.Unix(sm.LastUsed, 0), lastAnswer: time.Unix(sm.LastAnswer, 0),
		})
	}
	if b.v4 != nil && st.CursorIPv4 < b.v4.pool.size {
		b.v4.pool.cursor = st.CursorIPv4
	}
	if b.v6 != nil && st.CursorIPv6 < b.v6.pool.size {
		b.v6.pool.cursor = st.CursorIPv6
	}
	b.log.Info("mapping table loaded", zap.Int("mappings", len(st.Mappings)-dropped), zap.Int("dropped", dropped))
}

// offsetOf is the inverse of pool.addrAt: a - base, low 64 bits (enough
// for usable(), which looks at the last byte for IPv4 and zero for IPv6).
func offsetOf(p *pool, a netip.Addr) uint64 {
	b := a.As16()
	var diff [16]byte
	borrow := 0
	for k := 15; k >= 0; k-- {
		d := int(b[k]) - int(p.base[k]) - borrow
		borrow = 0
		if d < 0 {
			d += 256
			borrow = 1
		}
		diff[k] = byte(d)
	}
	var off uint64
	for k := 8; k < 16; k++ {
		off = off<<8 | uint64(diff[k])
	}
	return off
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("state file over %d bytes", limit)
	}
	return buf.Bytes(), nil
}

// writeAtomic replaces path with data so that a crash leaves either the old
// or the new file, never a torn one: write a temp file in the same
// directory, fsync it, rename it over path, fsync the directory.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// saver writes the table in the background. Writers that need their change
// on disk (a new mapping, before its answer goes out) wait for a round that
// started after their change: concurrent new names share one write (group
// commit), so fsync cost is paid per round, not per name.
type saver struct {
	path  string
	kickC chan struct{}

	mu    sync.Mutex
	saved uint64        // highest generation written (or attempted)
	err   error         // result of the last round
	round chan struct{} // closed when the current round completes
}

func newSaver(path string) *saver {
	return &saver{path: path, kickC: make(chan struct{}, 1), round: make(chan struct{})}
}

func (s *saver) kick() {
	select {
	case s.kickC <- struct{}{}:
	default:
	}
}

// wait blocks until generation gen is on disk.
func (s *saver) wait(ctx context.Context, b *Bridge, gen uint64) error {
	for {
		s.mu.Lock()
		if s.saved >= gen {
			err := s.err
			s.mu.Unlock()
			return err
		}
		ch := s.round
		s.mu.Unlock()
		s.kick()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-b.ctx.Done():
			return b.ctx.Err()
		}
	}
}

// saveOnce writes the current table and completes a round.
func (s *saver) saveOnce(b *Bridge) {
	b.mu.Lock()
	st := b.snapshotLocked()
	gen := b.gen
	b.used = false
	b.mu.Unlock()
	data, err := json.Marshal(st)
	if err == nil {
		err = writeAtomic(s.path, data)
	}
	b.metrics.saves.WithLabelValues(result(err)).Inc()
	if err != nil {
		b.log.Error("saving mapping table", zap.Error(err))
	}
	s.mu.Lock()
	if gen > s.saved {
		s.saved = gen
	}
	s.err = err
	close(s.round)
	s.round = make(chan struct{})
	s.mu.Unlock()
}

// run saves on every kick until ctx ends, then once more.
func (s *saver) run(ctx context.Context, b *Bridge) {
	for {
		select {
		case <-s.kickC:
			s.saveOnce(b)
		case <-ctx.Done():
			s.saveOnce(b)
			return
		}
	}
}
