package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

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

// httpConnect sends a CONNECT to target with headers and returns the
// whole answer (the recorder refuses every stream, so the server closes).
func httpConnect(t *testing.T, h *harness, target, headers string) string {
	t.Helper()
	c := h.dial()
	if _, err := c.Write([]byte("CONNECT " + target + " HTTP/1.1\r\n" + headers + "\r\n")); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	return string(got)
}

// TestHTTPStreamOptions: HTTP CONNECT's Tor-Stream-Options header carries
// each option of the model, in the pt-spec syntax of the SOCKS form.
func TestHTTPStreamOptions(t *testing.T) {
	rec := &reqRecorder{code: socks5.ReplyOnionDescNotFound}
	h := newHarness(t, hopt{upstream: rec, settings: func(st *dispatch.Settings) { st.ExtendedErrors = false }})
	const onion = "abcdefgh.onion:80"
	opt := func(v string) string { return "Tor-Stream-Options: " + v + "\r\n" }

	// lifetime and keep_alive reach the upstream; either lifetime syntax.
	httpConnect(t, h, onion, opt("lifetime=90;keep_alive=1"))
	if r := rec.take(t); r.Lifetime != 90*time.Second || !r.KeepAlive {
		t.Errorf("lifetime %v keep_alive %v, want 1m30s true", r.Lifetime, r.KeepAlive)
	}
	httpConnect(t, h, onion, opt("lifetime=60s;keep_alive=false"))
	if r := rec.take(t); r.Lifetime != time.Minute || r.KeepAlive {
		t.Errorf("lifetime %v keep_alive %v, want 1m0s false", r.Lifetime, r.KeepAlive)
	}

	// isolation: the option, the header and both agreeing are one
	// identity (the <torS0X>0 credentials); another token is another.
	keys := map[string]string{}
	for name, hdr := range map[string]string{
		"option":      opt("isolation=tok"),
		"header":      "Tor-Stream-Isolation: tok\r\n",
		"both":        opt("isolation=tok") + "X-Tor-Stream-Isolation: tok\r\n",
		"empty other": opt("isolation=tok") + "Tor-Stream-Isolation:\r\n",
		"tor-iso":     opt("isolation=tok") + "Proxy-Authorization: Basic dG9yLWlzbzp0b2s=\r\n",
	} {
		httpConnect(t, h, onion, hdr)
		r := rec.take(t)
		if string(r.Username) != socksproto.TorIsolationUsername || string(r.Password) != "tok" {
			t.Errorf("%s: credentials %q/%q, want the token tok", name, r.Username, r.Password)
		}
		keys[r.Key.String()] = name
	}
	httpConnect(t, h, onion, opt(`isolation=o\;ther`))
	other := rec.take(t)
	if len(keys) != 1 || keys[other.Key.String()] != "" || string(other.Password) != "o;ther" {
		t.Errorf("keys %v, other token %q: want one identity for tok and another for o;ther", keys, other.Password)
	}

	// fresh: never a key another stream has, even with the same token.
	fresh := map[string]bool{other.Key.String(): true}
	for i := 0; i < 3; i++ {
		httpConnect(t, h, onion, opt(`isolation=o\;ther;fresh=1`))
		fresh[rec.take(t).Key.String()] = true
	}
	if len(fresh) != 4 {
		t.Errorf("%d distinct keys for 3 fresh streams and 1 plain, want 4", len(fresh))
	}

	// extended_errors: the code in Tor-Request-Failed, as in SOCKS's reply.
	for _, tc := range []struct{ opts, want string }{
		{"", "HTTP/1.1 503 Service Unavailable (host unreachable)\r\n"},
		{opt("extended_errors=1"), "Tor-Request-Failed: 0xf0 "},
		{opt("extended_errors=0"), "Tor-Request-Failed: 0x04 "},
	} {
		if got := httpConnect(t, h, onion, tc.opts); !strings.Contains(got, tc.want) {
			t.Errorf("%q: got %q, want %q in it", tc.opts, got, tc.want)
		}
		rec.take(t)
	}

	// onion_only: an exit destination is refused (403, 0x02) before
	// anything reaches Tor; the onion service goes through.
	for _, dest := range []string{"example.com:443", "192.0.2.1:80", "[2001:db8::1]:80"} {
		got := httpConnect(t, h, dest, opt("onion_only=1"))
		if !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden") || !strings.Contains(got, "Tor-Request-Failed: 0x02 ") {
			t.Errorf("onion_only to %s: %q, want 403 with 0x02", dest, got)
		}
	}
	httpConnect(t, h, onion, opt("onion_only=true"))
	rec.take(t)
}

