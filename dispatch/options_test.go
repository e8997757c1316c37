package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"socksd/dispatch"
	"socksd/socks5"
	"socksd/socksproto"
)

// reqRecorder is an Upstream that records each request and refuses the
// stream with code.
type reqRecorder struct {
	mu   sync.Mutex
	reqs []dispatch.Request
	code socks5.Reply
}

func (r *reqRecorder) Open(_ context.Context, req *dispatch.Request, _ []byte) (dispatch.Stream, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, *req)
	r.mu.Unlock()
	code := r.code
	if code == 0 {
		code = socks5.ReplyGeneralFailure
	}
	return nil, &socks5.ReplyError{Code: code, Err: errors.New("recorder")}
}

func (r *reqRecorder) take(t *testing.T) dispatch.Request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) != 1 {
		t.Fatalf("%d requests reached the upstream, want 1", len(r.reqs))
	}
	req := r.reqs[0]
	r.reqs = nil
	return req
}

const connectOnion = "05 01 00 03 0e 'abcdefgh.onion' 0050"

// exchange writes in, reads the len(want) bytes of the answer and
// compares them.
func exchange(t *testing.T, h *harness, in []byte, want string) {
	t.Helper()
	c := h.dial()
	if _, err := c.Write(in); err != nil {
		t.Fatal(err)
	}
	expectBytes(t, c, hexb(want))
}

// wire is hexb that also takes 'quoted text' verbatim.
func wire(s string) []byte {
	var out []byte
	for i, part := range strings.Split(s, "'") {
		if i%2 == 1 {
			out = append(out, part...)
		} else {
			out = append(out, hexb(part)...)
		}
	}
	return out
}

// ext is a proposal 229 greeting and request carrying pairs.
func ext(pairs ...[2]string) []byte {
	return append([]byte{5, 1, 0x97}, socks5.AppendExtAuth(nil, pairs...)...)
}

// userPass is a SOCKS5 greeting and RFC 1929 message.
func userPass(user, pass []byte) []byte {
	b := []byte{5, 1, 2, 1, byte(len(user))}
	b = append(b, user...)
	b = append(b, byte(len(pass)))
	return append(b, pass...)
}

// TestStreamOptionsIsolationForms: one isolation token is one identity
// whether it came as 0x97's isolation pair, as pt-spec arguments or as
// the "<torS0X>0" username; another token is another identity.
func TestStreamOptionsIsolationForms(t *testing.T) {
	rec := &reqRecorder{}
	plain := newHarness(t, hopt{upstream: rec})
	pt := newHarness(t, hopt{upstream: rec, ptArgs: true})
	const fail = "05 01 00 01 00000000 0000"

	exchange(t, plain, append(ext([2]string{"isolation", "tok"}), wire(connectOnion)...), "05 97 01 00 0000 "+fail)
	viaExt := rec.take(t)
	exchange(t, pt, append(userPass([]byte("isolation=tok"), []byte{0}), wire(connectOnion)...), "05 02 01 00 "+fail)
	viaArgs := rec.take(t)
	exchange(t, plain, append(userPass([]byte(socksproto.TorIsolationUsername), []byte("tok")), wire(connectOnion)...), "05 02 01 00 "+fail)
	viaTorS0X := rec.take(t)
	exchange(t, plain, append(ext([2]string{"isolation", "other"}), wire(connectOnion)...), "05 97 01 00 0000 "+fail)
	other := rec.take(t)

	// The pt_args listener is another session group (its own address),
	// so compare what the key is derived from there, and the keys where
	// the group is the same.
	if viaExt.Key != viaTorS0X.Key {
		t.Error("0x97 isolation=tok and <torS0X>0/tok got different keys")
	}
	if viaExt.Key == other.Key {
		t.Error("two tokens share a key")
	}
	if string(viaArgs.Username) != socksproto.TorIsolationUsername || string(viaArgs.Password) != "tok" ||
		string(viaExt.Username) != socksproto.TorIsolationUsername || string(viaExt.Password) != "tok" {
		t.Errorf("credentials: args %q/%q, 0x97 %q/%q", viaArgs.Username, viaArgs.Password, viaExt.Username, viaExt.Password)
	}
}

// TestStreamOptionsFresh: fresh streams never share a key, with each
// other or with the same identity without fresh.
func TestStreamOptionsFresh(t *testing.T) {
	rec := &reqRecorder{}
	h := newHarness(t, hopt{upstream: rec})
	const fail = "05 97 01 00 0000 05 01 00 01 00000000 0000"
	keys := map[string]bool{}
	for i := 0; i < 3; i++ {
		exchange(t, h, append(ext([2]string{"isolation", "t"}, [2]string{"fresh", "1"}), wire(connectOnion)...), fail)
		keys[rec.take(t).Key.String()] = true
	}
	exchange(t, h, append(ext([2]string{"isolation", "t"}), wire(connectOnion)...), fail)
	keys[rec.take(t).Key.String()] = true
	if len(keys) != 4 {
		t.Errorf("%d distinct keys for 3 fresh streams and 1 plain, want 4", len(keys))
	}
}

