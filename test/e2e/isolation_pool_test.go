package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"socksd/internal/daemontest"
	"socksd/internal/testutil"
)

// The warm pool, as the client tor reports it: a new identity's first
// stream succeeds on a CONTROLLER circuit Tor had built before the stream
// existed, that circuit never carries another identity, and a new
// identity (POST /newnym) closes every circuit the pool held.

// poolMetric is one of socksd's pool metrics.
func poolMetric(t *testing.T, r *isoRig, name string, labels ...string) float64 {
	t.Helper()
	return metricSum(scrape(t, r.s.Metrics), name, labels...)
}

// waitPool polls (bounded) until socksd's pool holds at least n circuits.
func waitPool(t *testing.T, r *isoRig, n float64) {
	t.Helper()
	ok := testutil.Poll(30*time.Second, pollEvery, func() bool {
		return poolMetric(t, r, "socksd_tor_pool_circuits") >= n
	})
	if !ok {
		t.Fatalf("socksd's pool never held %v circuits\n%s", n, daemontest.Tail(r.s.Log(), 4000))
	}
}

// circCreated is Tor's TIME_CREATED of a circuit (UTC).
func circCreated(t *testing.T, r *isoRig, id string) time.Time {
	t.Helper()
	c := r.obs.wantSocksdCircuit(t, id)
	ts, err := time.Parse("2006-01-02T15:04:05.999999", c.KV["TIME_CREATED"])
	if err != nil {
		t.Fatalf("circuit %s: TIME_CREATED %q: %v", id, c.KV["TIME_CREATED"], err)
	}
	return ts
}

// streamNewAt is when the observer saw stream id NEW.
func streamNewAt(r *isoRig, id string) time.Time {
	for _, e := range r.obs.streamEvents(id) {
		if e.Status == "NEW" {
			return e.At
		}
	}
	return time.Time{}
}

func TestIsolationPool(t *testing.T) {
	t.Parallel()
	r := newIsoRig(t, "iso-pool", "")
	p := r.n.HTTPPort
	userOf := map[string]string{} // circuit → identity
	record := func(user string, h isoHop) {
		if other, ok := userOf[h.circ]; ok && other != user {
			t.Errorf("circuit %s carries %s and %s", h.circ, other, user)
		}
		userOf[h.circ] = user
	}

	// The first identity finds an empty pool (a miss) and sizes it.
	h := r.one(t, "first identity", func() string { return r.socks5Via(t, "first", "pw", p) })
	record("first", h)
	if miss := poolMetric(t, r, "socksd_tor_pool_requests_total", "result", "miss"); miss != 1 {
		t.Errorf("pool misses after the first identity: %v, want 1", miss)
	}

	// Each later identity finds a warm circuit: its first stream
	// succeeds on a circuit Tor created before the stream existed.
	const identities = 6
	var hitTimes []time.Duration
	for i := range identities {
		waitPool(t, r, 1)
		user := fmt.Sprintf("warm%d", i)
		hits := poolMetric(t, r, "socksd_tor_pool_requests_total", "result", "hit")
		mark := r.obs.mark()
		t0 := time.Now()
		h := r.one(t, user, func() string { return r.socks5Via(t, user, "pw", p) })
		hitTimes = append(hitTimes, time.Since(t0))
		record(user, h)
		if got := poolMetric(t, r, "socksd_tor_pool_requests_total", "result", "hit"); got != hits+1 {
			t.Errorf("%s: pool hits %v → %v, want one more", user, hits, got)
		}
		ids := r.obs.userStreams(mark)
		if len(ids) != 1 {
			t.Fatalf("%s: %d streams, want 1", user, len(ids))
		}
		created, newAt := circCreated(t, r, h.circ), streamNewAt(r, ids[0])
		if !created.Before(newAt.UTC()) {
			t.Errorf("%s: circuit %s created %v, after the stream appeared (%v): not a warm circuit", user, h.circ, created, newAt.UTC())
		}
		// A second stream of the identity stays on its circuit.
		h2 := r.one(t, user+" again", func() string { return r.socks5Via(t, user, "pw", p) })
		if h2.circ != h.circ {
			t.Errorf("%s: second stream on %s, first on %s", user, h2.circ, h.circ)
		}
		record(user, h2)
	}
	t.Logf("first-stream times of warm identities: %v", hitTimes)

	// NEWNYM: every circuit the pool held is closed (Tor says CLOSED),
	// and the next identity never gets one of them.
	waitPool(t, r, 1)
	held := r.poolCircuits(t, userOf)
	if len(held) == 0 {
		t.Fatal("no unused CONTROLLER circuit before the new identity")
	}
	status, body := torAdminPost(t, r.s, "/newnym")
	if status/100 != 2 {
		t.Fatalf("POST /newnym: %d %q", status, body)
	}
	closed := r.obs.waitFor(10*time.Second, func() bool {
		for _, id := range held {
			if s := r.obs.circs[id].Status; s != "CLOSED" && s != "FAILED" {
				return false
			}
		}
		return true
	})
	if !closed {
		t.Errorf("pool circuits %v not all closed 10s after the new identity", held)
	}
	h = r.one(t, "after newnym", func() string { return r.socks5Via(t, "fresh", "pw", p) })
	for _, id := range held {
		if h.circ == id {
			t.Errorf("an identity after NEWNYM got circuit %s, warm before it", id)
		}
	}
	if v := poolMetric(t, r, "socksd_tor_pool_circuits_expired_total", "reason", "newnym"); v < float64(len(held)) {
		t.Errorf("expired{reason=newnym} = %v, want >= %d", v, len(held))
	}
}

// poolCircuits lists the BUILT CONTROLLER circuits of the rig's tor that
// carried no stream: the pool, as Tor sees it.
func (r *isoRig) poolCircuits(t *testing.T, used map[string]string) []string {
	t.Helper()
	status := r.obs.getInfo(t, "circuit-status")
	var out []string
	for line := range strings.Lines(status) {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "BUILT" || !strings.Contains(line, "PURPOSE=CONTROLLER") {
			continue
		}
		if _, ok := used[f[0]]; !ok {
			out = append(out, f[0])
		}
	}
	return out
}
