package e2e

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"socksd/internal/daemontest"
)

// TestIsolationProof is the randomized isolation check: at least 1,000
// streams from 25 identities, in random order, 16 at a time, with the warm
// pool on, per-identity renewals and a NEWNYM mixed in. The verdict comes
// from Tor's own STREAM events, read on the test's own control connection
// (not from socksd): every stream's NEW event carries the SOCKS password
// socksd sent, the isolation key Tor sees, and every later event names
// the circuit it used. No circuit may carry two keys.
//
// make test runs a short form (200 streams) on the package's network. The
// full check, 1,000 streams on the lossy profile, takes about 4 minutes
// (network included), so it runs when asked:
//
//	SOCKSD_TORNET=1 TORNET_PROFILE=lossy TORNET_TIMEOUT=400 SOCKSD_ISOLATION_PROOF=1 \
//	  go test -race -count=1 -timeout 40m -run TestIsolationProof ./test/e2e
//
// SOCKSD_ISOLATION_PROOF=N asks for N streams.
func TestIsolationProof(t *testing.T) {
	t.Parallel()
	want := 200
	switch v := os.Getenv("SOCKSD_ISOLATION_PROOF"); v {
	case "":
	case "1":
		want = 1000
	default:
		if _, err := fmt.Sscan(v, &want); err != nil || want < 1 {
			t.Fatalf("SOCKSD_ISOLATION_PROOF=%q: want 1 or a stream count", v)
		}
	}
	r := newIsoRig(t, "iso-proof", "")
	t.Logf("network profile %q, %d streams wanted", r.n.Profile, want)
	const identities, workers = 25, 16
	maxAttempts := want + want/2 // lossy links fail some streams
	deadline := time.Now().Add(20 * time.Minute)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	var rngMu sync.Mutex
	pick := func(n int) int {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.IntN(n)
	}

	mark := r.obs.mark()
	var ok, failed, attempts atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ok.Load() < int64(want) && attempts.Add(1) <= int64(maxAttempts) && time.Now().Before(deadline) {
				user := fmt.Sprintf("id%02d", pick(identities))
				renew := ""
				switch pick(200) {
				case 0: // a per-identity renewal: the user's next streams get a new key
					renew = "/newnym?user=" + user
				case 1:
					renew = "/newnym"
				}
				if renew != "" {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					status, body, err := httpDo(ctx, "POST", "http://"+r.s.Metrics+renew)
					cancel()
					if err != nil || status/100 != 2 {
						t.Errorf("POST %s: %d %q %v", renew, status, body, err)
					}
				}
				res, err := torSOCKS5Try(r.s.Addr, user, "pw", torCmdConnect, "127.0.0.1", r.n.HTTPPort, []byte("GET / HTTP/1.0\r\nHost: x\r\n\r\n"), 90*time.Second)
				if err == nil && res.Code == 0 {
					b, rerr := io.ReadAll(res.Conn)
					if rerr == nil && strings.Contains(string(b), "hello from tornet") {
						ok.Add(1)
						res.Conn.Close()
						continue
					}
					err = fmt.Errorf("body %q: %v", daemontest.Tail(string(b), 80), rerr)
				}
				if res.Conn != nil {
					res.Conn.Close()
				}
				if err == nil {
					err = fmt.Errorf("reply %#x", res.Code)
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		}()
	}
	wg.Wait()
	t.Logf("%d streams succeeded, %d failed (first failure: %v) in %d attempts", ok.Load(), failed.Load(), firstErr.Load(), attempts.Load())

	// Tor's view. Let the last events arrive: every stream the test saw
	// succeed has its SUCCEEDED event.
	r.obs.waitFor(10*time.Second, func() bool {
		n := 0
		for _, e := range r.obs.streams[mark:] {
			if e.Status == "SUCCEEDED" {
				n++
			}
		}
		return n >= int(ok.Load())
	})
	r.obs.mu.Lock()
	events := append([]torStreamEv(nil), r.obs.streams[mark:]...)
	r.obs.mu.Unlock()
	keyOf := map[string]string{}             // stream → the SOCKS password Tor saw
	circKeys := map[string]map[string]bool{} // circuit → keys of the streams on it
	streamsOn := map[string]int{}            // circuit → streams on it
	succeeded := 0
	for _, e := range events {
		if e.Status == "NEW" {
			if e.KV["SOCKS_USERNAME"] == "<torS0X>0" {
				keyOf[e.ID] = e.KV["SOCKS_PASSWORD"]
			}
			continue
		}
		k, ours := keyOf[e.ID]
		if !ours || e.Circ == "0" || e.Circ == "" {
			continue
		}
		switch e.Status {
		case "SENTCONNECT", "SUCCEEDED", "DETACHED", "FAILED", "CLOSED":
		default:
			continue
		}
		if circKeys[e.Circ] == nil {
			circKeys[e.Circ] = map[string]bool{}
		}
		circKeys[e.Circ][k] = true
		if e.Status == "SUCCEEDED" {
			succeeded++
			streamsOn[e.Circ]++
		}
	}
	keys := map[string]bool{}
	for _, k := range keyOf {
		keys[k] = true
	}
	var shared []string
	for c, ks := range circKeys {
		if len(ks) > 1 {
			shared = append(shared, fmt.Sprintf("circuit %s: %d keys", c, len(ks)))
		}
	}
	sort.Strings(shared)
	t.Logf("Tor saw %d socksd streams (%d SUCCEEDED) with %d distinct keys on %d circuits", len(keyOf), succeeded, len(keys), len(circKeys))
	if len(shared) > 0 {
		t.Errorf("circuits carrying two identities: %v", shared)
	}
	if succeeded < want {
		t.Errorf("Tor reported %d socksd streams SUCCEEDED, want >= %d (the check needs them)", succeeded, want)
	}
	if len(keys) < identities {
		t.Errorf("Tor saw %d distinct keys, want >= %d identities", len(keys), identities)
	}
	busiest := 0
	for _, n := range streamsOn {
		busiest = max(busiest, n)
	}
	if busiest < 2 {
		t.Errorf("no circuit carried two streams: the check never tested sharing within an identity")
	}
	pool := metricSum(scrape(t, r.s.Metrics), "socksd_tor_pool_requests_total", "result", "hit")
	t.Logf("busiest circuit carried %d streams; %v first streams took a warm pool circuit", busiest, pool)
}
