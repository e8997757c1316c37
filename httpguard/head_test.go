package httpguard

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

type wantHead struct {
	method, target, proto string
	connect               bool
	host                  string
	port                  uint16
	auth                  bool
	user, pass            string
}

var validHeads = []struct {
	name string
	in   string
	n    int // 0 = len(in)
	want wantHead
}{
	{"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 0,
		wantHead{"CONNECT", "example.com:443", "HTTP/1.1", true, "example.com", 443, false, "", ""}},
	{"connect http/1.0 no headers", "CONNECT 192.0.2.1:80 HTTP/1.0\r\n\r\n", 0,
		wantHead{"CONNECT", "192.0.2.1:80", "HTTP/1.0", true, "192.0.2.1", 80, false, "", ""}},
	{"connect ipv6", "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n", 0,
		wantHead{"CONNECT", "[2001:db8::1]:8443", "HTTP/1.1", true, "2001:db8::1", 8443, false, "", ""}},
	{"connect onion port 65535", "CONNECT 2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:65535 HTTP/1.1\r\n\r\n", 0,
		wantHead{"CONNECT", "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion:65535", "HTTP/1.1", true,
			"2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion", 65535, false, "", ""}},
	{"connect fqdn", "CONNECT example.com.:443 HTTP/1.1\r\n\r\n", 0,
		wantHead{"CONNECT", "example.com.:443", "HTTP/1.1", true, "example.com.", 443, false, "", ""}},
	{"connect with auth and early data", "CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n\x16\x03\x01", 77,
		wantHead{"CONNECT", "example.com:443", "HTTP/1.1", true, "example.com", 443, true, "user", "pass"}},
	{"connect bare LF", "CONNECT example.com:443 HTTP/1.1\nHost: x\n\n", 0,
		wantHead{"CONNECT", "example.com:443", "HTTP/1.1", true, "example.com", 443, false, "", ""}},
	{"connect mixed line ends", "CONNECT example.com:443 HTTP/1.1\r\nHost: x\n\r\n", 0,
		wantHead{"CONNECT", "example.com:443", "HTTP/1.1", true, "example.com", 443, false, "", ""}},
	{"get absolute uri", "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\n\r\n", 0,
		wantHead{"GET", "http://example.com/", "HTTP/1.1", false, "", 0, false, "", ""}},
	{"get origin form", "GET / HTTP/1.0\r\n\r\n", 0,
		wantHead{"GET", "/", "HTTP/1.0", false, "", 0, false, "", ""}},
	{"lower-case connect is another method", "connect example.com:443 HTTP/1.1\r\n\r\n", 0,
		wantHead{"connect", "example.com:443", "HTTP/1.1", false, "", 0, false, "", ""}},
	{"header OWS and empty value", "POST /x HTTP/1.1\r\nX-A:\t v \t\r\nX-Empty:\r\n\r\n", 0,
		wantHead{"POST", "/x", "HTTP/1.1", false, "", 0, false, "", ""}},
	{"obs-text in value", "GET / HTTP/1.1\r\nX-A: \xff\xfe\r\n\r\n", 0,
		wantHead{"GET", "/", "HTTP/1.1", false, "", 0, false, "", ""}},
	{"get body not part of head", "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody", 38,
		wantHead{"POST", "/", "HTTP/1.1", false, "", 0, false, "", ""}},
}

