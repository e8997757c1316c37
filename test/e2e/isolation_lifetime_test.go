package e2e

import (
	"fmt"
	"testing"
	"time"
)

// Circuit lifetime (keep_alive) and attach_streams =
// false (isolation by the SOCKS credentials alone), on real tor.

// timedHop is a stream with the times that bracket socksd's decision:
// the request went out at Sent and the page was read by Done, so socksd
// attached the stream somewhere in between.
type timedHop struct {
	isoHop
	Sent, Done time.Time
}

func (r *isoRig) timed(t *testing.T, what, user string) timedHop {
	t.Helper()
	sent := time.Now()
	h := r.one(t, what, func() string { return r.socks5Via(t, user, "pw", r.n.HTTPPort) })
	return timedHop{h, sent, time.Now()}
}

// TestIsolationLifetime: a key's circuit takes new streams until
// circuit_lifetime after its first use, then a new one is built, even
// while a stream is still open on it; with keep_alive = true a circuit
// with a live stream keeps taking the key's streams past the lifetime and
// is replaced once idle.
func TestIsolationLifetime(t *testing.T) {
	t.Parallel()
	const lifetime = 4 * time.Second
	ct := startClientTor(t, "iso-life")
	obs := ct.observer(t)
	rig := func(t *testing.T, isolation string) *isoRig {
		// socks_timeout 20s: a stream left waiting fails fast (0x06).
		s := startSocksd(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt, Isolation: isolation, CircuitTimeout: "20s",
			TorExtra: fmt.Sprintf("circuit_lifetime = %q", lifetime.String())}))
		t.Cleanup(func() { s.Proc.Stop(10 * time.Second) }) // one controller per tor at a time
		torWaitController(t, obs, s)
		return &isoRig{n: needTornet(t), ct: ct, obs: obs, s: s}
	}
	// holdOpen opens a stream of user on the key's circuit and keeps it
	// open (CONNECT done, nothing sent) until the returned func is called.
	holdOpen := func(t *testing.T, r *isoRig, user string) (timedHop, func()) {
		sent := time.Now()
		mark := r.obs.mark()
		res := torSOCKS5(t, r.s.Addr, user, "pw", torCmdConnect, "127.0.0.1", r.n.HTTPPort, nil)
		if res.Code != 0 {
			t.Fatalf("held stream: reply %#x", res.Code)
		}
		circ := r.obs.streamsSince(t, mark, 1)[0]
		r.obs.wantSocksdCircuit(t, circ)
		return timedHop{isoHop{circ: circ}, sent, time.Now()}, func() { res.Conn.Close() }
	}

	t.Run("lifetime", func(t *testing.T) {
		r := rig(t, "")
		first, release := holdOpen(t, r, "alice")
		defer release()
		// firstUse is in [first.Sent, first.Done]: a stream done before
		// first.Sent+lifetime must be on the first circuit; one sent after
		// first.Done+lifetime must not (a live stream does not extend it
		// without keep_alive).
		var moved *timedHop
		for deadline := time.Now().Add(lifetime + 20*time.Second); time.Now().Before(deadline); {
			h := r.timed(t, "alice", "alice")
			switch {
			case h.Done.Before(first.Sent.Add(lifetime)) && h.circ != first.circ:
				t.Fatalf("alice moved from %s to %s %.1fs after first use, before circuit_lifetime %v", first.circ, h.circ, h.Done.Sub(first.Sent).Seconds(), lifetime)
			case h.Sent.After(first.Done.Add(lifetime)) && h.circ == first.circ:
				t.Fatalf("alice still on %s %.1fs after first use, past circuit_lifetime %v", first.circ, h.Sent.Sub(first.Done).Seconds(), lifetime)
			}
			if h.circ != first.circ {
				moved = &h
				break
			}
			time.Sleep(250 * time.Millisecond) // spacing of a bounded probe loop
		}
		if moved == nil {
			t.Fatalf("alice never left circuit %s", first.circ)
		}
		t.Logf("alice moved from %s to %s %.1fs after first use (lifetime %v, a stream still open on the old one)", first.circ, moved.circ, moved.Sent.Sub(first.Sent).Seconds(), lifetime)
		// The new circuit is the key's circuit now.
		if h := r.timed(t, "alice after the move", "alice"); h.circ != moved.circ {
			t.Errorf("after the move alice used %s, then %s", moved.circ, h.circ)
		}
	})

	t.Run("expired-idle", func(t *testing.T) {
		// The common case: an identity whose circuit expired while it had
		// no stream comes back (before the janitor's sweep closed it).
		r := rig(t, "")
		first := r.timed(t, "carol", "carol")
		for deadline := time.Now().Add(lifetime + 20*time.Second); ; {
			h := r.timed(t, "carol (idle between streams)", "carol")
			if h.Sent.After(first.Done.Add(lifetime)) && h.circ == first.circ {
				t.Fatalf("carol still on %s %.1fs after first use, past circuit_lifetime %v", first.circ, h.Sent.Sub(first.Done).Seconds(), lifetime)
			}
			if h.circ != first.circ {
				if h.Done.Before(first.Sent.Add(lifetime)) {
					t.Fatalf("carol moved before circuit_lifetime")
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("carol never left %s", first.circ)
			}
			time.Sleep(250 * time.Millisecond) // spacing of a bounded probe loop
		}
	})

	t.Run("keep_alive", func(t *testing.T) {
		r := rig(t, "keep_alive = true")
		first, release := holdOpen(t, r, "bob")
		// While the held stream lives, every bob stream stays on the
		// first circuit, up to well past the lifetime.
		var n int
		for time.Now().Before(first.Done.Add(lifetime + 2*time.Second)) {
			h := r.timed(t, "bob (held stream open)", "bob")
			if h.circ != first.circ {
				t.Fatalf("bob moved from %s to %s %.1fs after first use with keep_alive and a live stream", first.circ, h.circ, h.Sent.Sub(first.Sent).Seconds())
			}
			n++
			time.Sleep(250 * time.Millisecond) // spacing of a bounded probe loop
		}
		t.Logf("bob kept circuit %s for %d streams over %.1fs (lifetime %v) while a stream was open", first.circ, n, time.Since(first.Sent).Seconds(), lifetime)
		release()
		// Idle and past its lifetime: the next streams move (once Tor has
		// reported the held stream closed).
		deadline := time.Now().Add(15 * time.Second)
		for {
			h := r.timed(t, "bob (held stream closed)", "bob")
			if h.circ != first.circ {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bob still on %s 15s after its last stream closed, past the lifetime", first.circ)
			}
			time.Sleep(250 * time.Millisecond) // spacing of a bounded probe loop
		}
	})
}

