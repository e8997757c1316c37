package torup

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"socksd/isolation"
	"socksd/torctl"
)

// streamTo reports a NEW CONNECT stream to 127.0.0.1:port from source.
func (h *harness) streamTo(id string, port uint16, source string) {
	h.a.onStreamEvent(streamEvent{ID: id, Status: "NEW", CircID: "0", TargetHost: "127.0.0.1", TargetPort: port, SourceAddr: source, Purpose: "USER"})
}

// launched returns the IDs of the circuits socksd launched (after settle),
// split into pool circuits nobody took and the others.
func (h *harness) launched() (pool, keyed []string) {
	h.settle()
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	for id, c := range h.a.circs {
		if c.pooled {
			pool = append(pool, id)
		} else {
			keyed = append(keyed, id)
		}
	}
	slices.Sort(pool)
	slices.Sort(keyed)
	return pool, keyed
}

// owner returns the key a circuit belongs to (zero for a pool circuit).
func (h *harness) owner(id string) (isolation.Key, bool) {
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	c := h.a.circs[id]
	if c == nil {
		return isolation.Key{}, false
	}
	return c.key, true
}

func newPoolHarness(t *testing.T, max int) *harness {
	return newHarness(t, attacherConfig{Lifetime: 10 * time.Minute, PoolMax: max})
}

// warm makes one pool circuit ready: a first key's stream (a miss) sizes
// the pool, both circuits are built, and the pool circuit's exit policy is
// read. It returns the pool circuit and the first key's circuit.
func (h *harness) warm(key isolation.Key, local string, exit string) (pool, own string) {
	h.t.Helper()
	h.open(local, key)
	h.streamTo("1", 80, local)
	h.f.waitCall(h.t, "EXTENDCIRCUIT", 2)
	p, k := h.launched()
	if len(p) != 1 || len(k) != 1 {
		h.t.Fatalf("after a first miss: pool circuits %v, key circuits %v; want one each", p, k)
	}
	h.built(k[0], "$OWN")
	h.f.waitCall(h.t, "ATTACHSTREAM 1 "+k[0], 1)
	h.built(p[0], exit)
	h.f.waitCall(h.t, "EXITPOLICY "+exit, 1)
	h.settle()
	if n := h.a.poolCount(); n != 1 {
		h.t.Fatalf("pool holds %d circuits, want 1", n)
	}
	return p[0], k[0]
}

func TestPoolNewKeyTakesWarmCircuit(t *testing.T) {
	h := newPoolHarness(t, 4)
	alice, bob := testKey("alice"), testKey("bob")
	p, k := h.warm(alice, "127.0.0.1:40001", "$E2")

	h.open("127.0.0.1:40002", bob)
	h.streamTo("2", 80, "127.0.0.1:40002")
	h.f.waitCall(t, "ATTACHSTREAM 2 "+p, 1)
	// Bob's first stream went to the warm circuit: bob has no build of
	// his own (the pool's refills belong to no key).
	if got := h.a.circuitsOf(bob); !slices.Equal(got, []string{p}) {
		t.Errorf("bob's circuits %v, want only the pool circuit %s", got, p)
	}
	if got := h.a.circuitFor(bob); got != p {
		t.Errorf("bob's circuit %q, want the pool circuit %s", got, p)
	}
	if got := h.a.circuitFor(alice); got != k {
		t.Errorf("alice's circuit %q, want %s", got, k)
	}
	if o, _ := h.owner(p); o != bob {
		t.Errorf("circuit %s belongs to %v, want bob", p, o)
	}
	// Bob's next stream stays on it; alice's stays on hers.
	h.open("127.0.0.1:40003", bob)
	h.streamTo("3", 80, "127.0.0.1:40003")
	h.f.waitCall(t, "ATTACHSTREAM 3 "+p, 1)
	h.open("127.0.0.1:40004", alice)
	h.streamTo("4", 80, "127.0.0.1:40004")
	h.f.waitCall(t, "ATTACHSTREAM 4 "+k, 1)

	if hit, miss := value(h.a.m.poolRequests[0]), value(h.a.m.poolRequests[1]); hit != 1 || miss != 1 {
		t.Errorf("pool requests hit=%v miss=%v, want 1 and 1", hit, miss)
	}
	// Two keys needed a circuit within one window: the pool refills to 2.
	h.settle()
	pool, _ := h.launched()
	if len(pool) != 2 {
		t.Errorf("pool circuits after the take: %v, want 2 (the target)", pool)
	}
}