var badHeads = []struct {
	name string
	in   string
	err  error
}{
	{"no version", "GET /\r\n\r\n", ErrMalformed},
	{"http/0.9 line", "GET /\r\n", ErrMalformed},
	{"two spaces", "GET  / HTTP/1.1\r\n\r\n", ErrMalformed},
	{"trailing space", "GET / HTTP/1.1 \r\n\r\n", ErrMalformed},
	{"bad version", "GET / HTTP/11\r\n\r\n", ErrMalformed},
	{"version not http", "GET / FTP/1.1\r\n\r\n", ErrMalformed},
	{"method not a token", "GE(T / HTTP/1.1\r\n\r\n", ErrMalformed},
	{"control in target", "GET /\x01 HTTP/1.1\r\n\r\n", ErrMalformed},
	{"NUL in request line", "GET /\x00 HTTP/1.1\r\n\r\n", ErrMalformed},
	{"empty first line", "\r\n\r\n", ErrMalformed},
	{"garbage line refused at once", "GET\r\n", ErrMalformed},
	{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", ErrMalformed},
	{"no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", ErrMalformed},
	{"obs fold", "GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n", ErrMalformed},
	{"control in value", "GET / HTTP/1.1\r\nX-A: b\x00c\r\n\r\n", ErrMalformed},
	{"bare CR in value", "GET / HTTP/1.1\r\nX-A: b\rc\r\n\r\n", ErrMalformed},
	{"malformed header refused before the end", "GET / HTTP/1.1\r\n:x\r\n", ErrMalformed},
	// CONNECT targets.
	{"connect no port", "CONNECT example.com HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect empty port", "CONNECT example.com: HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect port 0", "CONNECT example.com:0 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect port 65536", "CONNECT example.com:65536 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect port 6 digits", "CONNECT example.com:000080 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect port sign", "CONNECT example.com:+80 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect port letters", "CONNECT example.com:80x HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect empty host", "CONNECT :443 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect host ---", "CONNECT ---:443 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect host empty label", "CONNECT a..b:443 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect userinfo", "CONNECT u@example.com:443 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect percent-encoded", "CONNECT ex%61mple.com:443 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect utf-8 host", "CONNECT b\xc3\xbccher.de:443 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect bare ipv6", "CONNECT 2001:db8::1:443 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect ipv6 no port", "CONNECT [2001:db8::1] HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect ipv6 zone", "CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect bracketed ipv4", "CONNECT [192.0.2.1]:443 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect bracketed name", "CONNECT [example.com]:443 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect unclosed bracket", "CONNECT [::1:443 HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect origin form", "CONNECT / HTTP/1.1\r\n\r\n", ErrBadTarget},
	{"connect absolute uri", "CONNECT http://example.com:443/ HTTP/1.1\r\n\r\n", ErrBadTarget},
}

func checkHead(t *testing.T, got Head, w wantHead) {
	t.Helper()
	if got.Method != w.method || got.Target != w.target || got.Proto != w.proto || got.IsConnect != w.connect ||
		got.Host != w.host || got.Port != w.port || got.HasAuth != w.auth ||
		string(got.User) != w.user || string(got.Pass) != w.pass {
		t.Fatalf("head = %+v, want %+v", got, w)
	}
}

func TestParseHeadValid(t *testing.T) {
	for _, tc := range validHeads {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			want := tc.n
			if want == 0 {
				want = len(in)
			}
			h, n, err := ParseHead(in)
			if err != nil || n != want {
				t.Fatalf("ParseHead = n %d, err %v; want n %d", n, err, want)
			}
			checkHead(t, h, tc.want)
			// The head must not alias the caller's buffer.
			for i := range in {
				in[i] = 'Z'
			}
			checkHead(t, h, tc.want)
		})
	}
}

func TestParseHeadMalformed(t *testing.T) {
	for _, tc := range badHeads {
		t.Run(tc.name, func(t *testing.T) {
			h, n, err := ParseHead([]byte(tc.in))
			if !errors.Is(err, tc.err) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want %v (and ErrMalformed)", err, tc.err)
			}
			if n != 0 || h.Method != "" || h.IsConnect {
				t.Fatalf("n %d head %+v with an error", n, h)
			}
		})
	}
}

