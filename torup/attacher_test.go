package torup

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"socksd/isolation"
	"socksd/torctl"
)

// fakeCtl is a scripted control connection: it records every command and
// answers from per-test rules.
type fakeCtl struct {
	mu       sync.Mutex
	calls    []string
	changed  chan struct{}
	nextCirc int
	// attachErr, if set, answers ATTACHSTREAM.
	attachErr func(stream, circ string) error
	// extendErr, if set, answers EXTENDCIRCUIT with an error.
	extendErr error
	// extendGate, if set, holds EXTENDCIRCUIT's reply until it is closed.
	extendGate chan struct{}
	status     []statusEntry
	// policy answers ExitPolicy per exit fingerprint; an exit not listed
	// accepts every port.
	policy    map[string]torctl.ExitPolicy
	policyErr error
}

func newFakeCtl() *fakeCtl { return &fakeCtl{changed: make(chan struct{}), nextCirc: 100} }

func (f *fakeCtl) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeCtl) AttachStream(_ context.Context, id, circ string) error {
	f.record("ATTACHSTREAM " + id + " " + circ)
	f.mu.Lock()
	fn := f.attachErr
	f.mu.Unlock()
	if fn != nil {
		return fn(id, circ)
	}
	return nil
}

func (f *fakeCtl) ExtendCircuit(ctx context.Context, purpose string) (string, error) {
	f.mu.Lock()
	id := fmt.Sprint(f.nextCirc)
	f.nextCirc++
	err, gate := f.extendErr, f.extendGate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	f.record("EXTENDCIRCUIT -> " + id + " " + purpose)
	if err != nil {
		return "", err
	}
	return id, nil
}

func (f *fakeCtl) CloseCircuit(_ context.Context, id string, ifUnused bool) error {
	s := "CLOSECIRCUIT " + id
	if ifUnused {
		s += " IfUnused"
	}
	f.record(s)
	return nil
}

func (f *fakeCtl) CloseStream(_ context.Context, id string, reason int) error {
	f.record(fmt.Sprintf("CLOSESTREAM %s %d", id, reason))
	return nil
}

func (f *fakeCtl) ExitPolicy(_ context.Context, fp string) (torctl.ExitPolicy, error) {
	f.record("EXITPOLICY " + fp)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.policyErr != nil {
		return torctl.ExitPolicy{}, f.policyErr
	}
	if p, ok := f.policy[fp]; ok {
		return p, nil
	}
	all := torctl.PortPolicy{Accept: true, Ranges: [][2]uint16{{1, 65535}}}
	return torctl.ExitPolicy{IPv4: all, IPv6: all}, nil
}

func (f *fakeCtl) StreamStatus(context.Context) ([]statusEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, nil
}

// waitCall waits (bounded) until a command with the given prefix has been
// recorded n times in total, and returns all calls.
func (f *fakeCtl) waitCall(t *testing.T, prefix string, n int) []string {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		calls, ch := slices.Clone(f.calls), f.changed
		f.mu.Unlock()
		if count(calls, prefix) >= n {
			return calls
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("waited for %d× %q; calls: %q", n, prefix, calls)
		}
	}
}

func (f *fakeCtl) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func count(calls []string, prefix string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t   *testing.T
	a   *attacher
	f   *fakeCtl
	g   *registry
	clk *clock
}

func newHarness(t *testing.T, cfg attacherConfig) *harness {
	t.Helper()
	g := newRegistry()
	if cfg.ForeignGrace == 0 {
		cfg.ForeignGrace = 20 * time.Millisecond
	}
	a := newAttacher(cfg, g, newMetrics(nil), nil)
	clk := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	a.now = clk.now
	f := newFakeCtl()
	a.setControl(f)
	t.Cleanup(a.close)
	return &harness{t: t, a: a, f: f, g: g, clk: clk}
}

func testKey(name string) isolation.Key {
	return isolation.Policy{Fields: isolation.SOCKSAuth}.Key(isolation.Input{Username: []byte(name)})
}

// open registers a socksd connection from local with key.
func (h *harness) open(local string, key isolation.Key) *registration {
	r := newRegistration(key, local)
	h.g.add(r)
	return r
}

func (h *harness) streamNew(id, target, source string) {
	h.a.onStreamEvent(streamEvent{ID: id, Status: "NEW", CircID: "0", TargetHost: target, SourceAddr: source, Purpose: "USER"})
}

