package torup

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Concurrent MAPADDRESS calls (the DNS bridge's pattern: one per new name,
// 8 workers when re-pushing) share commands on a real tor: every caller
// gets its own virtual address, Tor holds every mapping, and the rate is
// logged.
func TestRealMapAddressBatched(t *testing.T) {
	e := realTor(t)
	tor := startReal(t, e, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := tor.DNS()
	const n, workers = 2000, 8
	stamp := time.Now().UnixNano()
	name := func(i int) string { return fmt.Sprintf("b%d-%d.example.test", stamp, i) }
	got := make([]string, n)
	run := func(fn func(i int) error) time.Duration {
		start := time.Now()
		next := make(chan int)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if err := fn(i); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		return time.Since(start)
	}
	took := run(func(i int) (err error) {
		got[i], err = d.MapAddress(ctx, "0.0.0.0", name(i))
		return err
	})
	t.Logf("%d new mappings from %d callers in %v: %.0f/s", n, workers, took, n/took.Seconds())
	seen := make(map[string]bool, n)
	for i, a := range got {
		if !strings.HasPrefix(a, "127.") || seen[a] {
			t.Fatalf("mapping %d: %q (duplicate: %v)", i, a, seen[a])
		}
		seen[a] = true
	}
	obs := observer(t, e)
	m, err := obs.GetInfo(ctx, "address-mappings/control")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		if want := got[i] + " " + name(i); !strings.Contains(m["address-mappings/control"], want) {
			t.Errorf("Tor lacks mapping %q", want)
		}
	}
	took = run(func(i int) error {
		_, err := d.MapAddress(ctx, got[i], got[i])
		return err
	})
	t.Logf("%d unmappings in %v", n, took)
	m, err = obs.GetInfo(ctx, "address-mappings/control")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m["address-mappings/control"], fmt.Sprintf("b%d-", stamp)) {
		t.Error("mappings left in Tor after unmapping")
	}
}