// A pool circuit whose exit does not accept the stream's port is left in
// the pool; the key builds its own, and a stream the exit accepts takes it.
func TestPoolRespectsExitPolicy(t *testing.T) {
	h := newPoolHarness(t, 4)
	only443, _ := torctl.ParsePortPolicy("accept 443")
	h.f.policy = map[string]torctl.ExitPolicy{"$WEB": {IPv4: only443}}
	p, _ := h.warm(testKey("alice"), "127.0.0.1:40001", "$WEB")

	h.open("127.0.0.1:40002", testKey("bob"))
	h.streamTo("2", 80, "127.0.0.1:40002") // port 80: not at $WEB
	h.f.waitCall(t, "EXTENDCIRCUIT", 3)
	h.settle()
	if slices.Contains(h.f.snapshot(), "ATTACHSTREAM 2 "+p) {
		t.Fatalf("a port-80 stream took a circuit whose exit accepts only 443")
	}
	if o, ok := h.owner(p); !ok || o != (isolation.Key{}) {
		t.Fatalf("the pool circuit was given to a key")
	}
	h.open("127.0.0.1:40003", testKey("carol"))
	h.streamTo("3", 443, "127.0.0.1:40003")
	h.f.waitCall(t, "ATTACHSTREAM 3 "+p, 1)

	// An IPv6 literal needs the exit's p6 line, which $WEB lacks.
	h.clk.add(time.Second)
	p2 := h.readyPool(t, "$WEB")
	h.open("127.0.0.1:40005", testKey("erin"))
	h.a.onStreamEvent(streamEvent{ID: "5", Status: "NEW", CircID: "0", TargetHost: "2001:db8::1", TargetPort: 443, SourceAddr: "127.0.0.1:40005", Purpose: "USER"})
	h.settle()
	if slices.Contains(h.f.snapshot(), "ATTACHSTREAM 5 "+p2) {
		t.Errorf("an IPv6 stream took a circuit whose exit has no IPv6 policy")
	}
}

// readyPool builds every pool circuit in flight at exit and returns one
// that is ready.
func (h *harness) readyPool(t *testing.T, exit string) string {
	t.Helper()
	pool, _ := h.launched()
	for _, id := range pool {
		h.built(id, exit)
	}
	h.settle()
	h.a.mu.Lock()
	defer h.a.mu.Unlock()
	if len(h.a.pool.ready) == 0 {
		t.Fatalf("no ready pool circuit among %v", pool)
	}
	return h.a.pool.ready[0].id
}

// Without new keys for poolHorizon the pool closes every circuit it holds
// and builds none.
func TestPoolDecaysToZero(t *testing.T) {
	h := newPoolHarness(t, 4)
	p, _ := h.warm(testKey("alice"), "127.0.0.1:40001", "$E2")
	n := count(h.f.snapshot(), "EXTENDCIRCUIT")
	h.clk.add(poolHorizon)
	h.a.sweep()
	calls := h.f.waitCall(t, "CLOSECIRCUIT "+p+" IfUnused", 1)
	h.settle()
	if got := h.a.poolCount(); got != 0 {
		t.Errorf("pool holds %d circuits after %v without demand, want 0", got, poolHorizon)
	}
	if m := count(h.settle(), "EXTENDCIRCUIT"); m != n {
		t.Errorf("%d EXTENDCIRCUITs after the decay, want none (%q)", m-n, calls)
	}
	if v := value(h.a.m.poolExpired(poolExcess)); v != 1 {
		t.Errorf("expired{reason=excess} = %v, want 1", v)
	}
}

// A pool circuit unused for circuit_lifetime is closed and replaced while
// demand lasts.
func TestPoolLifetime(t *testing.T) {
	h := newHarness(t, attacherConfig{Lifetime: 2 * time.Minute, PoolMax: 4})
	p, _ := h.warm(testKey("alice"), "127.0.0.1:40001", "$E2")
	n := count(h.f.snapshot(), "EXTENDCIRCUIT")
	h.clk.add(2 * time.Minute)
	h.a.sweep()
	h.f.waitCall(t, "CLOSECIRCUIT "+p+" IfUnused", 1)
	h.f.waitCall(t, "EXTENDCIRCUIT", n+1)
	if v := value(h.a.m.poolExpired(poolLifetime)); v != 1 {
		t.Errorf("expired{reason=lifetime} = %v, want 1", v)
	}
}