func (h *harness) stream(id, status, circ string, kv ...string) {
	ev := streamEvent{ID: id, Status: status, CircID: circ}
	for i := 0; i+1 < len(kv); i += 2 {
		switch kv[i] {
		case "REASON":
			ev.Reason = kv[i+1]
		case "REMOTE_REASON":
			ev.RemoteReason = kv[i+1]
		case "PURPOSE":
			ev.Purpose = kv[i+1]
		case "SOURCE_ADDR":
			ev.SourceAddr = kv[i+1]
		}
	}
	h.a.onStreamEvent(ev)
}

func (h *harness) built(id, exit string) {
	h.a.onCircEvent(circEvent{ID: id, Status: "BUILT", Path: []string{"$AAAA~auth0", "$BBBB~auth1", exit + "~exit"}})
}

// quiet asserts that no further command is sent: the attacher's commands
// all start synchronously from the event handlers, so waiting on the
// attacher's goroutines makes this deterministic.
func (h *harness) settle() []string {
	h.a.wg.Wait()
	return h.f.snapshot()
}

func TestAttachPerKey(t *testing.T) {
	h := newHarness(t, attacherConfig{Lifetime: 10 * time.Minute})
	alice, bob := testKey("alice"), testKey("bob")
	h.open("127.0.0.1:40001", alice)
	h.open("127.0.0.1:40002", alice)
	h.open("127.0.0.1:40003", bob)

	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)

	h.streamNew("2", "127.0.0.1", "127.0.0.1:40002")
	h.f.waitCall(t, "ATTACHSTREAM 2 100", 1)

	h.streamNew("3", "example.test", "127.0.0.1:40003")
	h.f.waitCall(t, "EXTENDCIRCUIT", 2)
	h.settle()
	h.built("101", "$E2")
	calls := h.f.waitCall(t, "ATTACHSTREAM 3 101", 1)
	if n := count(calls, "EXTENDCIRCUIT"); n != 2 {
		t.Errorf("%d EXTENDCIRCUITs for two keys, want 2: %q", n, calls)
	}
	if got := h.a.circuitFor(alice); got != "100" {
		t.Errorf("alice's circuit %q, want 100", got)
	}
	if got := h.a.circuitFor(bob); got != "101" {
		t.Errorf("bob's circuit %q, want 101", got)
	}
}

func TestStreamsQueueWhileBuilding(t *testing.T) {
	h := newHarness(t, attacherConfig{Lifetime: 10 * time.Minute})
	k := testKey("k")
	for i := range 3 {
		h.open(fmt.Sprintf("127.0.0.1:%d", 41000+i), k)
		h.streamNew(fmt.Sprint(i+1), "127.0.0.1", fmt.Sprintf("127.0.0.1:%d", 41000+i))
	}
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	if calls := h.settle(); len(calls) != 1 {
		t.Fatalf("before BUILT: %q, want one EXTENDCIRCUIT", calls)
	}
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM", 3)
	calls := h.settle()
	for i := range 3 {
		if !slices.Contains(calls, fmt.Sprintf("ATTACHSTREAM %d 100", i+1)) {
			t.Errorf("stream %d not attached to 100: %q", i+1, calls)
		}
	}
}

// Tor may report the circuit BUILT before EXTENDCIRCUIT's "250 EXTENDED".
func TestBuiltBeforeExtendReply(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.f.extendGate = make(chan struct{})
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("7", "127.0.0.1", "127.0.0.1:40001")
	// The command is in flight (extending > 0) when the events arrive.
	h.a.onCircEvent(circEvent{ID: "100", Status: "LAUNCHED"})
	h.built("100", "$E1")
	close(h.f.extendGate)
	h.f.waitCall(t, "ATTACHSTREAM 7 100", 1)
}