func TestParseHeadAuth(t *testing.T) {
	const pre = "CONNECT example.com:443 HTTP/1.1\r\n"
	for _, tc := range []struct {
		name, headers string
		err           error
		basic         bool   // HasAuth: a Basic credential
		raw           string // ProxyAuthorization as kept
		user, pass    string
	}{
		{"basic", "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n", nil, true, "Basic dXNlcjpwYXNz", "user", "pass"},
		{"scheme case-insensitive", "proxy-authorization: bAsIc dXNlcjpwYXNz\r\n", nil, true, "bAsIc dXNlcjpwYXNz", "user", "pass"},
		{"extra spaces", "Proxy-Authorization:   Basic   dXNlcjpwYXNz  \r\n", nil, true, "Basic   dXNlcjpwYXNz", "user", "pass"},
		{"unpadded base64", "Proxy-Authorization: Basic dTpwMQ\r\n", nil, true, "Basic dTpwMQ", "u", "p1"},
		{"empty user and password", "Proxy-Authorization: Basic Og==\r\n", nil, true, "Basic Og==", "", ""},
		{"password with colons", "Proxy-Authorization: Basic YTpiOmM=\r\n", nil, true, "Basic YTpiOmM=", "a", "b:c"},
		{"raw bytes", "Proxy-Authorization: Basic //46AA==\r\n", nil, true, "Basic //46AA==", "\xff\xfe", "\x00"},
		{"tor-iso form", "Proxy-Authorization: Basic dG9yLWlzbzp0b2s=\r\n", nil, true, "Basic dG9yLWlzbzp0b2s=", "tor-iso", "tok"},
		{"other headers ignored", "Host: x\r\nAuthorization: Bearer x\r\n", nil, false, "", "", ""},
		// Not a Basic credential: kept raw (C Tor isolates on the raw
		// value, proposal 365 keeps that), never an error.
		{"no colon", "Proxy-Authorization: Basic dXNlcg==\r\n", nil, false, "Basic dXNlcg==", "", ""},
		{"bad base64", "Proxy-Authorization: Basic !!!!\r\n", nil, false, "Basic !!!!", "", ""},
		{"bad padding", "Proxy-Authorization: Basic dXNlcjpwYXN=\r\n", nil, false, "Basic dXNlcjpwYXN=", "", ""},
		{"scheme only", "Proxy-Authorization: Basic\r\n", nil, false, "Basic", "", ""},
		{"empty credentials", "Proxy-Authorization: Basic \r\n", nil, false, "Basic", "", ""},
		{"empty header", "Proxy-Authorization:\r\n", nil, false, "", "", ""},
		{"other scheme", "Proxy-Authorization: Digest username=\"u\"\r\n", nil, false, "Digest username=\"u\"", "", ""},
		{"bearer", "Proxy-Authorization: Bearer dXNlcjpwYXNz\r\n", nil, false, "Bearer dXNlcjpwYXNz", "", ""},
		{"repeated", "Proxy-Authorization: Basic dXNlcjpwYXNz\r\nProxy-Authorization: Basic Og==\r\n", ErrBadAuth, false, "", "", ""},
		{"repeated raw", "Proxy-Authorization: x\r\nproxy-authorization: x\r\n", ErrBadAuth, false, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, err := ParseHead([]byte(pre + tc.headers + "\r\n"))
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			present := strings.Contains(strings.ToLower(tc.headers), "proxy-authorization")
			if h.HasAuth != tc.basic || string(h.User) != tc.user || string(h.Pass) != tc.pass ||
				string(h.ProxyAuthorization) != tc.raw || (h.ProxyAuthorization != nil) != present {
				t.Fatalf("auth = %v %q %q raw %q, want %v %q %q raw %q", h.HasAuth, h.User, h.Pass, h.ProxyAuthorization,
					tc.basic, tc.user, tc.pass, tc.raw)
			}
			if h.HasAuth && (h.User == nil || h.Pass == nil) {
				t.Fatal("HasAuth with nil user or password")
			}
			// Appending to User must not overwrite Pass.
			if h.HasAuth {
				_ = append(h.User, 'X')
				if string(h.Pass) != tc.pass {
					t.Fatal("User and Pass share capacity")
				}
			}
		})
	}
}