// NEWNYM empties the pool, launches nothing until Tor has the signal, and
// a pool circuit that was still building is closed when built, never given
// to a key.
func TestPoolNewnym(t *testing.T) {
	h := newPoolHarness(t, 4)
	p, _ := h.warm(testKey("alice"), "127.0.0.1:40001", "$E2")
	// A second demand: one more pool circuit goes into flight.
	h.open("127.0.0.1:40002", testKey("bob"))
	h.streamTo("2", 80, "127.0.0.1:40002")
	h.f.waitCall(t, "ATTACHSTREAM 2 "+p, 1)
	inflight, _ := h.launched()
	if len(inflight) == 0 {
		t.Fatal("no pool circuit in flight")
	}
	n := count(h.settle(), "EXTENDCIRCUIT")
	h.a.retireAll()
	for _, id := range inflight {
		h.built(id, "$E3")
	}
	h.settle()
	for _, id := range inflight {
		h.f.waitCall(t, "CLOSECIRCUIT "+id+" IfUnused", 1)
	}
	if m := count(h.settle(), "EXTENDCIRCUIT"); m != n {
		t.Fatalf("%d pool launches between NEWNYM and its release", m-n)
	}
	h.open("127.0.0.1:40003", testKey("carol"))
	h.streamTo("3", 80, "127.0.0.1:40003")
	h.settle()
	for _, id := range inflight {
		if slices.Contains(h.f.snapshot(), "ATTACHSTREAM 3 "+id) {
			t.Errorf("carol got pool circuit %s, launched before the NEWNYM", id)
		}
	}
	h.a.releasePool()
	h.f.waitCall(t, "EXTENDCIRCUIT", n+2) // carol's own, then the pool's
}