func TestLifetimeExpiryBuildsNewCircuit(t *testing.T) {
	for _, keepAlive := range []bool{false, true} {
		t.Run(fmt.Sprint("keep_alive=", keepAlive), func(t *testing.T) {
			h := newHarness(t, attacherConfig{Lifetime: 10 * time.Minute})
			k := testKey("k")
			// keep_alive comes with the request's listener.
			h.open("127.0.0.1:40001", k).keepAlive = keepAlive
			h.open("127.0.0.1:40002", k).keepAlive = keepAlive
			h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
			h.f.waitCall(t, "EXTENDCIRCUIT", 1)
			h.settle()
			h.built("100", "$E1")
			h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
			h.stream("1", "SUCCEEDED", "100")

			h.clk.add(10*time.Minute + time.Second)
			h.streamNew("2", "127.0.0.1", "127.0.0.1:40002")
			h.settle()
			if keepAlive {
				// Stream 1 still lives on 100: the key keeps it.
				h.f.waitCall(t, "ATTACHSTREAM 2 100", 1)
				if n := count(h.settle(), "EXTENDCIRCUIT"); n != 1 {
					t.Errorf("keep_alive: %d EXTENDCIRCUITs, want 1", n)
				}
				return
			}
			h.f.waitCall(t, "EXTENDCIRCUIT", 2)
			h.settle()
			h.built("101", "$E2")
			h.f.waitCall(t, "ATTACHSTREAM 2 101", 1)
			// The expired circuit is closed once its last stream ends.
			h.stream("1", "CLOSED", "100", "REASON", "DONE")
			h.f.waitCall(t, "CLOSECIRCUIT 100 IfUnused", 1)
		})
	}
}

// A stream's lifetime option shortens its key's circuit lifetime, and is
// capped at circuit_lifetime.
func TestStreamLifetimeOption(t *testing.T) {
	for _, tc := range []struct {
		lifetime, wait time.Duration
	}{
		{time.Minute, time.Minute + time.Second},         // shorter: honoured
		{20 * time.Minute, 10*time.Minute + time.Second}, // longer: capped
	} {
		t.Run(fmt.Sprint("lifetime=", tc.lifetime), func(t *testing.T) {
			h := newHarness(t, attacherConfig{Lifetime: 10 * time.Minute})
			k := testKey("k")
			h.open("127.0.0.1:40001", k).lifetime = tc.lifetime
			h.open("127.0.0.1:40002", k).lifetime = tc.lifetime
			h.open("127.0.0.1:40003", k).lifetime = tc.lifetime
			h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
			h.f.waitCall(t, "EXTENDCIRCUIT", 1)
			h.settle()
			h.built("100", "$E1")
			h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
			h.stream("1", "SUCCEEDED", "100")
			h.stream("1", "CLOSED", "100", "REASON", "DONE")

			// Within the lifetime the circuit is reused.
			h.clk.add(tc.wait - 2*time.Second)
			h.streamNew("2", "127.0.0.1", "127.0.0.1:40002")
			h.f.waitCall(t, "ATTACHSTREAM 2 100", 1)
			h.stream("2", "SUCCEEDED", "100")
			h.stream("2", "CLOSED", "100", "REASON", "DONE")

			// Past it a new stream gets a new circuit.
			h.clk.add(2 * time.Second)
			h.streamNew("3", "127.0.0.1", "127.0.0.1:40003")
			h.f.waitCall(t, "EXTENDCIRCUIT", 2)
			h.settle()
			h.built("101", "$E2")
			h.f.waitCall(t, "ATTACHSTREAM 3 101", 1)
		})
	}
}

func TestOnionHandedBack(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("5", "wx2ksuljux3hhrk6pdbt4fr2owp4rlnvdpaaaoxrvujgwckskstrgrid.ONION", "127.0.0.1:40001")
	h.f.waitCall(t, "ATTACHSTREAM 5 0", 1)
	if calls := h.settle(); len(calls) != 1 {
		t.Errorf("onion: %q, want only ATTACHSTREAM 5 0", calls)
	}
}

func TestForeignStreamHandedBackWhenWaiting(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("9", "127.0.0.1", "127.0.0.1:55555") // another application
	if calls := h.settle(); len(calls) != 0 {
		t.Fatalf("foreign NEW: %q, want nothing until CONTROLLER_WAIT", calls)
	}
	h.stream("9", "CONTROLLER_WAIT", "0")
	h.f.waitCall(t, "ATTACHSTREAM 9 0", 1)
}

func TestInternalStreamsIgnored(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.stream("11", "NEW", "0", "PURPOSE", "DIR_FETCH", "SOURCE_ADDR", "(Tor_internal):0")
	h.stream("11", "SENTCONNECT", "7")
	h.stream("11", "SUCCEEDED", "7")
	h.stream("11", "CLOSED", "7", "REASON", "DONE")
	if calls := h.settle(); len(calls) != 0 {
		t.Errorf("PURPOSE=DIR_FETCH: %q, want no command", calls)
	}
}

