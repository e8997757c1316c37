package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDaemon records what the endpoints asked for.
type fakeDaemon struct {
	mu      sync.Mutex
	healthy bool
	reason  string
	renewed int
	users   []string
	failTor error
}

func (f *fakeDaemon) handler() *Handler {
	return &Handler{
		Status: func() Status {
			return Status{
				Version:    "socksd test<&>",
				Started:    time.Now().Add(-time.Minute),
				Tor:        TorStatus{Mode: "control port", Control: "127.0.0.1:9051", SOCKS: "127.0.0.1:9050", Connected: true, Bootstrap: 85},
				Listeners:  []Listener{{Config: "127.0.0.1:9350", Addr: "127.0.0.1:9350"}},
				Streams:    map[string]int{"socks5": 3, "http-connect": 1},
				Identities: []Identity{{Key: "abcdef0123456789", Streams: 3, Circuits: []string{"17", "21"}}},
				DNS:        &DNSStatus{Listen: []string{"127.0.0.1:5353"}, Mappings: 42, Capacity: 1000, PoolExhausted: 47},
				Replies:    []ReplyCount{{Protocol: "socks5", Code: "0x04", Count: 7}},
				Recent:     []RecentError{{Time: time.Now(), Protocol: "socks4", Code: "0x04 host unreachable"}},
			}
		},
		Health: func(context.Context) (bool, string) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.healthy, f.reason
		},
		NewIdentity: func(context.Context) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.renewed++
			return f.failTor
		},
		NewUserIdentity: func(u string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.users = append(f.users, u)
			return nil
		},
		NewAppIdentity: func(exe string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.users = append(f.users, "app:"+exe)
			return nil
		},
	}
}

func serve(h *Handler, r *http.Request) (int, string) {
	mux := http.NewServeMux()
	h.Register(mux)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func req(method, target, remote string, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			r.Host = hdr[i+1]
			continue
		}
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

func TestHealthz(t *testing.T) {
	f := &fakeDaemon{healthy: false, reason: "Tor is bootstrapping (85%)"}
	h := f.handler()
	code, body := serve(h, req("GET", "http://127.0.0.1:9352/healthz", "127.0.0.1:5000"))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "bootstrapping (85%)") {
		t.Fatalf("unhealthy: %d %q", code, body)
	}
	f.healthy = true
	if code, body := serve(h, req("GET", "http://127.0.0.1:9352/healthz", "127.0.0.1:5000")); code != 200 || body != "ok\n" {
		t.Fatalf("healthy: %d %q", code, body)
	}
	if code, _ := serve(&Handler{}, req("GET", "http://127.0.0.1:9352/healthz", "127.0.0.1:5000")); code != http.StatusServiceUnavailable {
		t.Fatalf("no health check wired: %d, want 503", code)
	}
}

