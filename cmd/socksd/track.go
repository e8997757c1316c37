package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"socksd/dispatch"
	"socksd/internal/admin"
	"socksd/isolation"
	"socksd/socks5"
)

// recentErrors is how many failures the status page lists.
const recentErrors = 20

// tracker wraps the upstream and resolver to know what the status page
// shows and the metrics do not: live streams per protocol and per
// isolation identity, and the latest failures (code and protocol only,
// never a destination).
type tracker struct {
	up  dispatch.Upstream
	res dispatch.Resolver

	mu      sync.Mutex
	byProto map[dispatch.Protocol]int
	byKey   map[isolation.Key]int
	recent  []admin.RecentError // ring, newest last
}

func newTracker(up dispatch.Upstream, res dispatch.Resolver) *tracker {
	return &tracker{up: up, res: res, byProto: map[dispatch.Protocol]int{}, byKey: map[isolation.Key]int{}}
}

func (t *tracker) fail(p dispatch.Protocol, err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	code := socks5.ReplyGeneralFailure
	var re *socks5.ReplyError
	if errors.As(err, &re) {
		code = re.Code
	}
	e := admin.RecentError{Time: time.Now(), Protocol: p.String(), Code: fmt.Sprintf("0x%02X %v", byte(code), code)}
	t.mu.Lock()
	if len(t.recent) == recentErrors {
		copy(t.recent, t.recent[1:])
		t.recent = t.recent[:recentErrors-1]
	}
	t.recent = append(t.recent, e)
	t.mu.Unlock()
}

func (t *tracker) Open(ctx context.Context, req *dispatch.Request, early []byte) (dispatch.Stream, error) {
	s, err := t.up.Open(ctx, req, early)
	if err != nil {
		t.fail(req.Protocol, err)
		return nil, err
	}
	p, k := req.Protocol, req.Key
	t.mu.Lock()
	t.byProto[p]++
	t.byKey[k]++
	t.mu.Unlock()
	return &trackedStream{StreamWrapper: dispatch.StreamWrapper{Stream: s}, t: t, proto: p, key: k}, nil
}

func (t *tracker) Resolve(ctx context.Context, req *dispatch.Request) (netip.Addr, error) {
	if t.res == nil {
		return netip.Addr{}, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: errors.New("socksd: no resolver")}
	}
	a, err := t.res.Resolve(ctx, req)
	t.fail(req.Protocol, err)
	return a, err
}

func (t *tracker) ResolvePTR(ctx context.Context, req *dispatch.Request) (string, error) {
	if t.res == nil {
		return "", &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: errors.New("socksd: no resolver")}
	}
	n, err := t.res.ResolvePTR(ctx, req)
	t.fail(req.Protocol, err)
	return n, err
}

// trackedStream counts itself out when the dispatcher closes it, and
// records Tor's refusal when Await reports one.
type trackedStream struct {
	dispatch.StreamWrapper
	t     *tracker
	proto dispatch.Protocol
	key   isolation.Key
	once  sync.Once
}

func (s *trackedStream) Await(ctx context.Context) error {
	err := s.Stream.Await(ctx)
	s.t.fail(s.proto, err)
	return err
}

func (s *trackedStream) Close() error {
	err := s.Stream.Close()
	s.once.Do(func() {
		t := s.t
		t.mu.Lock()
		if t.byProto[s.proto]--; t.byProto[s.proto] <= 0 {
			delete(t.byProto, s.proto)
		}
		if t.byKey[s.key]--; t.byKey[s.key] <= 0 {
			delete(t.byKey, s.key)
		}
		t.mu.Unlock()
	})
	return err
}

// snapshot returns live streams by protocol name, live identities and the
// recent failures (newest first).
func (t *tracker) snapshot() (map[string]int, map[isolation.Key]int, []admin.RecentError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	byProto := make(map[string]int, len(t.byProto))
	for p, n := range t.byProto {
		byProto[p.String()] = n
	}
	byKey := make(map[isolation.Key]int, len(t.byKey))
	for k, n := range t.byKey {
		byKey[k] = n
	}
	recent := make([]admin.RecentError, len(t.recent))
	for i, e := range t.recent {
		recent[len(t.recent)-1-i] = e
	}
	return byProto, byKey, recent
}
