package torctl

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"socksd/torctl/torctltest"
)

// writeCookie writes a cookie file of the given bytes and returns its path.
func writeCookie(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "control_auth_cookie")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var testCookie = bytes.Repeat([]byte{0xC0, 0x0C}, 16)

func TestAuthSafeCookie(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	path := writeCookie(t, testCookie)
	s.AcceptSafeCookieAuth(testCookie, path, bytes.Repeat([]byte{0x5E}, 32))
	if err := c.Authenticate(ctx, AuthOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(ctx); err != nil {
		t.Fatal(err)
	}
	got := s.Received()
	if len(got) != 3 || !strings.HasPrefix(got[1], "AUTHCHALLENGE SAFECOOKIE ") || len(got[1]) != len("AUTHCHALLENGE SAFECOOKIE ")+64 {
		t.Fatalf("sent %q", got)
	}
}

func TestAuthSafeCookieNonceIsRandom(t *testing.T) {
	ctx := testCtx(t)
	path := writeCookie(t, testCookie)
	var nonces []string
	for range 2 {
		c, s := pair(t)
		s.AcceptSafeCookieAuth(testCookie, path, bytes.Repeat([]byte{1}, 32))
		if err := c.Authenticate(ctx, AuthOptions{}); err != nil {
			t.Fatal(err)
		}
		nonces = append(nonces, s.Received()[1])
	}
	if nonces[0] == nonces[1] {
		t.Fatalf("same client nonce twice: %s", nonces[0])
	}
}

// proposal 193: a server that cannot prove it knows the cookie gets no
// AUTHENTICATE (which would otherwise be an oracle), and the connection is
// dropped.
func TestAuthSafeCookieServerHashMismatch(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	path := writeCookie(t, testCookie)
	s.Expect("PROTOCOLINFO 1", torctltest.ProtocolInfoReply("COOKIE,SAFECOOKIE", path))
	s.ExpectFunc("AUTHCHALLENGE", func(l string) bool { return strings.HasPrefix(l, "AUTHCHALLENGE SAFECOOKIE ") }, func(l string) string {
		// A correct reply for a different cookie.
		reply, _, err := torctltest.SafeCookieChallenge(bytes.Repeat([]byte{7}, 32), l, bytes.Repeat([]byte{9}, 32))
		if err != nil {
			t.Error(err)
		}
		return reply
	})
	err := c.Authenticate(ctx, AuthOptions{})
	if !errors.Is(err, ErrServerHash) {
		t.Fatalf("err = %v, want ErrServerHash", err)
	}
	<-c.Done()
	if got := s.Received(); len(got) != 2 {
		t.Fatalf("client sent %q after a bad server hash", got)
	}
}

func TestAuthSafeCookieBadChallengeReply(t *testing.T) {
	for name, reply := range map[string]string{
		"short nonce":  "250 AUTHCHALLENGE SERVERHASH=" + strings.Repeat("00", 32) + " SERVERNONCE=00",
		"no hash":      "250 AUTHCHALLENGE SERVERNONCE=" + strings.Repeat("00", 32),
		"not hex":      "250 AUTHCHALLENGE SERVERHASH=" + strings.Repeat("zz", 32) + " SERVERNONCE=" + strings.Repeat("00", 32),
		"wrong prefix": "250 OK",
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			c, s := pair(t)
			path := writeCookie(t, testCookie)
			s.Expect("PROTOCOLINFO 1", torctltest.ProtocolInfoReply("SAFECOOKIE", path))
			s.ExpectRegexp("^AUTHCHALLENGE SAFECOOKIE ", reply)
			if err := c.Authenticate(ctx, AuthOptions{}); !errors.Is(err, ErrBadReply) {
				t.Fatalf("err = %v", err)
			}
			<-c.Done()
			if got := s.Received(); len(got) != 2 {
				t.Fatalf("sent %q", got)
			}
		})
	}
}