// A stream matched only by its <torS0X>0 credentials (no usable
// SOURCE_ADDR, e.g. a unix-socket SocksPort) is still socksd's.
func TestIdentifiedByCredentials(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	k := testKey("a")
	h.open("127.0.0.1:40001", k)
	h.a.onStreamEvent(streamEvent{ID: "3", Status: "NEW", CircID: "0", TargetHost: "127.0.0.1",
		SourceAddr: "unix:", Purpose: "USER", Username: torS0X0, Password: k.String()})
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
}

func TestDetachedReattachesAvoidingExit(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
	h.settle()
	h.stream("1", "SENTCONNECT", "100")
	h.stream("1", "DETACHED", "100", "REASON", "END", "REMOTE_REASON", "MISC")
	// Circuit 100's exit refused this stream: a new circuit, not 100.
	h.f.waitCall(t, "EXTENDCIRCUIT", 2)
	h.settle()
	h.built("101", "$E2")
	calls := h.f.waitCall(t, "ATTACHSTREAM 1 101", 1)
	if n := count(calls, "ATTACHSTREAM 1 100"); n != 1 {
		t.Errorf("re-attached to the refusing exit: %q", calls)
	}
}

// Tor picks the exit of every circuit socksd builds, and may keep picking
// exits that already refused a stream: after maxExitBuilds new circuits the
// stream takes one of its key's circuits anyway (Tor's own retry limit ends
// it) instead of building circuits until socks_timeout.
func TestDetachedBoundedRebuilds(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
	h.settle()
	h.stream("1", "DETACHED", "100", "REASON", "END", "REMOTE_REASON", "RESOLVEFAILED")
	// Every new circuit ends at the same refusing exit.
	for i := 0; i < maxExitBuilds; i++ {
		h.f.waitCall(t, "EXTENDCIRCUIT", 2+i)
		h.settle()
		h.built(fmt.Sprint(101+i), "$E1")
		h.settle()
	}
	calls := h.f.waitCall(t, "ATTACHSTREAM 1 ", 2)
	if n := count(calls, "EXTENDCIRCUIT"); n != 1+maxExitBuilds {
		t.Errorf("%d EXTENDCIRCUITs, want %d: %q", n, 1+maxExitBuilds, calls)
	}
}

func TestAttachRefusals(t *testing.T) {
	for _, code := range []int{551, 552} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			h := newHarness(t, attacherConfig{})
			h.f.attachErr = func(id, circ string) error {
				if circ == "100" {
					return &torctl.Error{Code: code, Text: "Unable to attach stream"}
				}
				return nil
			}
			h.open("127.0.0.1:40001", testKey("a"))
			h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
			h.f.waitCall(t, "EXTENDCIRCUIT", 1)
			h.settle()
			h.built("100", "$E1")
			h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
			// The refused circuit is retired; the stream gets a new one.
			h.f.waitCall(t, "EXTENDCIRCUIT", 2)
			h.settle()
			h.built("101", "$E2")
			h.f.waitCall(t, "ATTACHSTREAM 1 101", 1)
			if got := h.a.circuitFor(testKey("a")); got != "101" {
				t.Errorf("key's circuit after %d: %q, want 101", code, got)
			}
		})
	}
	t.Run("555", func(t *testing.T) {
		h := newHarness(t, attacherConfig{})
		h.f.attachErr = func(string, string) error {
			return &torctl.Error{Code: 555, Text: "Connection is not managed by controller."}
		}
		h.open("127.0.0.1:40001", testKey("a"))
		h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
		h.f.waitCall(t, "EXTENDCIRCUIT", 1)
		h.settle()
		h.built("100", "$E1")
		h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
		if calls := h.settle(); len(calls) != 2 {
			t.Errorf("555: %q, want no retry", calls)
		}
	})
}

