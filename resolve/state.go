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

// load restores the table from disk: the snapshot, then the journal over
// it. A missing snapshot is a fresh start; a corrupt one is renamed aside
// (kept for a human, never half-trusted). A journal is replayed up to its
// first bad line (a torn last append after a crash). Entries outside the
// configured pools (the config changed) or with invalid names are dropped.
func (b *Bridge) load() {
	path := b.saver.path
	var st stateFile
	data, err := readLimited(path, maxStateSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st = stateFile{Version: stateVersion}
	case err == nil:
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err = dec.Decode(&st)
		if err == nil && st.Version != stateVersion {
			err = fmt.Errorf("version %d, want %d", st.Version, stateVersion)
		}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		aside := path + ".corrupt"
		if rerr := os.Rename(path, aside); rerr != nil {
			b.log.Error("mapping table unreadable and cannot be set aside", zap.Error(err), zap.NamedError("rename", rerr))
		} else {
			b.log.Warn("mapping table unreadable, starting from the journal only", zap.Error(err), zap.String("kept_as", aside))
		}
		st = stateFile{Version: stateVersion}
	}
	sort.SliceStable(st.Mappings, func(i, j int) bool { return st.Mappings[i].LastUsed < st.Mappings[j].LastUsed })
	b.mu.Lock()
	defer b.mu.Unlock()
	dropped := 0
	for _, sm := range st.Mappings {
		if !b.restoreLocked(sm.Addr, sm.Name, time.Unix(sm.LastUsed, 0), time.Unix(sm.LastAnswer, 0), false) {
			dropped++
		}
	}
	if b.v4 != nil && st.CursorIPv4 < b.v4.pool.size {
		b.v4.pool.cursor = st.CursorIPv4
	}
	if b.v6 != nil && st.CursorIPv6 < b.v6.pool.size {
		b.v6.pool.cursor = st.CursorIPv6
	}
	replayed, jerr := b.replayJournalLocked(b.saver.journalPath)
	if jerr != nil {
		b.log.Warn("mapping journal ends in a bad line; replayed up to it", zap.Int("ops", replayed), zap.Error(jerr))
	}
	n := 0
	for _, f := range b.families() {
		n += len(f.byAddr)
	}
	b.log.Info("mapping table loaded", zap.Int("mappings", n), zap.Int("dropped", dropped), zap.Int("journal_ops", replayed))
}

// restoreLocked puts one saved mapping into the table. With replace (a
// journal "+"), whatever holds the address or the name is removed first.
func (b *Bridge) restoreLocked(addr netip.Addr, name string, lastUsed, lastAnswer time.Time, replace bool) bool {
	a := addr.Unmap()
	f := b.familyOf(a)
	n, nerr := normalizeName(name)
	if f == nil || nerr != nil || n != name || !f.pool.usable(offsetOf(f.pool, a)) {
		return false
	}
	if replace {
		if m := f.byAddr[a]; m != nil {
			f.remove(m)
		}
		if m := f.byName[name]; m != nil {
			f.remove(m)
		}
	}
	if f.byAddr[a] != nil || f.byName[name] != nil || len(f.byAddr) >= f.pool.capacity {
		return false
	}
	f.insertLoaded(&mapping{name: name, addr: a, lastUsed: lastUsed, lastAnswer: lastAnswer})
	// A pool cursor behind a restored address would hand out its neighbours
	// first; that is fine: next-fit skips addresses in use.
	return true
}

// replayJournalLocked applies the journal's ops in order.
func (b *Bridge) replayJournalLocked(path string) (int, error) {
	data, err := readLimited(path, maxStateSize)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for len(data) > 0 {
		line, rest, complete := bytes.Cut(data, []byte("\n"))
		if !complete {
			return n, errors.New("torn last line")
		}
		data = rest
		var op journalOp
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&op); err != nil {
			return n, err
		}
		switch op.Op {
		case "+":
			t := time.Unix(op.T, 0)
			b.restoreLocked(op.Addr, op.Name, t, t, true)
		case "-":
			if f := b.familyOf(op.Addr); f != nil {
				if m := f.byAddr[op.Addr.Unmap()]; m != nil {
					f.remove(m)
				}
			}
		default:
			return n, fmt.Errorf("unknown op %q", op.Op)
		}
		n++
	}
	return n, nil
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

// journalOp is one line of the journal: "+" a new mapping (replacing
// whatever held the address or the name: last writer wins), "-" a removed one.
type journalOp struct {
	Op   string     `json:"op"`
	Addr netip.Addr `json:"addr"`
	Name string     `json:"name,omitempty"`
	T    int64      `json:"t,omitempty"` // unix seconds of creation
}

