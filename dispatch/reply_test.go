package dispatch

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"socksd/socks5"
)

// TestReplyMapping is the error → reply table for every protocol.
func TestReplyMapping(t *testing.T) {
	re := func(c socks5.Reply) error { return fmt.Errorf("wrapped: %w", &socks5.ReplyError{Code: c}) }
	connect := func(p Protocol) *Request { return &Request{Protocol: p, Command: CmdConnect} }
	for _, tc := range []struct {
		name     string
		req      *Request
		err      error
		extended bool
		want     string // hex, or text for HTTP
	}{
		{"s5 ok", connect(ProtoSOCKS5), nil, true, "05000001 00000000 0000"},
		{"s5 refused", connect(ProtoSOCKS5), re(0x05), true, "05050001 00000000 0000"},
		{"s5 not allowed", connect(ProtoSOCKS5), re(0x02), true, "05020001 00000000 0000"},
		{"s5 deadline", connect(ProtoSOCKS5), context.DeadlineExceeded, true, "05060001 00000000 0000"},
		{"s5 plain error", connect(ProtoSOCKS5), errors.New("boom"), true, "05010001 00000000 0000"},
		{"s5 F2 extended", connect(ProtoSOCKS5), re(0xF2), true, "05f20001 00000000 0000"},
		{"s5 F2 standard", connect(ProtoSOCKS5), re(0xF2), false, "05040001 00000000 0000"},
		{"s5 F6 standard", connect(ProtoSOCKS5), re(0xF6), false, "05010001 00000000 0000"},
		{"s5 unassigned", connect(ProtoSOCKS5), re(0x42), true, "05010001 00000000 0000"},
		{"s5 resolve ok", &Request{Protocol: ProtoSOCKS5, Command: CmdResolve}, nil, true, "05000001 c0000201 0000"},
		{"s5 resolve fail", &Request{Protocol: ProtoSOCKS5, Command: CmdResolve}, re(0x04), true, "05040000 00000000 0000"},
		{"s5 ptr ok", &Request{Protocol: ProtoSOCKS5, Command: CmdResolvePTR}, nil, true, "05000003 01 61 0000"},
		{"s4 ok", connect(ProtoSOCKS4), nil, true, "005a 0000 00000000"},
		{"s4 fail", connect(ProtoSOCKS4), re(0x04), true, "005b 0000 00000000"},
		{"s4a F0", connect(ProtoSOCKS4a), re(0xF0), true, "005b 0000 00000000"},
		{"s4a resolve ok", &Request{Protocol: ProtoSOCKS4a, Command: CmdResolve}, nil, true, "005a 0000 c0000201"},
		{"http ok", connect(ProtoHTTPConnect), nil, true, "HTTP/1.1 200 Connection established\r\nTor-Capabilities: \r\nVia: tor/1.0 tor-network (socksd)\r\n\r\n"},
		{"http ttl", connect(ProtoHTTPConnect), re(0x06), true, "HTTP/1.1 504 Gateway Timeout (TTL expired)\r\nTor-Capabilities: \r\nVia: tor/1.0 tor-network (socksd)\r\nTor-Request-Failed: 0x06 TTL expired\r\n"},
		{"http not allowed", connect(ProtoHTTPConnect), re(0x02), true, "HTTP/1.1 403 Forbidden (connection not allowed by ruleset)\r\n"},
		// Proposal 365: RESOLVEFAILED and NOROUTE (SOCKS 0x04) are 503.
		{"http unreachable", connect(ProtoHTTPConnect), re(0x04), true, "HTTP/1.1 503 Service Unavailable (host unreachable)\r\n"},
		{"http refused", connect(ProtoHTTPConnect), re(0x05), true, "HTTP/1.1 503 Service Unavailable (connection refused)\r\n"},
		{"http general", connect(ProtoHTTPConnect), errors.New("boom"), true, "HTTP/1.1 502 Bad Gateway (general SOCKS server failure)\r\n"},
		{"http F0 extended", connect(ProtoHTTPConnect), re(0xF0), true, "HTTP/1.1 503 Service Unavailable (onion service descriptor can not be found)\r\n"},
		{"http F0 standard", connect(ProtoHTTPConnect), re(0xF0), false, "HTTP/1.1 503 Service Unavailable (host unreachable)\r\n"},
		{"http F6 extended", connect(ProtoHTTPConnect), re(0xF6), true, "HTTP/1.1 400 Bad Request (onion service invalid address)\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := appendReply(nil, tc.req, tc.err, netip.MustParseAddr("192.0.2.1"), "a", tc.extended)
			if tc.req.Protocol == ProtoHTTPConnect {
				if !strings.HasPrefix(string(got), tc.want) {
					t.Fatalf("got %q, want prefix %q", got, tc.want)
				}
				return
			}
			if h := hex.EncodeToString(got); h != strings.ReplaceAll(tc.want, " ", "") {
				t.Fatalf("got %s, want %s", h, tc.want)
			}
		})
	}
}

