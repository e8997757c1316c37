package torctl

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// contentSeeds are replies as real tor 0.4.9 writes them to the commands
// whose contents socksd reads: GETINFO (one-line and data forms), GETCONF,
// PROTOCOLINFO and AUTHCHALLENGE.
var contentSeeds = []string{
	"250-net/listeners/socks=\"127.0.0.1:9050\" \"unix:/run/tor/socks\"\r\n250 OK\r\n",
	"250+address-mappings/control=\r\nexample.test 127.192.0.7 NEVER\r\nb.test 127.192.0.8 \"2026-11-22 11:18:57\"\r\n.\r\n250 OK\r\n",
	"250+stream-status=\r\n153 SUCCEEDED 12 example.test:80\r\n154 NEW 0 127.0.0.1:15120\r\n.\r\n250 OK\r\n",
	"250+circuit-status=\r\n12 BUILT $AAAA~guard,$BBBB~middle,$CCCC~exit BUILD_FLAGS=NEED_CAPACITY PURPOSE=CONTROLLER\r\n.\r\n250 OK\r\n",
	"250-SocksPort=9050\r\n250-SocksPort=127.0.0.1:9150 IsolateDestAddr\r\n250 ControlPort\r\n",
	"250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/var/run/tor/control.authcookie\"\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n",
	"250 AUTHCHALLENGE SERVERHASH=" + strings.Repeat("AB", 32) + " SERVERNONCE=" + strings.Repeat("0f", 32) + "\r\n",
	"250 AUTHCHALLENGE SERVERHASH=ab\r\n", "250-a\r\n250 OK\r\n", "250 x=\"open\r\n",
}

// FuzzReplyContent: the parsers of reply contents (GETINFO, GETCONF,
// PROTOCOLINFO, AUTHCHALLENGE and the GETINFO values socksd reads) never
// panic on any reply the assembler accepts, and what they accept is what
// the reply said.
func FuzzReplyContent(f *testing.F) {
	for _, s := range contentSeeds {
		f.Add([]byte(s), "SocksPort")
	}
	f.Fuzz(func(t *testing.T, wire []byte, key string) {
		msgs, _ := parseFrom(bytes.NewReader(wire))
		for _, lines := range msgs {
			r := &Reply{Code: lines[len(lines)-1].Code, Lines: lines}
			checkReplyContent(t, r, key)
		}
	})
}

func checkReplyContent(t *testing.T, r *Reply, key string) {
	info, err := parseGetInfo(r)
	for k, v := range info {
		if strings.Contains(k, "=") {
			t.Fatalf("GETINFO key %q holds '='", k)
		}
		checkInfoValue(t, v)
	}
	if err == nil && len(info) > len(r.Lines) {
		t.Fatalf("%d GETINFO keys from %d lines", len(info), len(r.Lines))
	}
	if vals := parseGetConf(r, key); len(vals) > len(r.Lines) {
		t.Fatalf("%d GETCONF values from %d lines", len(vals), len(r.Lines))
	}
	if pi, err := parseProtocolInfo(r); err == nil && pi.Methods == nil {
		t.Fatal("PROTOCOLINFO accepted without AUTH METHODS")
	}
	if h, n, err := parseAuthChallenge(r); err == nil && (len(h) != 32 || len(n) != 32) {
		t.Fatalf("AUTHCHALLENGE accepted with a %d-byte hash and %d-byte nonce", len(h), len(n))
	}
}

// checkInfoValue runs one GETINFO value through every value parser.
func checkInfoValue(t *testing.T, v string) {
	if ls, err := ParseListeners(v); err == nil {
		// Quoting every listener again gives the same list back.
		q := make([]string, len(ls))
		for i, l := range ls {
			q[i] = Quote(l)
		}
		again, err := ParseListeners(strings.Join(q, " "))
		if err != nil || (len(ls) > 0 && !reflect.DeepEqual(again, ls)) {
			t.Fatalf("listeners %q → %q → %q %v", v, ls, again, err)
		}
	}
	n := len(infoLines(v))
	if ms, err := ParseAddressMappings(v); err == nil && len(ms) != n {
		t.Fatalf("%d address mappings from %d lines", len(ms), n)
	}
	if ss, err := ParseStreamStatus(v); err == nil && len(ss) != n {
		t.Fatalf("%d streams from %d lines", len(ss), n)
	}
	if cs, err := ParseCircuitStatus(v); err == nil && len(cs) != n {
		t.Fatalf("%d circuits from %d lines", len(cs), n)
	}
}