// A stream refused again and again goes back to Tor (which still isolates
// it by the SOCKS credentials carrying its key) instead of looping.
func TestRepeatedRefusalHandsBack(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.f.attachErr = func(id, circ string) error {
		if circ != "0" {
			return &torctl.Error{Code: 551, Text: "Unable to attach stream"}
		}
		return nil
	}
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	for i := range maxAttaches {
		h.f.waitCall(t, "EXTENDCIRCUIT", i+1)
		h.settle()
		h.built(fmt.Sprint(100+i), fmt.Sprintf("$E%d", i))
		h.f.waitCall(t, fmt.Sprintf("ATTACHSTREAM 1 %d", 100+i), 1)
	}
	h.f.waitCall(t, "ATTACHSTREAM 1 0", 1)
	if n := count(h.settle(), "EXTENDCIRCUIT"); n != maxAttaches {
		t.Errorf("%d circuits, want %d", n, maxAttaches)
	}
}

func TestCircuitFailureRetriesThenCloses(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	for i := range maxBuildFailures {
		h.f.waitCall(t, "EXTENDCIRCUIT", i+1)
		h.settle()
		h.a.onCircEvent(circEvent{ID: fmt.Sprint(100 + i), Status: "FAILED", Reason: "TIMEOUT"})
	}
	calls := h.f.waitCall(t, "CLOSESTREAM 1 1", 1)
	if n := count(calls, "EXTENDCIRCUIT"); n != maxBuildFailures {
		t.Errorf("%d EXTENDCIRCUITs, want %d", n, maxBuildFailures)
	}
}

func TestSocksTimeoutClosesStream(t *testing.T) {
	h := newHarness(t, attacherConfig{SOCKSTimeout: 20 * time.Millisecond})
	r := h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "CLOSESTREAM 1 7", 1)
	if !r.result().TimedOut {
		t.Error("registration not marked timed out")
	}
	h.stream("1", "CLOSED", "0", "REASON", "TIMEOUT")
	select {
	case <-r.done:
	default:
		t.Error("registration not finished by CLOSED")
	}
}

func TestSocksTimeoutSparesAnswered(t *testing.T) {
	h := newHarness(t, attacherConfig{SOCKSTimeout: time.Hour})
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
	h.stream("1", "SUCCEEDED", "100")
	h.a.timeout("1") // as if the timer fired late
	if n := count(h.settle(), "CLOSESTREAM"); n != 0 {
		t.Errorf("answered stream closed by socks_timeout")
	}
}

// At start-up (or reconnect), streams waiting for a controller are handed
// back unless they are socksd's known streams, which are attached.
func TestResyncPicksUpWaitingStreams(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()

	// The connection drops and comes back (a new generation).
	h.a.setControl(nil)
	f2 := newFakeCtl()
	f2.nextCirc = 200
	f2.status = []statusEntry{
		{ID: "1", Status: "NEW", CircID: "0", Target: "127.0.0.1:80"},     // ours
		{ID: "40", Status: "NEW", CircID: "0", Target: "127.0.0.1:80"},    // a predecessor's
		{ID: "41", Status: "SUCCEEDED", CircID: "9", Target: "x:1"},       // open: untouched
		{ID: "42", Status: "NEWRESOLVE", CircID: "0", Target: "x.test:0"}, // foreign resolve
	}
	h.a.setControl(f2)
	if err := h.a.resync(context.Background(), f2, nil); err != nil {
		t.Fatal(err)
	}
	f2.waitCall(t, "ATTACHSTREAM 40 0", 1)
	f2.waitCall(t, "ATTACHSTREAM 42 0", 1)
	f2.waitCall(t, "EXTENDCIRCUIT", 1)
	h.a.wg.Wait()
	h.a.onCircEvent(circEvent{ID: "200", Status: "BUILT", Path: []string{"$X~exit"}})
	calls := f2.waitCall(t, "ATTACHSTREAM 1 200", 1)
	if count(calls, "ATTACHSTREAM 41") != 0 {
		t.Errorf("an open stream was touched: %q", calls)
	}
}

func TestResyncForgetsVanishedStreams(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	r := h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.settle()
	// Reconnected: Tor's snapshot on the new connection lacks stream 1.
	h.a.setControl(nil)
	h.a.setControl(h.f)
	if err := h.a.resync(context.Background(), h.f, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	default:
		t.Fatal("stream Tor no longer lists is still tracked")
	}
	if _, _, n := h.a.counts(); n != 0 {
		t.Errorf("%d streams tracked, want 0", n)
	}
}

