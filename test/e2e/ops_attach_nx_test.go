package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"socksd/test/tornet"
)

// TestOpsAttachNXName: with stream attaching on, a name that no exit can
// resolve must fail with SOCKS5 0x04 (host unreachable) within seconds
// and a bounded number of circuits. Tor detaches such a stream after
// RESOLVEFAILED and retries on another exit, at most MAX_RESOLVE_FAILURES
// (3) times per address (relay.c, connection_ap_process_end_not_open);
// the attacher must not keep building circuits looking for an exit it
// has not tried when Tor's path selection cannot give it one (e.g. the
// only untried exit is the client's guard).
func TestOpsAttachNXName(t *testing.T) {
	n := needTornet(t)
	d := startDNSDaemon(t, OpsConfig, "", opsExtra(12))
	waitTorUsable(t, d, 60*time.Second)
	before := scrape(t, d.Metrics)
	const tries = 8
	var codes []string
	var worst time.Duration
	var perStream []float64
	launchedNow := func() float64 { return metricSum(scrape(t, d.Metrics), "socksd_tor_circuits_launched_total") }
	for i := range tries {
		l0 := launchedNow()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		name := fmt.Sprintf("nx%d-%d.invalid", i, time.Now().UnixNano())
		t0 := time.Now()
		// A new SOCKS username per try: a new isolation key, new circuits.
		c, err := tornet.DialSOCKS5(ctx, d.Listen, name, n.HTTPPort, fmt.Sprintf("nxuser%d", i), "x")
		took := time.Since(t0)
		cancel()
		worst = max(worst, took)
		if err == nil {
			c.Close()
			t.Fatalf("%s: connected", name)
		}
		var se *tornet.SOCKSError
		code := err.Error()
		if errors.As(err, &se) {
			code = fmt.Sprintf("0x%02x", se.Code)
		}
		codes = append(codes, fmt.Sprintf("%s in %v", code, took.Round(time.Millisecond)))
		perStream = append(perStream, launchedNow()-l0)
		if se == nil || se.Code != 0x04 {
			t.Errorf("try %d: %s after %v, want reply 0x04", i, err, took.Round(time.Millisecond))
		}
	}
	after := scrape(t, d.Metrics)
	launched := metricSum(after, "socksd_tor_circuits_launched_total") - metricSum(before, "socksd_tor_circuits_launched_total")
	t.Logf("%d unresolvable names: %v; circuits launched %v (per stream %v); slowest %v", tries, codes, launched, perStream, worst.Round(time.Millisecond))
	// Tor gives a failing name at most 3 exits; one circuit per exit tried
	// plus rebuilds while Tor's path selection (EXTENDCIRCUIT 0) picks an
	// exit the stream already tried: geometric, p(untried) >= 1/3 with 3
	// exits, so more than 25 for one stream is a loop, not bad luck
	// (observed once: 48 circuits in 2.6 s for one stream, then 0x01).
	for i, l := range perStream {
		if l > 25 {
			t.Errorf("try %d launched %v circuits: the attacher rebuilds without bound looking for an untried exit", i, l)
		}
	}
}