func TestNewnym(t *testing.T) {
	const url = "http://127.0.0.1:9352/newnym"
	for _, tc := range []struct {
		name    string
		r       *http.Request
		code    int
		renewed int
		users   []string
		body    string
	}{
		{"loopback v4", req("POST", url, "127.0.0.1:40000"), 200, 1, nil, "ok"},
		{"loopback v6", req("POST", "http://[::1]:9352/newnym", "[::1]:40000"), 200, 1, nil, "ok"},
		{"localhost host", req("POST", "http://localhost:9352/newnym", "127.0.0.1:40000"), 200, 1, nil, "ok"},
		{"one user", req("POST", url+"?user=alice", "127.0.0.1:40000"), 200, 0, []string{"alice"}, "username"},
		{"escaped user", req("POST", url+"?user=al%20ice%2B", "127.0.0.1:40000"), 200, 0, []string{"al ice+"}, "username"},
		{"remote client", req("POST", url, "192.0.2.7:40000"), 403, 0, nil, "loopback"},
		{"mapped remote", req("POST", url, "[::ffff:192.0.2.7]:40000"), 403, 0, nil, "loopback"},
		{"rebinding host", req("POST", url, "127.0.0.1:40000", "Host", "evil.example:9352"), 403, 0, nil, "Host"},
		{"cross origin", req("POST", url, "127.0.0.1:40000", "Origin", "https://evil.example"), 403, 0, nil, "cross-origin"},
		{"same origin", req("POST", url, "127.0.0.1:40000", "Origin", "http://127.0.0.1:9352"), 200, 1, nil, "ok"},
		{"empty user", req("POST", url+"?user=", "127.0.0.1:40000"), 400, 0, nil, "non-empty"},
		{"two users", req("POST", url+"?user=a&user=b", "127.0.0.1:40000"), 400, 0, nil, "exactly one"},
		{"one app", req("POST", url+"?app=/usr/bin/curl", "127.0.0.1:40000"), 200, 0, []string{"app:/usr/bin/curl"}, "application"},
		{"relative app", req("POST", url+"?app=curl", "127.0.0.1:40000"), 400, 0, nil, "absolute"},
		{"user and app", req("POST", url+"?app=/usr/bin/curl&user=a", "127.0.0.1:40000"), 400, 0, nil, "not both"},
		{"unknown parameter", req("POST", url+"?key=abc", "127.0.0.1:40000"), 400, 0, nil, `unknown parameter "key"`},
		{"GET shows help", req("GET", url, "127.0.0.1:40000"), 405, 0, nil, "curl -X POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeDaemon{}
			code, body := serve(f.handler(), tc.r)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tc.code, tc.body)
			}
			if f.renewed != tc.renewed || strings.Join(f.users, ",") != strings.Join(tc.users, ",") {
				t.Fatalf("renewed %d users %q, want %d %q", f.renewed, f.users, tc.renewed, tc.users)
			}
		})
	}
}

func TestNewnymTorFailure(t *testing.T) {
	f := &fakeDaemon{failTor: errors.New("control port down")}
	code, body := serve(f.handler(), req("POST", "http://127.0.0.1:9352/newnym", "127.0.0.1:1"))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "control port down") {
		t.Fatalf("got %d %q", code, body)
	}
}

func TestStatusPage(t *testing.T) {
	f := &fakeDaemon{healthy: false, reason: "Tor is bootstrapping (85%)"}
	code, body := serve(f.handler(), req("GET", "http://127.0.0.1:9352/", "127.0.0.1:1"))
	if code != 200 {
		t.Fatalf("GET /: %d", code)
	}
	for _, want := range []string{
		"socksd test&lt;&amp;&gt;", // escaped
		`id="tor-state" class="bad">Tor is NOT usable: Tor is bootstrapping (85%)`,
		`id="bootstrap">85%`,
		"127.0.0.1:9350",
		"<th>socks5</th><td>3</td>",
		"<code>abcdef0123456789</code></td><td>3</td><td>17 21 </td>",
		`id="mappings">42 of 1000`,
		`id="pool-full" class="bad">47 queries got SERVFAIL`,
		"0x04 host unreachable",
		"curl -X POST http://127.0.0.1:9352/newnym",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, ext := range []string{"<script", "src=", "http://fonts", "https://"} {
		if strings.Contains(body, ext) {
			t.Errorf("page has external or active content %q", ext)
		}
	}
	if code, _ := serve(f.handler(), req("GET", "http://127.0.0.1:9352/nothing", "127.0.0.1:1")); code != 404 {
		t.Errorf("GET /nothing: %d, want 404", code)
	}

	code, body = serve(f.handler(), req("GET", "http://127.0.0.1:9352/status", "127.0.0.1:1"))
	var s Status
	if code != 200 || json.Unmarshal([]byte(body), &s) != nil || s.Tor.Bootstrap != 85 || s.DNS.Mappings != 42 {
		t.Fatalf("GET /status: %d %q", code, body)
	}
}