func TestRetireAllForNewIdentity(t *testing.T) {
	h := newHarness(t, attacherConfig{Lifetime: time.Hour})
	k := testKey("a")
	h.open("127.0.0.1:40001", k)
	h.open("127.0.0.1:40002", k)
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
	h.stream("1", "CLOSED", "100", "REASON", "DONE")
	h.a.retireAll()
	h.f.waitCall(t, "CLOSECIRCUIT 100 IfUnused", 1)
	h.streamNew("2", "127.0.0.1", "127.0.0.1:40002")
	h.f.waitCall(t, "EXTENDCIRCUIT", 2)
	if got := h.a.circuitFor(k); got != "" {
		t.Errorf("retired circuit %q still offered", got)
	}
}

// Circuits Tor lost while the control connection was down are forgotten.
func TestResyncDropsUnknownCircuits(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	k := testKey("a")
	h.open("127.0.0.1:40001", k)
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
	h.stream("1", "SUCCEEDED", "100")
	h.f.status = []statusEntry{{ID: "1", Status: "SUCCEEDED", CircID: "100", Target: "127.0.0.1:80"}}
	// Tor restarted: circuit 100 is now someone else's with another exit.
	h.a.setControl(nil)
	h.a.setControl(h.f)
	if err := h.a.resync(context.Background(), h.f, []statusEntry{{ID: "100", Status: "BUILT", Target: "$OTHER"}}); err != nil {
		t.Fatal(err)
	}
	if got := h.a.circuitFor(k); got != "" {
		t.Errorf("circuit %q kept although Tor's 100 has another exit", got)
	}
}

func TestPassiveNeverCommands(t *testing.T) {
	h := newHarness(t, attacherConfig{Passive: true, SOCKSTimeout: time.Millisecond})
	r := h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.stream("1", "CONTROLLER_WAIT", "0")
	h.streamNew("2", "127.0.0.1", "127.0.0.1:9")
	h.stream("2", "CONTROLLER_WAIT", "0")
	h.stream("1", "FAILED", "0", "REASON", "END", "REMOTE_REASON", "CONNECTREFUSED")
	if calls := h.settle(); len(calls) != 0 {
		t.Errorf("attach_streams=false sent %q", calls)
	}
	if o := r.result(); o.RemoteReason != "CONNECTREFUSED" {
		t.Errorf("outcome %+v, want the stream's end reason", o)
	}
}