// logOpLocked queues a change for the journal; b.mu is held.
func (b *Bridge) logOpLocked(op journalOp) {
	b.gen++
	if b.saver != nil {
		b.saver.pending = append(b.saver.pending, op)
	}
}

// saver writes the table in the background, as a snapshot (the whole table,
// replaced atomically) plus a journal (one appended line per new or removed
// mapping). A new mapping costs one short append and fsync, not a rewrite of
// a table of up to 2×65536 entries; the journal is folded into a new
// snapshot when it grows past the table's size, at start, at Close, and
// every snapshotEvery when use times changed.
//
// Writers that need their change on disk (a new mapping, before its answer
// goes out) wait for a round that started after their change: concurrent
// new names share one write and one fsync (group commit).
type saver struct {
	path, journalPath string
	kickC             chan struct{}

	// Guarded by Bridge.mu:
	pending      []journalOp // changes not yet written
	journalLen   int         // ops in the journal file since the last snapshot
	wantSnapshot bool        // fold the journal at the next round
	lastSnapshot time.Time

	journal *os.File // owned by the run goroutine

	mu    sync.Mutex
	saved uint64        // highest generation written (or attempted)
	err   error         // result of the last round
	round chan struct{} // closed when the current round completes
}

// snapshotEvery bounds how stale the saved use times get.
const snapshotEvery = 10 * time.Minute

func newSaver(path string) *saver {
	return &saver{
		path: path, journalPath: path + ".journal",
		kickC: make(chan struct{}, 1), round: make(chan struct{}),
		wantSnapshot: true, // fold whatever journal load found
	}
}

func (s *saver) kick() {
	select {
	case s.kickC <- struct{}{}:
	default:
	}
}

// isSaved reports whether generation gen was written (or attempted: as in
// wait, a failed write does not hold answers back).
func (s *saver) isSaved(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saved >= gen
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

// saveOnce writes what changed (or a snapshot) and completes a round.
func (s *saver) saveOnce(b *Bridge, final bool) {
	b.mu.Lock()
	gen := b.gen
	ops := s.pending
	s.pending = nil
	size := 0
	for _, f := range b.families() {
		size += len(f.byAddr)
	}
	now := time.Now()
	snap := final || s.wantSnapshot || s.journalLen+len(ops) > max(1024, 2*size) ||
		(b.used && now.Sub(s.lastSnapshot) > snapshotEvery)
	var st stateFile
	if snap {
		st = b.snapshotLocked()
		b.used = false
		s.wantSnapshot = false
	}
	b.mu.Unlock()

	var err error
	if snap {
		err = s.writeSnapshot(st)
	} else if len(ops) > 0 {
		err = s.appendJournal(ops)
	}

	b.mu.Lock()
	switch {
	case err != nil:
		s.wantSnapshot = true // the next round writes everything
	case snap:
		s.journalLen = 0
		s.lastSnapshot = now
	default:
		s.journalLen += len(ops)
	}
	b.mu.Unlock()
	if snap || len(ops) > 0 {
		b.metrics.saves.WithLabelValues(result(err)).Inc()
	}
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

func (s *saver) writeSnapshot(st stateFile) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := writeAtomic(s.path, data); err != nil {
		return err
	}
	// A crash between the rename and this truncate replays the journal over
	// the new snapshot: harmless, every op is last-writer-wins per key.
	j, err := s.openJournal()
	if err != nil {
		return err
	}
	if err := j.Truncate(0); err != nil {
		return err
	}
	return j.Sync()
}

func (s *saver) appendJournal(ops []journalOp) error {
	j, err := s.openJournal()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // one op per line
	for _, op := range ops {
		if err := enc.Encode(op); err != nil {
			return err
		}
	}
	if _, err := j.Write(buf.Bytes()); err != nil {
		return err
	}
	return j.Sync()
}

func (s *saver) openJournal() (*os.File, error) {
	if s.journal != nil {
		return s.journal, nil
	}
	j, err := os.OpenFile(s.journalPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	s.journal = j
	return j, nil
}

// run saves on every kick until ctx ends, then writes a final snapshot.
func (s *saver) run(ctx context.Context, b *Bridge) {
	defer func() {
		if s.journal != nil {
			s.journal.Close()
		}
	}()
	s.kick() // fold the journal found at load
	for {
		select {
		case <-s.kickC:
			s.saveOnce(b, false)
		case <-ctx.Done():
			s.saveOnce(b, true)
			return
		}
	}
}