// TestHTTPStreamOptionsRefused: an unknown key, a bad value, a malformed
// list, a repeated header or an isolation that contradicts
// Tor-Stream-Isolation is a 400 whose Tor-Request-Failed says why (and
// never names the destination), with a warning that does not carry the
// value; nothing reaches Tor. Unknown other Tor-* headers are ignored.
func TestHTTPStreamOptionsRefused(t *testing.T) {
	rec := &reqRecorder{}
	core, logs := observer.New(zap.WarnLevel)
	h := newHarness(t, hopt{upstream: rec, log: zap.New(core)})
	const dest = "secret-destination.onion:80"
	cases := []struct{ headers, reason string }{
		{"Tor-Stream-Options: colour=red\r\n", `unknown key "colour"`},
		{"Tor-Stream-Options: fresh=yes\r\n", "fresh wants 1, 0, true or false"},
		{"Tor-Stream-Options: lifetime=0\r\n", "lifetime wants"},
		{"Tor-Stream-Options: onion_only=1;onion_only=1\r\n", "onion_only given twice"},
		{"Tor-Stream-Options: fresh\r\n", "has no '='"},
		{"Tor-Stream-Options: isolation=x\\\r\n", "Tor-Stream-Options"},
		{"Tor-Stream-Options: fresh=1\r\ntor-stream-options: fresh=1\r\n", "Tor-Stream-Options repeated"},
		{"Tor-Stream-Isolation: a\r\nTor-Stream-Options: isolation=b\r\n", "isolation differs from Tor-Stream-Isolation"},
		{"Tor-Stream-Options: isolation=b\r\nX-Tor-Stream-Isolation: a\r\n", "isolation differs from Tor-Stream-Isolation"},
	}
	for _, tc := range cases {
		got := httpConnect(t, h, dest, tc.headers)
		line, _, _ := strings.Cut(got, "\r\n")
		failed := ""
		for _, l := range strings.Split(got, "\r\n") {
			if v, ok := strings.CutPrefix(l, "Tor-Request-Failed: 0x01 "); ok {
				failed = v
			}
		}
		if !strings.HasPrefix(line, "HTTP/1.1 400 ") || !strings.Contains(failed, tc.reason) ||
			!strings.HasPrefix(failed, "Tor-Stream-Options") || strings.Contains(got, "secret") {
			t.Errorf("%q: got %q, want 400 with Tor-Request-Failed 0x01 %q", tc.headers, got, tc.reason)
		}
	}
	rec.mu.Lock()
	if n := len(rec.reqs); n != 0 {
		t.Errorf("%d refused requests reached the upstream", n)
	}
	rec.mu.Unlock()
	if got := h.counter("socksd_connections_total", "protocol", "http", "outcome", "rejected"); got != float64(len(cases)) {
		t.Errorf("rejected = %v, want %d", got, len(cases))
	}
	// One warning (rate-limited), without the value or the destination.
	warns := logs.FilterMessageSnippet("Tor-Stream-Options").All()
	if len(warns) != 1 {
		t.Fatalf("%d warnings, want 1 (rate-limited)", len(warns))
	}
	if s := fmt.Sprint(warns[0].Message, warns[0].ContextMap()); strings.Contains(s, "colour") || strings.Contains(s, "secret") {
		t.Errorf("warning carries the client's data: %s", s)
	}

	// Tor-* headers socksd does not know are ignored, not refused.
	httpConnect(t, h, dest, "Tor-Family-Preference: ipv6-only\r\nX-Tor-Stream-Options: colour=red\r\n")
	if r := rec.take(t); r.Host != "secret-destination.onion" {
		t.Errorf("request with unknown Tor-* headers: host %q", r.Host)
	}
}
