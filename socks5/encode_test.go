package socks5

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"socksd/internal/testutil"
)

func TestAppendReply(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"connect success zeroed BND", AppendReply(nil, ReplySucceeded, netip.Addr{}, 0), "05 00 00 01 00000000 0000"},
		{"resolve answer ipv4", AppendReply(nil, ReplySucceeded, netip.MustParseAddr("127.0.0.1"), 0), "05 00 00 01 7f000001 0000"},
		{"resolve answer mapped ipv4", AppendReply(nil, ReplySucceeded, netip.MustParseAddr("::ffff:198.51.100.7"), 0), "05 00 00 01 c6336407 0000"},
		{"resolve answer ipv6", AppendReply(nil, ReplySucceeded, netip.MustParseAddr("fea0::1"), 0), "05 00 00 04 fea00000000000000000000000000001 0000"},
		{"bound port", AppendReply(nil, ReplySucceeded, netip.MustParseAddr("10.0.0.1"), 0x1f90), "05 00 00 01 0a000001 1f90"},
		{"appends to dst", AppendReply([]byte{0xaa}, ReplyHostUnreachable, netip.Addr{}, 0), "aa 05 04 00 01 00000000 0000"},
		{"ptr answer", AppendReplyHost(nil, ReplySucceeded, "rev.example.test", 0), "05 00 00 03 10 'rev.example.test' 0000"},
		{"ptr answer cut at 255", AppendReplyHost(nil, ReplySucceeded, strings.Repeat("a", 300), 0), "05 00 00 03 ff '" + strings.Repeat("a", 255) + "' 0000"},
		{"resolve failure (tor ATYP 0)", AppendResolveFailure(nil, ReplyHostUnreachable), "05 04 00 00 00000000 0000"},
	}
	for _, tt := range tests {
		if want := testutil.Unhex(t, tt.want); !bytes.Equal(tt.got, want) {
			t.Errorf("%s: % x, want % x", tt.name, tt.got, want)
		}
	}
}

// Every Tor code is encodable, named, and known; the gap is not.
func TestReplyCodes(t *testing.T) {
	codes := []Reply{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7}
	seen := map[string]bool{}
	for _, c := range codes {
		r := AppendReply(nil, c, netip.Addr{}, 0)
		if len(r) != 10 || r[1] != byte(c) {
			t.Errorf("code %#02x encoded as % x", byte(c), r)
		}
		if !c.Known() || strings.HasPrefix(c.String(), "unknown") || seen[c.String()] {
			t.Errorf("code %#02x: name %q known %v", byte(c), c.String(), c.Known())
		}
		seen[c.String()] = true
	}
	for _, c := range []Reply{0x09, 0x7f, 0xEF, 0xF8, 0xFF} {
		if c.Known() || c.String() != "unknown reply "+"0x"+hexByte(byte(c)) {
			t.Errorf("code %#02x: name %q known %v", byte(c), c.String(), c.Known())
		}
	}
	if got := ReplyOnionBadAddress.String(); got != "onion service invalid address" {
		t.Errorf("F6 named %q", got)
	}
	e := &ReplyError{Code: ReplyHostUnreachable}
	if e.Error() != "socks5: reply 0x04" {
		t.Errorf("ReplyError %q", e.Error())
	}
}

func hexByte(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}
