package torup

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"

	"socksd/internal/testutil"
)

// bridgeTable is a stand-in for the DNS bridge's Lookup.
func bridgeTable(m map[string]string, calls *atomic.Int32) func(netip.Addr) (string, bool) {
	return func(a netip.Addr) (string, bool) {
		if calls != nil {
			calls.Add(1)
		}
		name, ok := m[a.String()]
		return name, ok
	}
}

// Tor reports a stream to a virtual address by the address (the MAPADDRESS
// applies only at ATTACHSTREAM): the attacher must see through it.
func TestVirtualAddressRouting(t *testing.T) {
	table := map[string]string{
		"127.200.3.4": "wx2ksuljux3hhrk6pdbt4fr2owp4rlnvdpaaaoxrvujgwckskstrgrid.onion",
		"127.200.3.5": "Hidden.Example.ONION.",
		"127.200.3.6": "www.example.test.$1234567890ABCDEF1234567890ABCDEF12345678.exit",
		"127.200.3.7": "www.example.test",
		"fe80::1:2":   "abc.onion",
	}
	for _, c := range []struct {
		name, target string
		handBack     bool
	}{
		{"virtual onion", "127.200.3.4", true},
		{"virtual onion, odd case, final dot", "127.200.3.5", true},
		{"virtual exit", "127.200.3.6", true},
		{"virtual ordinary name", "127.200.3.7", false},
		{"virtual IPv6 onion", "fe80::1:2", true},
		{"unmapped address", "127.200.9.9", false},
		{"literal exit", "www.example.test.$1234567890ABCDEF1234567890ABCDEF12345678.exit", true},
		{"ordinary name", "www.example.test", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, attacherConfig{})
			h.a.setVirtualLookup(bridgeTable(table, nil))
			h.open("127.0.0.1:40001", testKey("a"))
			h.streamNew("5", c.target, "127.0.0.1:40001")
			calls := h.settle()
			if c.handBack {
				if len(calls) != 1 || calls[0] != "ATTACHSTREAM 5 0" {
					t.Errorf("%s: %q, want only ATTACHSTREAM 5 0", c.target, calls)
				}
				// DETACHED goes back to Tor as well, never to a socksd circuit.
				h.stream("5", "DETACHED", "0", "REASON", "TIMEOUT")
				if calls := h.settle(); count(calls, "ATTACHSTREAM 5 0") != 2 || count(calls, "EXTENDCIRCUIT") != 0 {
					t.Errorf("after DETACHED: %q, want a second ATTACHSTREAM 5 0 and no circuit", calls)
				}
				return
			}
			if len(calls) != 1 || count(calls, "EXTENDCIRCUIT") != 1 {
				t.Errorf("%s: %q, want an EXTENDCIRCUIT for the key", c.target, calls)
			}
		})
	}
}

// Without a lookup, and for host names, the table is never consulted.
func TestVirtualLookupOnlyForAddresses(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.200.3.4", "127.0.0.1:40001")
	if calls := h.settle(); count(calls, "EXTENDCIRCUIT") != 1 {
		t.Fatalf("no lookup: %q, want the stream placed", calls)
	}
	var n atomic.Int32
	h.a.setVirtualLookup(bridgeTable(map[string]string{"127.200.3.4": "abc.onion"}, &n))
	h.open("127.0.0.1:40002", testKey("b"))
	h.streamNew("2", "host.example", "127.0.0.1:40002")
	h.stream("2", "SENTCONNECT", "7")
	h.settle()
	if got := n.Load(); got != 0 {
		t.Errorf("lookup called %d times for a host name and a non-NEW event, want 0", got)
	}
	h.open("127.0.0.1:40003", testKey("c"))
	h.streamNew("3", "127.200.3.4", "127.0.0.1:40003")
	if calls := h.settle(); count(calls, "ATTACHSTREAM 3 0") != 1 || n.Load() != 1 {
		t.Errorf("lookup set later: %q (%d lookups), want ATTACHSTREAM 3 0 after one lookup", calls, n.Load())
	}
	h.a.setVirtualLookup(nil)
	h.open("127.0.0.1:40004", testKey("c"))
	h.streamNew("4", "127.200.3.4", "127.0.0.1:40004")
	if calls := h.settle(); count(calls, "ATTACHSTREAM 4 0") != 0 {
		t.Errorf("lookup removed: %q, want stream 4 placed on a circuit", calls)
	}
}

