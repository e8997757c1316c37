package e2e

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReliabilityChurn: streams opened at a steady rate from several
// identities for a while all succeed, RSS stays bounded and flat, and
// socksd returns to its baseline. The long form is the 8-minute soak.
func TestReliabilityChurn(t *testing.T) {
	n := needTornet(t)
	rate := pick(10, 100) // streams a second
	dur := pick(15*time.Second, 8*time.Minute)
	identities := pick(5, 20)
	s := startSocksd(t, reliabilityConfig(4096, "30s", ""))
	for i := range identities {
		fetchUntilOK(t, n, s, fmt.Sprintf("churn-%d", i), 60*time.Second)
	}
	base := mustSample(t, s)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	peak := peakRSS(s, time.Second, stop)
	var rssMu sync.Mutex
	var rss []int64
	sampler := time.NewTicker(5 * time.Second)
	defer sampler.Stop()
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-sampler.C:
				if p, err := sampleProc(s); err == nil {
					rssMu.Lock()
					rss = append(rss, p.RSS)
					rssMu.Unlock()
				}
			}
		}
	}()
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	sem := make(chan struct{}, 4*rate)
	t0 := time.Now()
	total := 0
	for time.Since(t0) < dur {
		<-tick.C
		sem <- struct{}{}
		user := fmt.Sprintf("churn-%d", total%identities)
		total++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fetchThrough(n, s.Addr, user, 60*time.Second); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	close(stop)
	pk := <-peak
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d streams failed (first: %v)", f, total, firstErr.Load())
	}
	if pk > rssBound() {
		t.Errorf("peak RSS %.1f MiB, bound %.1f MiB", float64(pk)/(1<<20), float64(rssBound())/(1<<20))
	}
	rssMu.Lock()
	var drift string
	if len(rss) >= 4 {
		// Flat: the last quarter's RSS is not far above the first's.
		q := len(rss) / 4
		first, last := maxOf(rss[:q]), maxOf(rss[len(rss)-q:])
		drift = fmt.Sprintf("; RSS first quarter %.1f MiB, last quarter %.1f MiB", float64(first)/(1<<20), float64(last)/(1<<20))
		if last > first+first/2 {
			t.Errorf("RSS grew from %.1f to %.1f MiB over the soak", float64(first)/(1<<20), float64(last)/(1<<20))
		}
	}
	rssMu.Unlock()
	after, rec := waitBaseline(t, s, base, 30*time.Second)
	report(t, "%d streams in %.0fs (%d/s target) from %d identities: %d ok, %d failed; peak RSS %.1f MiB%s; baseline %v -> %v after %.2fs",
		total, took.Seconds(), rate, identities, ok.Load(), failed.Load(), float64(pk)/(1<<20), drift, base, after, rec.Seconds())
}

func maxOf(v []int64) int64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