// TestIsolationNoAttach: with attach_streams = false Tor picks the
// circuits itself, and the isolation key socksd sends as <torS0X>0
// credentials still keeps identities apart: no circuit ever carries both
// alice and bob. (Tor does not promise one circuit per identity: with
// conflux it moved alice's second stream to a fresh linked set.)
func TestIsolationNoAttach(t *testing.T) {
	t.Parallel()
	n := needTornet(t)
	ct := startClientTor(t, "iso-noattach")
	obs := ct.observer(t)
	s := startSocksd(t, attachConfig(ct, attachOpts{SOCKS: ct.SOCKSExt, NoAttach: true}))
	r := &isoRig{n: n, ct: ct, obs: obs, s: s}
	owner := map[string]string{} // circuit → identity
	for i := range 6 {
		user := []string{"alice", "bob"}[i%2]
		mark := obs.mark()
		via := r.socks5Via(t, user, "pw", n.HTTPPort)
		circ := obs.streamsSince(t, mark, 1)[0]
		c, _ := obs.circInfo(t, circ)
		if c.Purposes["CONTROLLER"] {
			t.Fatalf("%s: stream on controller circuit %s with attach_streams = false", user, circ)
		}
		if c.Path != "" {
			torWantCircuitExit(t, n, c, via)
		}
		if o, ok := owner[circ]; ok && o != user {
			t.Errorf("circuit %s carries %s and %s", circ, o, user)
		}
		owner[circ] = user
		t.Logf("%-6s circuit %-4s (%s) exit %s", user, circ, c.KV["PURPOSE"], via)
	}
	if v := torLeaveUnattached(t, obs); v != "0" {
		t.Errorf("__LeaveStreamsUnattached=%s with attach_streams = false", v)
	}
}