func TestAuthCookie(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	path := writeCookie(t, testCookie)
	s.AcceptCookieAuth(testCookie, path)
	if err := c.Authenticate(ctx, AuthOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := s.Received(); got[1] != "AUTHENTICATE "+strings.Repeat("C00C", 16) {
		t.Fatalf("sent %q", got)
	}
}

func TestAuthCookieForcedAndOverridden(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	path := writeCookie(t, testCookie)
	// Tor names a file we cannot read; the option overrides it. SAFECOOKIE
	// is offered but excluded by Methods.
	s.Expect("PROTOCOLINFO 1", torctltest.ProtocolInfoReply("COOKIE,SAFECOOKIE", "/nonexistent/cookie"))
	s.Expect("AUTHENTICATE "+strings.Repeat("C00C", 16), "250 OK")
	if err := c.Authenticate(ctx, AuthOptions{CookieFile: path, Methods: []string{MethodCookie}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAuthHashedPassword(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("PROTOCOLINFO 1", torctltest.ProtocolInfoReply("HASHEDPASSWORD", ""))
	s.Expect(`AUTHENTICATE "pa ss\"w\\rd"`, "250 OK")
	if err := c.Authenticate(ctx, AuthOptions{Password: `pa ss"w\rd`}); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAuthNull(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.AcceptNullAuth()
	if err := c.Authenticate(ctx, AuthOptions{Password: "unused"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(ctx); err != nil {
		t.Fatal(err)
	}
}

// Nothing is sent after PROTOCOLINFO when no method can work: a failed
// AUTHENTICATE would make Tor close the connection.
func TestAuthNoUsableMethod(t *testing.T) {
	tests := []struct {
		name    string
		methods string
		cookie  []byte // nil: no file
		opts    AuthOptions
		want    error
	}{
		{"cookie too short", "COOKIE,SAFECOOKIE", make([]byte, 31), AuthOptions{}, ErrCookie},
		{"cookie too long", "SAFECOOKIE", make([]byte, 33), AuthOptions{}, ErrCookie},
		{"cookie missing", "COOKIE", nil, AuthOptions{}, ErrCookie},
		{"password needed", "HASHEDPASSWORD", nil, AuthOptions{}, ErrNoAuthMethod},
		{"unknown method only", "FUTURE", nil, AuthOptions{}, ErrNoAuthMethod},
		{"null excluded", "NULL", nil, AuthOptions{Methods: []string{MethodCookie}}, ErrNoAuthMethod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t)
			c, s := pair(t)
			path := "/nonexistent/control_auth_cookie"
			if tt.cookie != nil {
				path = writeCookie(t, tt.cookie)
			}
			s.Expect("PROTOCOLINFO 1", torctltest.ProtocolInfoReply(tt.methods, path))
			err := c.Authenticate(ctx, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got := s.Received(); len(got) != 1 {
				t.Fatalf("sent %q", got)
			}
		})
	}
}

func TestAuthRejected(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("PROTOCOLINFO 1", torctltest.ProtocolInfoReply("HASHEDPASSWORD", ""))
	s.Expect(`AUTHENTICATE "wrong"`, "515 Authentication failed: Password did not match HashedControlPassword value from configuration")
	if err := c.Authenticate(ctx, AuthOptions{Password: "wrong"}); !IsCode(err, 515) {
		t.Fatalf("err = %v", err)
	}
}

func TestProtocolInfoCached(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("PROTOCOLINFO 1", "250-PROTOCOLINFO 1\n250-AUTH METHODS=NULL\n250-VERSION Tor=\"0.4.9.11\" EXTRA=1\n250-FUTURELINE x\n250 OK")
	s.Expect("AUTHENTICATE", "250 OK")
	pi, err := c.ProtocolInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pi.TorVersion != "0.4.9.11" || pi.PIVersion != "1" || !pi.HasMethod(MethodNull) || pi.CookieFile != "" {
		t.Fatalf("%+v", pi)
	}
	if err := c.Authenticate(ctx, AuthOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := s.Received(); len(got) != 2 {
		t.Fatalf("PROTOCOLINFO sent twice: %q", got)
	}
}

func TestProtocolInfoEscapedCookiePath(t *testing.T) {
	r := &Reply{Lines: []ReplyLine{
		{250, '-', "PROTOCOLINFO 1", ""},
		{250, '-', `AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/var/lib/t\"or dir/\\cookie"`, ""},
		{250, ' ', "OK", ""},
	}}
	pi, err := parseProtocolInfo(r)
	if err != nil || pi.CookieFile != `/var/lib/t"or dir/\cookie` || len(pi.Methods) != 2 {
		t.Fatalf("%+v %v", pi, err)
	}
	if _, err := parseProtocolInfo(&Reply{Lines: []ReplyLine{{250, ' ', "OK", ""}}}); !errors.Is(err, ErrBadReply) {
		t.Fatalf("no AUTH line: %v", err)
	}
}