// TestStreamOptionsLifetimeKeepAlive: lifetime and keep_alive travel on
// the request to the upstream; without them the listener's apply.
func TestStreamOptionsLifetimeKeepAlive(t *testing.T) {
	rec := &reqRecorder{}
	h := newHarness(t, hopt{upstream: rec})
	const fail = "05 97 01 00 0000 05 01 00 01 00000000 0000"
	exchange(t, h, append(ext([2]string{"lifetime", "90"}, [2]string{"keep_alive", "1"}), wire(connectOnion)...), fail)
	if r := rec.take(t); r.Lifetime != 90*time.Second || !r.KeepAlive {
		t.Errorf("lifetime %v keep_alive %v, want 1m30s true", r.Lifetime, r.KeepAlive)
	}
	exchange(t, h, append(ext(), wire(connectOnion)...), fail)
	if r := rec.take(t); r.Lifetime != 0 || r.KeepAlive {
		t.Errorf("no options: lifetime %v keep_alive %v, want the listener's (0, false)", r.Lifetime, r.KeepAlive)
	}
}

// TestStreamOptionsOnionOnly: onion_only refuses an exit destination and
// a RESOLVE with 0x02 before anything reaches Tor, and lets an onion
// service through.
func TestStreamOptionsOnionOnly(t *testing.T) {
	rec := &reqRecorder{}
	h := newHarness(t, hopt{upstream: rec})
	oo := ext([2]string{"onion_only", "1"})
	exchange(t, h, append(bytes.Clone(oo), wire("05 01 00 03 0b 'example.com' 0050")...), "05 97 01 00 0000 05 02 00 01 00000000 0000")
	exchange(t, h, append(bytes.Clone(oo), wire("05 01 00 01 c0000201 0050")...), "05 97 01 00 0000 05 02 00 01 00000000 0000")
	exchange(t, h, append(bytes.Clone(oo), wire("05 f0 00 03 0b 'example.com' 0000")...), "05 97 01 00 0000 05 02 00 00 00000000 0000")
	exchange(t, h, append(bytes.Clone(oo), wire(connectOnion)...), "05 97 01 00 0000 05 01 00 01 00000000 0000")
	rec.take(t) // only the onion reached the upstream
}

// TestStreamOptionsExtendedErrors: 0x97 turns Tor's onion codes on for
// its stream on a listener without extended_errors; extended_errors=0
// turns them off; a plain SOCKS5 client there gets the folded code.
func TestStreamOptionsExtendedErrors(t *testing.T) {
	rec := &reqRecorder{code: socks5.ReplyOnionDescNotFound}
	h := newHarness(t, hopt{upstream: rec, settings: func(st *dispatch.Settings) { st.ExtendedErrors = false }})
	exchange(t, h, append(ext(), wire(connectOnion)...), "05 97 01 00 0000 05 f0 00 01 00000000 0000")
	rec.take(t)
	exchange(t, h, append(ext([2]string{"extended_errors", "0"}), wire(connectOnion)...), "05 97 01 00 0000 05 04 00 01 00000000 0000")
	rec.take(t)
	exchange(t, h, wire("05 01 00 "+connectOnion), "05 00 05 04 00 01 00000000 0000")
	rec.take(t)
}

// TestStreamOptionsPTArgsRefused: on a pt_args listener, arguments that
// are not stream options are refused (SOCKS5 0x01, SOCKS4 0x5B) before
// anything reaches Tor; a 0x97 client gets status 0x02 on any listener.
func TestStreamOptionsPTArgsRefused(t *testing.T) {
	rec := &reqRecorder{}
	h := newHarness(t, hopt{upstream: rec, ptArgs: true})
	for _, args := range []string{"alice", "colour=red", "fresh=yes", "isolation=a;isolation=b", `isolation=x\`} {
		exchange(t, h, append(userPass([]byte(args), []byte{0}), wire(connectOnion)...), "05 02 01 00 05 01 00 01 00000000 0000")
		u := []byte{4, 1, 0, 80, 0, 0, 0, 1}
		u = append(append(append(u, args...), 0), "abcdefgh.onion\x00"...)
		exchange(t, h, u, "00 5b 0000 00000000")
	}
	exchange(t, h, append(ext([2]string{"colour", "red"}), wire(connectOnion)...), "05 97 01 02 0000")
	// A list longer than 255 bytes continues in the password.
	tok := strings.Repeat("t", 300)
	args := socksproto.AppendArgs(nil, [2]string{"isolation", tok})
	u, p := socksproto.SplitArgs(args)
	exchange(t, h, append(userPass(u, p), wire(connectOnion)...), "05 02 01 00 05 01 00 01 00000000 0000")
	if r := rec.take(t); string(r.Password) != tok {
		t.Errorf("split token: %d bytes, want 300", len(r.Password))
	}
	// SOCKS4 userid arguments.
	s4 := append([]byte{4, 1, 0, 80, 0, 0, 0, 1}, "isolation=four\x00abcdefgh.onion\x00"...)
	exchange(t, h, s4, "00 5b 0000 00000000")
	if r := rec.take(t); string(r.Password) != "four" || string(r.Username) != socksproto.TorIsolationUsername {
		t.Errorf("socks4 args: %q/%q", r.Username, r.Password)
	}
}