// A key that missed the pool gets the first pool circuit that becomes
// ready, before its own; its own circuit, never used, goes to the pool.
func TestPoolServesWaitingKeyAndTakesUnusedBack(t *testing.T) {
	h := newPoolHarness(t, 4)
	alice := testKey("alice")
	h.open("127.0.0.1:40001", alice)
	h.streamTo("1", 80, "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 2)
	p, k := h.launched()
	h.built(p[0], "$E2")
	h.f.waitCall(t, "ATTACHSTREAM 1 "+p[0], 1)
	h.built(k[0], "$E1")
	h.f.waitCall(t, "EXITPOLICY $E1", 1)
	h.settle()
	h.a.mu.Lock()
	ready := slices.Clone(h.a.pool.ready)
	h.a.mu.Unlock()
	if len(ready) != 1 || ready[0].id != k[0] {
		t.Fatalf("pool %v, want alice's unused circuit %s", ready, k[0])
	}
	if len(ready[0].streams) != 0 || !ready[0].firstUse.IsZero() {
		t.Fatalf("a used circuit went to the pool")
	}
	if got := h.a.circuitFor(alice); got != p[0] {
		t.Errorf("alice on %q, want %s", got, p[0])
	}
}

// If the exit's policy cannot be read, the circuit is not offered.
func TestPoolPolicyUnknownNotOffered(t *testing.T) {
	h := newPoolHarness(t, 4)
	h.f.policyErr = &torctl.Error{Code: 552, Text: "Unrecognized key"}
	alice := testKey("alice")
	h.open("127.0.0.1:40001", alice)
	h.streamTo("1", 80, "127.0.0.1:40001")
	h.f.waitCall(t, "EXTENDCIRCUIT", 2)
	p, k := h.launched()
	h.built(k[0], "$E1")
	h.built(p[0], "$E2")
	h.f.waitCall(t, "CLOSECIRCUIT "+p[0], 1)
	if n := h.a.poolCount(); n != 0 {
		t.Errorf("pool holds %d circuits with unknown exit policies", n)
	}
}

// Randomized: many keys, streams and circuit events in random order, with
// the pool on. No circuit ever carries streams of two keys, and a circuit
// carries a stream only after it left the pool.
func TestPoolNeverSharesRandomized(t *testing.T) {
	hits := 0.0
	defer func() {
		if hits == 0 && !t.Failed() {
			t.Error("no stream took a pool circuit in any run: the check proved nothing")
		}
	}()
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			h := newPoolHarness(t, 1+rng.IntN(8))
			keys := make([]isolation.Key, 2+rng.IntN(10))
			for i := range keys {
				keys[i] = testKey(fmt.Sprint("k", seed, "-", i))
			}
			keyOfStream := map[string]isolation.Key{}
			builtIDs := map[string]bool{}
			for step := range 150 {
				switch r := rng.IntN(10); {
				case r < 5: // a new stream
					id := fmt.Sprint(1000 + step)
					k := keys[rng.IntN(len(keys))]
					local := fmt.Sprintf("127.0.0.1:%d", 30000+step)
					h.open(local, k)
					keyOfStream[id] = k
					h.streamTo(id, 80, local)
				case r < 8: // Tor builds some circuit socksd launched
					h.settle()
					h.a.mu.Lock()
					var ids []string
					for id := range h.a.circs {
						if !builtIDs[id] {
							ids = append(ids, id)
						}
					}
					h.a.mu.Unlock()
					if len(ids) > 0 {
						slices.Sort(ids)
						id := ids[rng.IntN(len(ids))]
						builtIDs[id] = true
						if rng.IntN(8) == 0 {
							h.a.onCircEvent(circEvent{ID: id, Status: "FAILED", Reason: "TIMEOUT"})
						} else {
							h.built(id, fmt.Sprintf("$E%d", rng.IntN(3)))
						}
					}
				case r < 9: // time passes
					h.clk.add(time.Duration(rng.IntN(90)) * time.Second)
					h.a.sweep()
				default:
					if rng.IntN(4) == 0 {
						h.a.retireAll()
						h.a.releasePool()
					}
				}
			}
			h.settle()
			hits += value(h.a.m.poolRequests[0])
			circKey := map[string]isolation.Key{}
			for _, c := range h.f.snapshot() {
				var sid, cid string
				if _, err := fmt.Sscanf(c, "ATTACHSTREAM %s %s", &sid, &cid); err != nil || cid == "0" {
					continue
				}
				k := keyOfStream[sid]
				if prev, ok := circKey[cid]; ok && prev != k {
					t.Fatalf("circuit %s carries streams of two keys", cid)
				}
				circKey[cid] = k
			}
			h.a.mu.Lock()
			defer h.a.mu.Unlock()
			for _, c := range h.a.pool.ready {
				if _, used := circKey[c.id]; used || len(c.streams) > 0 {
					t.Fatalf("pool circuit %s carried a stream", c.id)
				}
			}
		})
	}
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// The target is the most demands within one poolWindow during the last
// poolHorizon, capped: identities arriving one every 5 s make a pool of a
// minute's worth, which stays for the horizon and then falls to zero.
func TestPoolTarget(t *testing.T) {
	p := circPool{max: 8}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for i := range 6 {
		p.noteDemand(t0.Add(time.Duration(i) * 5 * time.Second))
	}
	now := t0.Add(25 * time.Second)
	if got := p.computeTarget(now); got != 6 {
		t.Errorf("6 demands within a minute: target %d, want 6", got)
	}
	for i := range 20 { // a burst: capped
		p.noteDemand(now.Add(time.Duration(i) * time.Millisecond))
	}
	if got := p.computeTarget(now); got != 8 {
		t.Errorf("a burst of 20: target %d, want the cap 8", got)
	}
	// Sparse demand after the burst: the burst is remembered for the
	// horizon, then the target is what the last minute saw.
	late := now.Add(poolHorizon - time.Second)
	p.noteDemand(late)
	if got := p.computeTarget(late); got != 8 {
		t.Errorf("within the horizon of the burst: target %d, want 8", got)
	}
	later := now.Add(poolHorizon + time.Second)
	if got := p.computeTarget(later); got != 1 {
		t.Errorf("after the horizon, one recent demand: target %d, want 1", got)
	}
	if got := p.computeTarget(late.Add(poolHorizon)); got != 0 {
		t.Errorf("no demand for the horizon: target %d, want 0", got)
	}
}
