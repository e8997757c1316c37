package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"golang.org/x/net/proxy"

	"socksd/dispatch"
	"socksd/isolation"
	"socksd/socks5"
)

// keyRecorder is an Upstream that records each request's isolation key
// and refuses the stream (the key is all these tests need).
type keyRecorder struct {
	mu   sync.Mutex
	keys []isolation.Key
}

func (k *keyRecorder) Open(_ context.Context, req *dispatch.Request, _ []byte) (dispatch.Stream, error) {
	k.mu.Lock()
	k.keys = append(k.keys, req.Key)
	k.mu.Unlock()
	return nil, &socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: errors.New("recorder")}
}

func (k *keyRecorder) last(t *testing.T) isolation.Key {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.keys) == 0 {
		t.Fatal("no request reached the upstream")
	}
	return k.keys[len(k.keys)-1]
}

// keyOf opens one SOCKS5 stream as user and returns the key it got.
func keyOf(t *testing.T, h *harness, rec *keyRecorder, user string) isolation.Key {
	t.Helper()
	var auth *proxy.Auth
	if user != "" {
		auth = &proxy.Auth{User: user, Password: "pw"}
	}
	d, err := proxy.SOCKS5("tcp", h.addr, auth, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := d.Dial("tcp", "example.com:80"); err == nil {
		c.Close()
		t.Fatal("the recorder refuses every stream")
	}
	return rec.last(t)
}

// TestNewUserEpoch: renewing one username changes that username's keys
// only; a global NewEpoch changes every key; keys are stable otherwise.
func TestNewUserEpoch(t *testing.T) {
	rec := &keyRecorder{}
	h := newHarness(t, hopt{upstream: rec})

	alice0, bob0, anon0 := keyOf(t, h, rec, "alice"), keyOf(t, h, rec, "bob"), keyOf(t, h, rec, "")
	if keyOf(t, h, rec, "alice") != alice0 {
		t.Fatal("same user, same epoch: key changed")
	}
	if alice0 == bob0 {
		t.Fatal("two users share a key")
	}

	if e := h.srv.NewUserEpoch([]byte("alice")); e != 1 {
		t.Fatalf("first renewal of alice: epoch %d, want 1", e)
	}
	alice1 := keyOf(t, h, rec, "alice")
	if alice1 == alice0 {
		t.Fatal("alice renewed but her key did not change")
	}
	if keyOf(t, h, rec, "bob") != bob0 || keyOf(t, h, rec, "") != anon0 {
		t.Fatal("renewing alice changed another identity's key")
	}
	if keyOf(t, h, rec, "alice") != alice1 {
		t.Fatal("alice's new key is not stable")
	}

	h.srv.NewEpoch()
	for _, u := range []struct {
		name string
		old  []isolation.Key
	}{{"alice", []isolation.Key{alice0, alice1}}, {"bob", []isolation.Key{bob0}}, {"", []isolation.Key{anon0}}} {
		k := keyOf(t, h, rec, u.name)
		for _, o := range u.old {
			if k == o {
				t.Fatalf("user %q kept an old key after NewEpoch", u.name)
			}
		}
	}
}

// TestClientAppLookup: with client_app, an identified application gets a
// key of its own, a failed lookup falls back to the shared unknown
// identity, and both are counted.
func TestClientAppLookup(t *testing.T) {
	rec := &keyRecorder{}
	var mu sync.Mutex
	next := isolation.App{}
	var nextErr error
	h := newHarness(t, hopt{
		upstream: rec,
		policy:   isolation.Policy{Fields: isolation.Default | isolation.SessionGroup | isolation.ClientApp, SessionGroup: "test"},
		appLookup: func(net.Conn) (isolation.App, error) {
			mu.Lock()
			defer mu.Unlock()
			return next, nextErr
		},
	})
	set := func(a isolation.App, err error) { mu.Lock(); next, nextErr = a, err; mu.Unlock() }

	set(isolation.App{Known: true, UID: 1000, Exe: "/usr/bin/curl"}, nil)
	curl := keyOf(t, h, rec, "")
	set(isolation.App{Known: true, UID: 1000, Exe: "/usr/bin/firefox"}, nil)
	firefox := keyOf(t, h, rec, "")
	set(isolation.App{UID: 1000}, errors.New("owner not found"))
	unknown1 := keyOf(t, h, rec, "")
	unknown2 := keyOf(t, h, rec, "")
	if curl == firefox || curl == unknown1 || firefox == unknown1 {
		t.Fatal("applications share a key")
	}
	if unknown1 != unknown2 {
		t.Fatal("unidentified clients with equal fields got different keys")
	}
	if f, u := h.counter("socksd_client_app_lookups_total", "result", "found"), h.counter("socksd_client_app_lookups_total", "result", "unknown"); f != 2 || u != 2 {
		t.Fatalf("lookups counted found=%v unknown=%v, want 2 and 2", f, u)
	}

	// Renewing one application moves its key only.
	if e := h.srv.NewAppEpoch("/usr/bin/curl"); e != 1 {
		t.Fatalf("first renewal of curl: epoch %d", e)
	}
	set(isolation.App{Known: true, UID: 1000, Exe: "/usr/bin/curl"}, nil)
	curl1 := keyOf(t, h, rec, "")
	if curl1 == curl || keyOf(t, h, rec, "") != curl1 {
		t.Fatal("renewed application: key unchanged or unstable")
	}
	set(isolation.App{Known: true, UID: 1000, Exe: "/usr/bin/firefox"}, nil)
	if keyOf(t, h, rec, "") != firefox {
		t.Fatal("renewing curl changed firefox's key")
	}
	set(isolation.App{UID: 1000}, errors.New("owner not found"))
	if keyOf(t, h, rec, "") != unknown1 {
		t.Fatal("renewing curl changed the unknown application's key")
	}
}

// TestRenewalTableFull: past the bound, a renewal renews everyone.
func TestRenewalTableFull(t *testing.T) {
	rec := &keyRecorder{}
	h := newHarness(t, hopt{upstream: rec})
	carol := keyOf(t, h, rec, "carol")
	for i := 0; i < 4096; i++ {
		if h.srv.NewUserEpoch([]byte(fmt.Sprint("user", i))) != 1 {
			t.Fatalf("renewal %d refused early", i)
		}
	}
	if keyOf(t, h, rec, "carol") != carol {
		t.Fatal("carol's key moved before the table was full")
	}
	if e := h.srv.NewUserEpoch([]byte("one too many")); e != 0 {
		t.Fatalf("renewal past the bound: epoch %d, want 0 (global renewal)", e)
	}
	if keyOf(t, h, rec, "carol") == carol {
		t.Fatal("a full table did not renew every identity")
	}
}