func TestExitOf(t *testing.T) {
	for _, c := range []struct {
		path []string
		want string
	}{
		{nil, ""},
		{[]string{"$AA~a", "$BB~b"}, "$BB"},
		{[]string{"$CC=c"}, "$CC"},
		{[]string{"$DD"}, "$DD"},
	} {
		if got := exitOf(c.path); got != c.want {
			t.Errorf("exitOf(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}

func TestIsOnion(t *testing.T) {
	for host, want := range map[string]bool{
		"abc.onion": true, "ABC.ONION": true, "abc.onion.": true, "x.y.onion": true,
		"onion": false, ".onion": true, "abc.onion.example": false, "127.0.0.1": false, "": false,
	} {
		if got := isOnion(host); got != want {
			t.Errorf("isOnion(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestSweepClosesExpiredIdleCircuits(t *testing.T) {
	h := newHarness(t, attacherConfig{Lifetime: time.Minute})
	k := testKey("a")
	h.open("127.0.0.1:40001", k)
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
	h.stream("1", "CLOSED", "100", "REASON", "DONE")
	h.a.sweep()
	if n := count(h.settle(), "CLOSECIRCUIT"); n != 0 {
		t.Fatalf("a circuit within its lifetime was closed")
	}
	h.clk.add(time.Minute)
	h.a.sweep()
	h.f.waitCall(t, "CLOSECIRCUIT 100 IfUnused", 1)
	if c, keys, _ := h.a.counts(); c != 0 || keys != 0 {
		t.Errorf("after sweep: %d circuits, %d keys tracked, want 0", c, keys)
	}
}

// RESOLVE streams get GENERAL circuits of their own: attaching one to a
// CONTROLLER circuit aborts tor 0.4.9.11.
func TestResolveStreamsUseGeneralCircuits(t *testing.T) {
	h := newHarness(t, attacherConfig{Purpose: "controller"})
	k := testKey("a")
	h.open("127.0.0.1:40001", k)
	h.open("127.0.0.1:40002", k)
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	calls := h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	if !slices.Contains(calls, "EXTENDCIRCUIT -> 100 controller") {
		t.Fatalf("CONNECT circuit: %q, want purpose controller", calls)
	}
	h.settle()
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
	h.a.onStreamEvent(streamEvent{ID: "2", Status: "NEWRESOLVE", CircID: "0", TargetHost: "example.test", SourceAddr: "127.0.0.1:40002", Purpose: "DNS_REQUEST"})
	calls = h.f.waitCall(t, "EXTENDCIRCUIT", 2)
	if !slices.Contains(calls, "EXTENDCIRCUIT -> 101 general") {
		t.Fatalf("RESOLVE circuit: %q, want a new general one", calls)
	}
	h.settle()
	h.built("101", "$E2")
	h.f.waitCall(t, "ATTACHSTREAM 2 101", 1)
}

// A stream socksd did not attach showing up on a socksd circuit (Tor
// attaches its own pending streams to a fresh GENERAL circuit) retires it.
func TestForeignStreamOnOurCircuitRetiresIt(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	k := testKey("a")
	h.open("127.0.0.1:40001", k)
	h.open("127.0.0.1:40002", k)
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
	h.stream("1", "SENTCONNECT", "100")
	if got := h.a.circuitFor(k); got != "100" {
		t.Fatalf("own stream retired the circuit: %q", got)
	}
	h.stream("77", "SENTCONNECT", "100") // not socksd's
	if got := h.a.circuitFor(k); got != "" {
		t.Errorf("circuit %q still offered after a foreign stream used it", got)
	}
	h.streamNew("2", "127.0.0.1", "127.0.0.1:40002")
	h.f.waitCall(t, "EXTENDCIRCUIT", 2)
}

// Tor's build-time measurement: FAILED REASON=TIMEOUT, then BUILT (as
// MEASURE_TIMEOUT) before the EXTENDCIRCUIT reply was processed. The
// circuit must count as failed.
func TestEarlyFailedIsFinal(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.f.extendGate = make(chan struct{})
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("7", "127.0.0.1", "127.0.0.1:40001")
	h.a.onCircEvent(circEvent{ID: "100", Status: "FAILED", Reason: "TIMEOUT"})
	h.built("100", "$E1")
	h.a.onCircEvent(circEvent{ID: "100", Status: "CLOSED", Reason: "FINISHED"})
	close(h.f.extendGate)
	h.f.waitCall(t, "EXTENDCIRCUIT", 2)
	h.settle()
	h.built("101", "$E2")
	calls := h.f.waitCall(t, "ATTACHSTREAM 7 101", 1)
	if count(calls, "ATTACHSTREAM 7 100") != 0 {
		t.Errorf("attached to the timed-out circuit: %q", calls)
	}
}

// A GENERAL circuit Tor turns into MEASURE_TIMEOUT (CIRC_MINOR) has failed.
func TestMeasureTimeoutIsFailure(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.open("127.0.0.1:40001", testKey("a"))
	h.a.onStreamEvent(streamEvent{ID: "2", Status: "NEWRESOLVE", CircID: "0", TargetHost: "example.test", SourceAddr: "127.0.0.1:40001", Purpose: "DNS_REQUEST"})
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.a.onCircMinorEvent("100", "PURPOSE_CHANGED", "CONTROLLER") // harmless
	if n := count(h.settle(), "EXTENDCIRCUIT"); n != 1 {
		t.Fatalf("purpose change to CONTROLLER treated as failure")
	}
	h.a.onCircMinorEvent("100", "PURPOSE_CHANGED", "MEASURE_TIMEOUT")
	h.f.waitCall(t, "EXTENDCIRCUIT", 2)
	h.settle()
	h.built("101", "$E2")
	h.f.waitCall(t, "ATTACHSTREAM 2 101", 1)
}

// The resync after connecting runs beside event processing: a circuit
// launched on the new connection after Tor's circuit-status snapshot must
// survive it (found with the real tor: the key's build hung forever).
func TestResyncKeepsCircuitsOfThisConnection(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	k := testKey("a")
	h.open("127.0.0.1:40001", k)
	h.a.onStreamEvent(streamEvent{ID: "2", Status: "NEWRESOLVE", CircID: "0", TargetHost: "example.test", SourceAddr: "127.0.0.1:40001", Purpose: "DNS_REQUEST"})
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.f.status = []statusEntry{{ID: "2", Status: "NEWRESOLVE", CircID: "0", Target: "example.test:0"}}
	if err := h.a.resync(context.Background(), h.f, nil); err != nil {
		t.Fatal(err)
	}
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 2 100", 1)
}

func TestBuildWatchdog(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.a.buildTimedOut("100") // as if buildTimeout passed without BUILT
	h.f.waitCall(t, "CLOSECIRCUIT 100", 1)
	h.f.waitCall(t, "EXTENDCIRCUIT", 2)
	h.settle()
	h.built("101", "$E2")
	h.f.waitCall(t, "ATTACHSTREAM 1 101", 1)
}

// A waiting stream with <torS0X>0 credentials may be another socksd's (one
// stopping while the next starts on the same Tor): it is left to its owner
// for ForeignGrace, and never touched if the owner attaches it.
func TestOtherSocksdStreamsLeftToTheirOwner(t *testing.T) {
	h := newHarness(t, attacherConfig{ForeignGrace: time.Hour})
	other := streamEvent{ID: "30", Status: "NEW", CircID: "0", TargetHost: "127.0.0.1", SourceAddr: "127.0.0.1:50000",
		Purpose: "USER", Username: torS0X0, Password: testKey("x").String()}
	h.a.onStreamEvent(other)
	other.Status = "CONTROLLER_WAIT"
	h.a.onStreamEvent(other)
	h.stream("30", "SENTCONNECT", "900") // its owner attached it
	h.stream("30", "SUCCEEDED", "900")
	if calls := h.settle(); len(calls) != 0 {
		t.Errorf("another socksd's stream was touched: %q", calls)
	}
	if len(h.a.foreign) != 0 {
		t.Errorf("%d foreign streams tracked after it was handled", len(h.a.foreign))
	}
}

func TestOrphanedSocksdStreamHandedBackAfterGrace(t *testing.T) {
	h := newHarness(t, attacherConfig{ForeignGrace: 10 * time.Millisecond})
	orphan := streamEvent{ID: "31", Status: "CONTROLLER_WAIT", CircID: "0", Username: torS0X0, Password: testKey("gone").String()}
	h.a.onStreamEvent(orphan)
	h.f.waitCall(t, "ATTACHSTREAM 31 0", 1)
}

// EXTENDCIRCUIT refused (551 while Tor bootstraps) is retried while the
// key's streams wait, not counted towards closing them.
func TestExtendRefusedIsRetried(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.f.extendErr = &torctl.Error{Code: 551, Text: "Couldn't start circuit"}
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 2)
	h.f.mu.Lock()
	h.f.extendErr = nil
	h.f.mu.Unlock()
	calls := h.f.waitCall(t, "EXTENDCIRCUIT", 3)
	if count(calls, "CLOSESTREAM") != 0 {
		t.Fatalf("stream closed while Tor could not launch circuits: %q", calls)
	}
	h.a.wg.Wait()
	// The third launch succeeded (fake IDs count every attempt).
	h.built("102", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 102", 1)
}

// Attach latency counts from when socksd read Tor's NEW (ev.At), so time
// the event spent queued in socksd is not hidden from the histogram.
func TestAttachLatencyFromEventRead(t *testing.T) {
	h := newHarness(t, attacherConfig{Lifetime: 10 * time.Minute})
	h.a.now = time.Now // the histogram measures with the real clock
	k := testKey("k")
	h.open("127.0.0.1:42001", k)
	h.open("127.0.0.1:42002", k)
	h.streamNew("1", "127.0.0.1", "127.0.0.1:42001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
	h.settle()

	const queued = 200 * time.Millisecond
	h.a.onStreamEvent(streamEvent{ID: "2", Status: "NEW", CircID: "0", TargetHost: "127.0.0.1",
		SourceAddr: "127.0.0.1:42002", Purpose: "USER", At: time.Now().Add(-queued)})
	h.f.waitCall(t, "ATTACHSTREAM 2 100", 1)
	h.settle()
	var m dto.Metric
	if err := h.a.m.latExisting.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	hist := m.GetHistogram()
	if hist.GetSampleCount() != 1 || hist.GetSampleSum() < queued.Seconds() {
		t.Errorf("existing-circuit attach latency: %d samples, sum %.3fs; want 1 sample of at least %v",
			hist.GetSampleCount(), hist.GetSampleSum(), queued)
	}
}
