package torup

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// A virtual address MAPADDRESSed to the onion service (what the DNS bridge
// does) reaches it when socksd knows what the address stands for; without
// the lookup, Tor refuses the attach to a socksd circuit (551) and the
// stream fails: the bug this hook fixes.
func TestRealVirtualOnion(t *testing.T) {
	e := realTor(t)
	if e.Onion == "" {
		t.Skip("SOCKSD_TOR_ONION not set")
	}
	tor := startReal(t, e, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	d := tor.DNS()
	from, err := d.MapAddress(ctx, "0.0.0.0", e.Onion)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = d.MapAddress(ctx, from, from)
	})
	virt, err := netip.ParseAddr(from)
	if err != nil {
		t.Fatalf("MAPADDRESS answered %q: %v", from, err)
	}

	// Without the lookup: the stream is attached to a socksd circuit and
	// dies (documenting Tor's behaviour; if a future tor accepts it, the
	// fix is harmless, so only log).
	_, err = fetch(ctx, tor, connectReq(virt.String(), 80, "virt-user"))
	t.Logf("virtual onion without lookup: %v (code %#02x)", err, byte(replyCode(err)))

	var mu sync.Mutex
	looked := 0
	tor.SetVirtualLookup(func(a netip.Addr) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		looked++
		if a == virt {
			return e.Onion, true
		}
		return "", false
	})
	body, err := fetch(ctx, tor, connectReq(virt.String(), 80, "virt-user"))
	if err != nil || !strings.Contains(body, "hello from tornet") {
		t.Fatalf("virtual onion with lookup: %q, %v", body, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if looked == 0 {
		t.Error("the lookup was never consulted")
	}
}