// Tor-Stream-Isolation and its deprecated X- name (proposal 365), the other
// Tor-* headers, Host, Connection and the body headers.
func TestParseHeadFields(t *testing.T) {
	const pre = "CONNECT example.com:443 HTTP/1.1\r\n"
	type want struct {
		iso        string
		hasIso     bool
		legacy     bool
		tor        string // TorHeaders as "name=value;"
		opts       string // StreamOptions
		hasOpts    bool
		host       string
		hosts      int
		persistent bool
		body       bool
	}
	for _, tc := range []struct {
		name, head string
		err        error
		want       want
	}{
		{"none", pre, nil, want{persistent: true}},
		{"tor-stream-isolation", pre + "Tor-Stream-Isolation: tab-1\r\n", nil, want{iso: "tab-1", hasIso: true, persistent: true}},
		{"name case-insensitive", pre + "tor-stream-isolation:  a b \r\n", nil, want{iso: "a b", hasIso: true, persistent: true}},
		{"empty value", pre + "Tor-Stream-Isolation:\r\n", nil, want{iso: "", hasIso: true, persistent: true}},
		{"deprecated name", pre + "X-Tor-Stream-Isolation: old\r\n", nil, want{iso: "old", hasIso: true, legacy: true, persistent: true}},
		{"both names, same value", pre + "X-Tor-Stream-Isolation: v\r\nTor-Stream-Isolation: v\r\n", nil, want{iso: "v", hasIso: true, persistent: true}},
		{"both names differ", pre + "X-Tor-Stream-Isolation: a\r\nTor-Stream-Isolation: b\r\n", ErrBadIsolation, want{}},
		{"repeated", pre + "Tor-Stream-Isolation: a\r\nTor-Stream-Isolation: a\r\n", ErrBadIsolation, want{}},
		{"repeated deprecated", pre + "X-Tor-Stream-Isolation: a\r\nx-tor-stream-isolation: b\r\n", ErrBadIsolation, want{}},
		{"other tor headers collected", pre + "Tor-Family-Preference: ipv6-only\r\nX-Tor-Thing: 1\r\nTorX: no\r\n", nil,
			want{tor: "Tor-Family-Preference=ipv6-only;X-Tor-Thing=1;", persistent: true}},
		{"tor-stream-options kept raw, not in TorHeaders", pre + "tor-stream-options:  fresh=1;bogus=\\;x \r\n", nil,
			want{opts: "fresh=1;bogus=\\;x", hasOpts: true, persistent: true}},
		{"tor-stream-options empty", pre + "Tor-Stream-Options:\r\n", nil, want{hasOpts: true, persistent: true}},
		{"tor-stream-options repeated", pre + "Tor-Stream-Options: fresh=1\r\nTor-Stream-Options: fresh=1\r\n", ErrBadStreamOptions, want{}},
		{"x-tor-stream-options is another header", pre + "X-Tor-Stream-Options: fresh=1\r\n", nil,
			want{tor: "X-Tor-Stream-Options=fresh=1;", persistent: true}},
		{"host", "OPTIONS * HTTP/1.1\r\nHost: localhost:9350\r\n", nil, want{host: "localhost:9350", hosts: 1, persistent: true}},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n", nil, want{host: "b", hosts: 2, persistent: true}},
		{"http/1.1 close", "OPTIONS * HTTP/1.1\r\nConnection: keep-alive, Close\r\n", nil, want{}},
		{"http/1.0", "OPTIONS * HTTP/1.0\r\n", nil, want{}},
		{"http/1.0 keep-alive", "OPTIONS * HTTP/1.0\r\nConnection: Keep-Alive\r\n", nil, want{persistent: true}},
		{"content-length 0", "OPTIONS * HTTP/1.1\r\nContent-Length: 00\r\n", nil, want{persistent: true}},
		{"content-length", "OPTIONS * HTTP/1.1\r\nContent-Length: 10\r\n", nil, want{persistent: true, body: true}},
		{"chunked", "OPTIONS * HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", nil, want{persistent: true, body: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, err := ParseHead([]byte(tc.head + "\r\n"))
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var tor strings.Builder
			for _, f := range h.TorHeaders {
				tor.WriteString(f.Name + "=" + f.Value + ";")
			}
			got := want{string(h.StreamIsolation), h.HasStreamIsolation, h.StreamIsolationLegacy, tor.String(),
				string(h.StreamOptions), h.HasStreamOptions, h.HostHeader, h.Hosts, h.Persistent, h.HasBody}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseHeadTooLarge(t *testing.T) {
	line := "X-Padding: " + strings.Repeat("p", 50) + "\r\n" // 63 bytes
	head := "GET / HTTP/1.1\r\n"
	for len(head)+len(line) <= MaxHead {
		head += line
	}
	// head is now within one line of MaxHead and unterminated.
	if _, n, err := ParseHead([]byte(head)); !errors.Is(err, ErrShortBuffer) || n != 0 {
		t.Fatalf("%d bytes unterminated: n %d err %v, want ErrShortBuffer", len(head), n, err)
	}
	pad := MaxHead - len(head) - len("X-E: \r\n\r\n")
	exact := head + "X-E: " + strings.Repeat("e", pad) + "\r\n\r\n"
	if len(exact) != MaxHead {
		t.Fatalf("test bug: %d", len(exact))
	}
	if _, n, err := ParseHead([]byte(exact + "early")); err != nil || n != MaxHead {
		t.Fatalf("head of exactly MaxHead: n %d err %v", n, err)
	}
	over := head + "X-E: " + strings.Repeat("e", pad+1) + "\r\n\r\n"
	if _, n, err := ParseHead([]byte(over)); !errors.Is(err, ErrHeadTooLarge) || n != 0 {
		t.Fatalf("head of MaxHead+1: n %d err %v, want ErrHeadTooLarge", n, err)
	}
	// One endless header line is refused as soon as MaxHead bytes are in,
	// not waited for.
	endless := []byte("GET / HTTP/1.1\r\nX-A: " + strings.Repeat("a", MaxHead))
	if _, _, err := ParseHead(endless[:MaxHead-1]); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("MaxHead-1 bytes: %v", err)
	}
	if _, _, err := ParseHead(endless[:MaxHead]); !errors.Is(err, ErrHeadTooLarge) {
		t.Fatalf("MaxHead bytes: %v", err)
	}
	if _, _, err := ParseHead(endless); !errors.Is(err, ErrHeadTooLarge) {
		t.Fatalf("more than MaxHead bytes: %v", err)
	}
}

// A slowloris client trickles an endless head one byte per read: every
// call says "need more" until exactly MaxHead bytes, then "too large";
// the parser never asks for more than MaxHead.
func TestParseHeadSlowloris(t *testing.T) {
	var buf []byte
	head := "GET / HTTP/1.1\r\n"
	for i := 0; len(buf) < MaxHead+100; i++ {
		if i < len(head) {
			buf = append(buf, head[i])
		} else {
			buf = append(buf, "X-Slow: 1\r\n"[(i-len(head))%11])
		}
		_, n, err := ParseHead(buf)
		switch {
		case len(buf) < MaxHead && (!errors.Is(err, ErrShortBuffer) || n != 0):
			t.Fatalf("at %d bytes: n %d err %v, want ErrShortBuffer", len(buf), n, err)
		case len(buf) >= MaxHead && !errors.Is(err, ErrHeadTooLarge):
			t.Fatalf("at %d bytes: %v, want ErrHeadTooLarge", len(buf), err)
		}
	}
}

// Every strict prefix of a valid head needs more and consumes nothing.
func TestParseHeadStrictPrefixes(t *testing.T) {
	for _, tc := range validHeads {
		n := tc.n
		if n == 0 {
			n = len(tc.in)
		}
		for i := 0; i < n; i++ {
			h, got, err := ParseHead([]byte(tc.in[:i]))
			if !errors.Is(err, ErrShortBuffer) || got != 0 || h.Method != "" {
				t.Fatalf("%s: prefix %d: n %d err %v", tc.name, i, got, err)
			}
		}
	}
}

func TestParseHeadByteAtATime(t *testing.T) {
	var all []string
	for _, tc := range validHeads {
		all = append(all, tc.in)
	}
	for _, tc := range badHeads {
		all = append(all, tc.in)
	}
	for _, in := range all {
		whole := runHead([]byte(in), []int{len(in)})
		ones := make([]int, len(in))
		for i := range ones {
			ones[i] = 1
		}
		if got := runHead([]byte(in), ones); got != whole {
			t.Fatalf("%q: byte at a time %+v, whole %+v", in, got, whole)
		}
	}
}

func TestIsHTTP(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
		if IsHTTP(byte(c)) != want {
			t.Errorf("IsHTTP(%#02x) = %v", c, !want)
		}
	}
	if IsHTTP(0x04) || IsHTTP(0x05) || !IsHTTP('G') || !IsHTTP('C') {
		t.Fatal("SOCKS bytes or methods misclassified")
	}
}

type headOutcome struct {
	short bool
	n     int
	err   string
	head  string
}

var headSentinels = []error{ErrShortBuffer, ErrHeadTooLarge, ErrBadTarget, ErrBadAuth, ErrBadIsolation, ErrBadStreamOptions, ErrMalformed}

// runHead feeds in in chunks into a growing buffer, as a dispatcher does.
func runHead(in []byte, chunks []int) headOutcome {
	n := 0
	for _, c := range chunks {
		n = min(n+c, len(in))
		h, used, err := ParseHead(in[:n])
		if errors.Is(err, ErrShortBuffer) {
			if used != 0 {
				return headOutcome{err: "short buffer consumed bytes"}
			}
			if n == len(in) {
				break
			}
			continue
		}
		o := headOutcome{n: used}
		for _, s := range headSentinels {
			if errors.Is(err, s) {
				o.err = s.Error() // the first match is the most specific
				break
			}
		}
		if err != nil && o.err == "" {
			o.err = "unknown " + err.Error()
		}
		if err == nil {
			o.head = strings.Join([]string{h.Method, h.Target, h.Proto, h.Host, string(rune(h.Port)),
				boolStr(h.IsConnect), boolStr(h.HasAuth), string(h.User), string(h.Pass),
				string(h.ProxyAuthorization), boolStr(h.HasStreamIsolation), string(h.StreamIsolation),
				boolStr(h.StreamIsolationLegacy), h.HostHeader, string(rune(h.Hosts)), boolStr(h.Persistent),
				boolStr(h.HasBody), fmt.Sprint(h.TorHeaders), boolStr(h.HasStreamOptions), string(h.StreamOptions)}, "\x00")
		}
		return o
	}
	return headOutcome{short: true}
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