func TestInternalDestinations(t *testing.T) {
	for _, tc := range []struct {
		dest     string
		internal bool
	}{
		{"127.0.0.1", true}, {"127.255.0.9", true}, {"10.0.0.1", true}, {"172.16.0.1", true},
		{"172.31.255.255", true}, {"192.168.0.1", true}, {"169.254.1.1", true}, {"100.64.0.1", true},
		{"0.0.0.0", true}, {"0.1.2.3", true}, {"::1", true}, {"::", true}, {"fe80::1", true},
		{"fc00::1", true}, {"fd12::1", true}, {"::ffff:127.0.0.1", true}, {"::ffff:10.0.0.1", true},
		{"8.8.8.8", false}, {"172.32.0.1", false}, {"100.128.0.1", false}, {"2001:db8::1", false},
		{"localhost", true}, {"LOCALHOST.", true}, {"foo.localhost", true}, {"printer.local", true},
		{"example.com", false}, {"local", false}, {"mylocal", false}, {"example.onion", false},
		{"[::1]", true},
	} {
		var got bool
		if a, err := netip.ParseAddr(tc.dest); err == nil {
			got = isInternalAddr(a)
			if gotName := isInternalName(tc.dest); gotName != got {
				t.Errorf("%s: as name %v, as address %v", tc.dest, gotName, got)
			}
		} else {
			got = isInternalName(tc.dest)
		}
		if got != tc.internal {
			t.Errorf("%s: internal = %v, want %v", tc.dest, got, tc.internal)
		}
	}
}

func TestCheckPolicy(t *testing.T) {
	virtual := netip.MustParseAddr("127.192.0.1")
	isV := func(a netip.Addr) bool { return a == virtual }
	for _, tc := range []struct {
		name         string
		req          Request
		safe, reject bool
		want         error
	}{
		{"off", Request{Command: CmdConnect, IP: netip.MustParseAddr("127.0.0.1")}, false, false, nil},
		{"internal ip", Request{Command: CmdConnect, IP: netip.MustParseAddr("127.0.0.1")}, false, true, ErrInternalDestination},
		{"internal name", Request{Command: CmdConnect, Host: "localhost"}, false, true, ErrInternalDestination},
		{"virtual passes reject", Request{Command: CmdConnect, IP: virtual}, false, true, nil},
		{"virtual passes safe", Request{Command: CmdConnect, IP: virtual}, true, true, nil},
		{"safe ip", Request{Command: CmdConnect, IP: netip.MustParseAddr("8.8.8.8")}, true, false, ErrUnsafeSOCKS},
		{"safe name", Request{Command: CmdConnect, Host: "example.com"}, true, true, nil},
		{"resolve not checked", Request{Command: CmdResolve, Host: "localhost"}, true, true, nil},
		{"literal name is not ip-only", Request{Command: CmdConnect, Host: "8.8.8.8"}, true, true, nil},
		{"literal name internal", Request{Command: CmdConnect, Host: "[::1]"}, false, true, ErrInternalDestination},
		{"literal name virtual", Request{Command: CmdConnect, Host: "127.192.0.1"}, false, true, nil},
	} {
		err := checkPolicy(&tc.req, &Settings{SafeSOCKS: tc.safe, RejectInternal: tc.reject}, isV)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		var re *socks5.ReplyError
		if err != nil && (!errors.As(err, &re) || re.Code != socks5.ReplyNotAllowed) {
			t.Errorf("%s: not a 0x02 reply error: %v", tc.name, err)
		}
	}
}
