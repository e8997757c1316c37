package run

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestIsolation: two runs at the same time never share a circuit; two runs
// with the same -identity do. Each run fetches its own name in the test
// zone (every *.example.test resolves to the HTTP server at the exits), so
// Tor's STREAM events tell the runs apart.
func TestIsolation(t *testing.T) {
	n := needTornet(t)
	w := watchStreams(t)
	tag := strconv.Itoa(rand.IntN(1 << 30))
	target := func(run string) string { return fmt.Sprintf("%s-%s.example.test", run, tag) }
	url := func(run string) string { return "http://" + target(run) + ":" + strconv.Itoa(n.HTTPPort) + "/via" }
	runs := []struct {
		name  string
		flags []string
	}{
		{"a", nil},
		{"b", nil},
		{"c", []string{"-identity", "shared-" + tag}},
		{"d", []string{"-identity", "shared-" + tag}},
	}
	var wg sync.WaitGroup
	results := make([]result, len(runs))
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = jail(t, r.flags, fetcherBin, url(r.name))
		}()
	}
	wg.Wait()
	circ := map[string]string{}
	for i, r := range runs {
		if results[i].code != 0 || !strings.HasPrefix(results[i].stdout, "OK exit") {
			t.Fatalf("run %s: %v", r.name, results[i])
		}
		_, ev := w.succeeded(t, target(r.name)+":"+strconv.Itoa(n.HTTPPort))
		circ[r.name] = ev.Circ
	}
	t.Logf("circuits: %v", circ)
	if circ["a"] == circ["b"] {
		t.Errorf("two concurrent runs shared circuit %s", circ["a"])
	}
	for _, o := range []string{"a", "b"} {
		if circ["c"] == circ[o] {
			t.Errorf("an -identity run shared circuit %s with run %s", circ["c"], o)
		}
	}
	if circ["c"] != circ["d"] {
		t.Errorf("two runs with the same -identity used circuits %s and %s, want one", circ["c"], circ["d"])
	}
}
