package chain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"socksd/dispatch"
	"socksd/internal/leakcheck"
	"socksd/socks5"
	"socksd/socksproto"
)

// observed returns an Upstream for addr whose warnings go to an observer
// at info level and whose rate limiter reads *now.
func observed(addr string, now *time.Time) (*Upstream, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	u := New(addr, zap.New(core))
	u.warn = newUpstreamWarnings(u.Log, addr, time.Minute, func() time.Time { return *now })
	return u, logs
}

const secretHost = "secret-destination.test"

// connect runs one CONNECT to secretHost through u and returns the error
// the client's reply is made from.
func connect(u *Upstream) error {
	st, err := u.Open(context.Background(), &dispatch.Request{Command: dispatch.CmdConnect, Host: secretHost, Port: 443, Key: testKey()}, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.Await(context.Background())
}

// noSecrets fails if a logged line carries the destination or the
// isolation credentials.
func noSecrets(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		for _, s := range []string{secretHost, testKey().String(), socksproto.TorIsolationUsername} {
			if strings.Contains(line, s) {
				t.Errorf("log line carries %q: %s", s, line)
			}
		}
	}
}

// TestNotTorUpstreamWarnsOnce: a SOCKS5 server that refuses
// username/password (any SOCKS5 proxy that is not Tor or Arti) fails every
// stream with 0x01; the user learns why at warning level, once per
// interval, with the count of failures in between.
func TestNotTorUpstreamWarnsOnce(t *testing.T) {
	now := time.Unix(1000, 0)
	u, logs := observed(rawUpstream(t, []byte("\x05\xff")), &now)
	for range 5 {
		err := connect(u)
		var re *socks5.ReplyError
		if !errors.As(err, &re) || re.Code != socks5.ReplyGeneralFailure || !errors.Is(err, socks5.ErrUpstreamNoMethod) {
			t.Fatalf("got %v, want 0x01 wrapping ErrUpstreamNoMethod", err)
		}
	}
	warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
	if len(warns) != 1 {
		t.Fatalf("%d warnings for 5 failures in one interval, want 1: %v", len(warns), logs.All())
	}
	if !strings.Contains(warns[0].Message, "not a Tor SocksPort") {
		t.Errorf("warning does not say the upstream is not Tor: %q", warns[0].Message)
	}
	now = now.Add(time.Minute)
	connect(u)
	warns = logs.FilterLevelExact(zapcore.WarnLevel).All()
	if len(warns) != 2 || warns[1].ContextMap()["suppressed"] != int64(4) {
		t.Fatalf("after the interval: %d warnings, last %v; want 2 with suppressed=4", len(warns), warns[len(warns)-1].ContextMap())
	}
	noSecrets(t, logs)
}

// TestUpstreamFaultsExplained: every upstream fault that fails all streams
// with 0x01 gets its own warning; Tor's refusal of one destination gets
// none (it is not the user's configuration, and its details, destination
// included, are for debug level).
func TestUpstreamFaultsExplained(t *testing.T) {
	closedAddr := func(t *testing.T) string {
		leakcheck.Check(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		return ln.Addr().String()
	}
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
		want string // "" = no warning
	}{
		{"nothing listening", closedAddr, "cannot reach Tor's SocksPort"},
		{"rejects our credentials", func(t *testing.T) string { return rawUpstream(t, []byte("\x05\x02\x01\x01")) }, "not a Tor SocksPort"},
		{"no acceptable method", func(t *testing.T) string { return rawUpstream(t, []byte("\x05\xff")) }, "not a Tor SocksPort"},
		{"an HTTP server", func(t *testing.T) string {
			return rawUpstream(t, []byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		}, "does not answer as a SOCKS5 server"},
		{"a SOCKS4 server", func(t *testing.T) string { return rawUpstream(t, []byte("\x00\x5b\x00\x00\x00\x00\x00\x00")) }, "does not answer as a SOCKS5 server"},
		{"closes before replying", func(t *testing.T) string { return rawUpstream(t, []byte("\x05\x02\x01\x00")) }, "closed the connection before replying"},
		{"tor refuses the destination", func(t *testing.T) string {
			return rawUpstream(t, []byte("\x05\x02\x01\x00\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00"))
		}, ""},
		{"tor's general failure for the destination", func(t *testing.T) string {
			return rawUpstream(t, []byte("\x05\x02\x01\x00\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00"))
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			u, logs := observed(tc.addr(t), &now)
			if err := connect(u); err == nil {
				t.Fatal("stream succeeded")
			}
			warns := logs.FilterLevelExact(zapcore.WarnLevel).All()
			if tc.want == "" {
				if len(warns) != 0 {
					t.Fatalf("warned for a per-destination refusal: %v", warns)
				}
				return
			}
			if len(warns) != 1 || !strings.Contains(warns[0].Message, tc.want) {
				t.Fatalf("warnings %v, want one saying %q", warns, tc.want)
			}
			if warns[0].ContextMap()["socks"] != u.Addr {
				t.Errorf("warning does not name the configured SocksPort: %v", warns[0].ContextMap())
			}
			noSecrets(t, logs)
		})
	}
}

// TestResolveNotTorWarns: the RESOLVE path (DNS bridge without a control
// port, SOCKS5 RESOLVE) reports the same fault.
func TestResolveNotTorWarns(t *testing.T) {
	now := time.Unix(1000, 0)
	u, logs := observed(rawUpstream(t, []byte("\x05\xff")), &now)
	_, err := u.Resolve(context.Background(), &dispatch.Request{Command: dispatch.CmdResolve, Host: secretHost, Key: testKey()})
	if !errors.Is(err, socks5.ErrUpstreamNoMethod) {
		t.Fatalf("got %v", err)
	}
	if w := logs.FilterLevelExact(zapcore.WarnLevel).All(); len(w) != 1 || !strings.Contains(w[0].Message, "not a Tor SocksPort") {
		t.Fatalf("warnings %v", w)
	}
	noSecrets(t, logs)
}

// TestDistinctFaultsNotHidden: one fault's rate limit does not swallow
// another's first warning.
func TestDistinctFaultsNotHidden(t *testing.T) {
	now := time.Unix(1000, 0)
	w := newUpstreamWarnings(nil, "x", time.Minute, func() time.Time { return now })
	core, logs := observer.New(zapcore.WarnLevel)
	w.log = zap.New(core)
	w.note(&socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: socks5.ErrUpstreamAuth})
	w.note(&socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: socks5.ErrUpstreamAuth})
	w.note(&socks5.ReplyError{Code: socks5.ReplyGeneralFailure, Err: ErrDial})
	w.note(&socks5.ReplyError{Code: socks5.ReplyTTLExpired, Err: context.DeadlineExceeded})
	if logs.Len() != 2 {
		t.Fatalf("%d warnings, want one per fault: %v", logs.Len(), logs.All())
	}
}
