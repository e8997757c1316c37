package torup

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Exact attach latency on an existing circuit, per stream: from STREAM NEW
// reaching the attacher to the 250 answering its ATTACHSTREAM (what
// socksd_tor_attach_latency_seconds{kind="existing"} observes, without the
// histogram's buckets). SOCKSD_TOR_LATENCY_N sets the stream count
// (default 300). Logs p50/p90/p99/max; fails only if p50 > 2 ms.
func TestRealAttachLatencyExact(t *testing.T) {
	e := realTor(t)
	n := 300
	if v, err := strconv.Atoi(os.Getenv("SOCKSD_TOR_LATENCY_N")); err == nil && v > 0 {
		n = v
	}
	tor, err := New(Config{
		Control: e.control, CookieFile: e.cookie, SOCKS: e.socks, Launch: "never",
		AttachStreams: true, CircuitLifetime: 10 * time.Minute, SOCKSTimeout: 60 * time.Second,
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lat := make(chan time.Duration, n+8)
	tor.att.attachedHook = func(id string) { // under a.mu
		if s := tor.att.streams[id]; s != nil && s.existing {
			lat <- tor.att.now().Sub(s.born)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	if err := tor.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer tor.Close()
	<-tor.ctl.Ready()
	for range n + 1 {
		if _, err := fetch(ctx, tor, connectReq("127.0.0.1", e.httpPort, "lat-exact")); err != nil {
			t.Fatal(err)
		}
	}
	close(lat)
	var d []time.Duration
	for x := range lat {
		d = append(d, x)
	}
	// A stream Tor detaches and socksd places again no longer counts as
	// "existing"; a few may drop out.
	if len(d) < n*9/10 {
		t.Fatalf("%d samples on an existing circuit, want >= %d", len(d), n*9/10)
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[int(p*float64(len(d)-1))] }
	t.Logf("attach latency, existing circuit, %d streams: p50 %v p90 %v p99 %v max %v",
		len(d), q(0.5).Round(time.Microsecond), q(0.9).Round(time.Microsecond), q(0.99).Round(time.Microsecond), d[len(d)-1].Round(time.Microsecond))
	if q(0.5) > 2*time.Millisecond {
		t.Errorf("p50 %v above 2 ms", q(0.5))
	}
}