// A stream first seen at CONTROLLER_WAIT (NEW missed while reconnecting)
// and identified by its credentials is routed the same way.
func TestVirtualOnionAtControllerWait(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	h.a.setVirtualLookup(bridgeTable(map[string]string{"127.200.3.4": "abc.onion"}, nil))
	k := testKey("a")
	h.open("127.0.0.1:40001", k)
	h.a.onStreamEvent(streamEvent{ID: "8", Status: "CONTROLLER_WAIT", CircID: "0", TargetHost: "127.200.3.4",
		Username: torS0X0, Password: k.String()})
	if calls := h.settle(); len(calls) != 1 || calls[0] != "ATTACHSTREAM 8 0" {
		t.Errorf("CONTROLLER_WAIT to a virtual onion: %q, want only ATTACHSTREAM 8 0", calls)
	}
}

func TestIsExit(t *testing.T) {
	for host, want := range map[string]bool{
		"a.$AB.exit": true, "A.$AB.EXIT.": true, "exit": false, "a.exit.example": false, "": false,
	} {
		if got := isExit(host); got != want {
			t.Errorf("isExit(%q) = %v, want %v", host, got, want)
		}
	}
}

// End to end over the scripted control port: SetVirtualLookup after Start
// reaches the attacher.
func TestSetVirtualLookupThroughControlPort(t *testing.T) {
	s := fakeTor(t, "127.0.0.1:9", "")
	tor := startFakeTor(t, s.Addr(), nil)
	testutil.WaitFor(t, "connected", tor.ctl.Connected)
	tor.SetVirtualLookup(bridgeTable(map[string]string{"127.200.3.4": "abc.onion"}, nil))
	k := keyOf("alice")
	r := newRegistration(k, "127.0.0.1:40001")
	tor.reg.add(r)
	defer tor.reg.remove(r)
	s.Push("650 STREAM 5 NEW 0 127.200.3.4:80 SOURCE_ADDR=127.0.0.1:40001 PURPOSE=USER")
	s.Push("650 STREAM 5 CONTROLLER_WAIT 0 127.200.3.4:80")
	s.Push("650 STREAM 6 NEW 0 127.200.3.9:80 SOURCE_ADDR=127.0.0.1:40001 PURPOSE=USER")
	testutil.WaitFor(t, "ATTACHSTREAM 5 0", func() bool { return received(s, "ATTACHSTREAM 5 0") == 1 })
	testutil.WaitFor(t, "EXTENDCIRCUIT for stream 6", func() bool { return received(s, "EXTENDCIRCUIT 0") == 1 })
	// Stream 6 (unmapped) waits for its circuit; stream 5 never does.
	s.Push("650 CIRC 101 BUILT $AA~a,$BB~b,$CC~c PURPOSE=CONTROLLER")
	testutil.WaitFor(t, "ATTACHSTREAM 6 101", func() bool { return received(s, "ATTACHSTREAM 6 101") == 1 })
	if n := received(s, "ATTACHSTREAM 5 "); n != 1 {
		t.Errorf("stream 5 attached %d times, want once (with 0)", n)
	}
}

// Events flow while the start-up resync runs: a stream reported on the new
// connection after Tor's stream-status snapshot is not in it, and must not
// be forgotten for that.
func TestResyncKeepsStreamsOfThisConnection(t *testing.T) {
	h := newHarness(t, attacherConfig{})
	r := h.open("127.0.0.1:40001", testKey("a"))
	h.streamNew("1", "127.0.0.1", "127.0.0.1:40001")
	if err := h.a.resync(context.Background(), h.f, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
		t.Fatal("a stream newer than the snapshot was ended")
	default:
	}
	h.f.waitCall(t, "EXTENDCIRCUIT", 1)
	h.settle()
	h.built("100", "$E1")
	h.f.waitCall(t, "ATTACHSTREAM 1 100", 1)
}
