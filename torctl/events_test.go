package torctl

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ev builds an Event from one "650 ..." wire line (plus extra lines).
func ev(t *testing.T, wire ...string) Event {
	t.Helper()
	msgs, err := parseAll(strings.Join(wire, "\r\n") + "\r\n")
	if err != nil || len(msgs) != 1 {
		t.Fatalf("bad test event %q: %v", wire, err)
	}
	typ, _, _ := strings.Cut(msgs[0][0].Text, " ")
	return Event{Type: typ, Text: msgs[0][0].Text, Lines: msgs[0]}
}

// Lines observed from tor 0.4.9.11 (tornet README and /tmp transcripts).
func TestParseStreamEvent(t *testing.T) {
	e := ev(t, `650 STREAM 153 NEW 0 127.0.0.1:15120 SOURCE_ADDR=127.0.0.1:58538 PURPOSE=USER SOCKS_USERNAME="alice" SOCKS_PASSWORD="pw1" CLIENT_PROTOCOL=SOCKS5 NYM_EPOCH=0 SESSION_GROUP=-4 ISO_FIELDS=SOCKS_USERNAME,SOCKS_PASSWORD,CLIENTADDR,SESSION_GROUP,NYM_EPOCH`)
	got, err := ParseStreamEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	kw := got.Keywords
	got.Keywords = nil
	want := StreamEvent{
		ID: "153", Status: "NEW", CircID: "0", Target: "127.0.0.1:15120", TargetHost: "127.0.0.1", TargetPort: 15120,
		SourceAddr: "127.0.0.1:58538", Purpose: "USER", SOCKSUsername: "alice", SOCKSPassword: "pw1", HasSOCKSAuth: true,
		ClientProtocol: "SOCKS5", NymEpoch: 0, SessionGroup: -4,
		IsoFields: []string{"SOCKS_USERNAME", "SOCKS_PASSWORD", "CLIENTADDR", "SESSION_GROUP", "NYM_EPOCH"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if len(kw) != 8 || kw["SOCKS_USERNAME"] != "alice" {
		t.Fatalf("keywords %q", kw)
	}

	tests := []struct {
		line  string
		check func(StreamEvent) bool
	}{
		{`650 STREAM 153 FAILED 0 x.onion:80 REASON=TORPROTOCOL`, func(s StreamEvent) bool { return s.Status == "FAILED" && s.Reason == "TORPROTOCOL" && !s.HasSOCKSAuth }},
		{`650 STREAM 12 DETACHED 94 example.test:15999 REASON=END REMOTE_REASON=MISC`, func(s StreamEvent) bool { return s.Reason == "END" && s.RemoteReason == "MISC" && s.CircID == "94" }},
		{`650 STREAM 47 REMAP 25 127.0.0.1:0 SOURCE=EXIT CLIENT_PROTOCOL=UNKNOWN`, func(s StreamEvent) bool { return s.Source == "EXIT" && s.TargetPort == 0 }},
		{`650 STREAM 9 NEW 0 [::1]:443 SOCKS_USERNAME="" PURPOSE=USER`, func(s StreamEvent) bool { return s.TargetHost == "::1" && s.TargetPort == 443 && s.HasSOCKSAuth }},
		{`650 STREAM 50 NEW 0 127.0.0.1.$11A4CAF589B9BAC947E38F701DBD192AA94B3193.exit:16002 PURPOSE=DIR_FETCH`, func(s StreamEvent) bool {
			return s.Purpose == "DIR_FETCH" && s.TargetHost == "127.0.0.1.$11A4CAF589B9BAC947E38F701DBD192AA94B3193.exit"
		}},
		{`650 STREAM 5 CLOSED 3 (Tor_internal):0 REASON=DONE`, func(s StreamEvent) bool { return s.TargetHost == "(Tor_internal)" }},
		{`650 STREAM 5 NEW 0 h:notaport NYM_EPOCH=x FUTURE="a b"`, func(s StreamEvent) bool {
			return s.TargetHost == "h:notaport" && s.TargetPort == 0 && s.NymEpoch == 0 && s.Keywords["FUTURE"] == "a b"
		}},
		{`650 STREAM 5 NEW 0 h:1 SOCKS_USERNAME="a\"b\\c d"`, func(s StreamEvent) bool { return s.SOCKSUsername == `a"b\c d` }},
	}
	for _, tt := range tests {
		s, err := ParseStreamEvent(ev(t, tt.line))
		if err != nil || !tt.check(s) {
			t.Errorf("%s\n -> %+v %v", tt.line, s, err)
		}
	}
	for _, bad := range []string{`650 STREAM 1 NEW 0`, `650 CIRC 1 BUILT`, `650 STREAM 1 NEW 0 h:1 U="open`} {
		if _, err := ParseStreamEvent(ev(t, bad)); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestParseCircEvent(t *testing.T) {
	e := ev(t, `650 CIRC 94 BUILT $ECE678205D1D7517A6708BC23443E8D542A3F040~auth0,$765EA17594082941A2E5F9BF2476B3A0D02394E6~auth1,$4B6B9FAC7343582579731C974AE06D144F063B83~exit0 BUILD_FLAGS=NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=2026-11-23T17:26:17.663077`)
	c, err := ParseCircEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "94" || c.Status != "BUILT" || len(c.Path) != 3 || c.Path[2] != "$4B6B9FAC7343582579731C974AE06D144F063B83~exit0" ||
		!reflect.DeepEqual(c.BuildFlags, []string{"NEED_CAPACITY"}) || c.Purpose != "GENERAL" ||
		!c.TimeCreated.Equal(time.Date(2026, 11, 23, 17, 26, 17, 663077000, time.UTC)) {
		t.Fatalf("%+v", c)
	}
	// No path (LAUNCHED), reasons, repeated REASON keeps the first.
	c, err = ParseCircEvent(ev(t, `650 CIRC 44 LAUNCHED BUILD_FLAGS=NEED_CAPACITY,NEED_UPTIME PURPOSE=CONFLUX_UNLINKED TIME_CREATED=2026-11-23T17:26:31.796345 CONFLUX_ID=AC10C6D6CBC273A6EC5E5875F57EC3A5`))
	if err != nil || c.Path != nil || len(c.BuildFlags) != 2 || c.Keywords["CONFLUX_ID"] == "" {
		t.Fatalf("%+v %v", c, err)
	}
	c, err = ParseCircEvent(ev(t, `650 CIRC 7 FAILED $AA~a REASON=DESTROYED REMOTE_REASON=OR_CONN_CLOSED REASON=LATER`))
	if err != nil || c.Reason != "DESTROYED" || c.RemoteReason != "OR_CONN_CLOSED" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := ParseCircEvent(ev(t, `650 CIRC 7`)); !errors.Is(err, ErrBadEvent) {
		t.Fatal(err)
	}
	// IDs and statuses are plain words; a quoted one (found by fuzzing
	// GETINFO circuit-status) is a malformed line, not a status " ".
	// So is every element of a path: `" "` there was a target " " in torup.
	for _, line := range []string{`650 CIRC 0 " "`, `650 CIRC "" BUILT`, `650 CIRC "7 8" BUILT`,
		`650 CIRC 0 0 " "`, `650 CIRC 7 BUILT "$AA~a $BB~b"`, `650 CIRC 7 BUILT $AA~a,,$BB~b`} {
		if c, err := ParseCircEvent(ev(t, line)); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: %+v, %v; want ErrBadEvent", line, c, err)
		}
	}
	if s, err := ParseStreamEvent(ev(t, `650 STREAM 12 "NEW X" 0 1.2.3.4:80`)); !errors.Is(err, ErrBadEvent) {
		t.Errorf("quoted stream status: %+v, %v; want ErrBadEvent", s, err)
	}
}

// CIRC_MINOR as tor 0.4.9 sends it when socksd changes a circuit's
// purpose, and the measurement take-over the attacher treats as a failure.
func TestParseCircMinorEvent(t *testing.T) {
	c, err := ParseCircMinorEvent(ev(t, `650 CIRC_MINOR 12 PURPOSE_CHANGED $AA~a,$BB~b BUILD_FLAGS=NEED_CAPACITY PURPOSE=CONTROLLER TIME_CREATED=2026-12-07T21:25:10.392610 OLD_PURPOSE=GENERAL`))
	if err != nil || c.ID != "12" || c.Event != "PURPOSE_CHANGED" || c.Purpose != "CONTROLLER" || c.OldPurpose != "GENERAL" || len(c.Path) != 2 {
		t.Errorf("%+v, %v", c, err)
	}
	c, err = ParseCircMinorEvent(ev(t, `650 CIRC_MINOR 13 PURPOSE_CHANGED PURPOSE=MEASURE_TIMEOUT OLD_PURPOSE=GENERAL`))
	if err != nil || c.Purpose != "MEASURE_TIMEOUT" || c.Path != nil {
		t.Errorf("%+v, %v", c, err)
	}
	if _, err := ParseCircMinorEvent(ev(t, `650 CIRC_MINOR 13`)); !errors.Is(err, ErrBadEvent) {
		t.Errorf("CIRC_MINOR without event: %v", err)
	}
	for _, line := range []string{`650 CIRC_MINOR "1 2" PURPOSE_CHANGED`, `650 CIRC_MINOR 12 PURPOSE_CHANGED " "`, `650 CIRC_MINOR 12 PURPOSE_CHANGED $AA~a,`} {
		if c, err := ParseCircMinorEvent(ev(t, line)); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: %+v, %v; want ErrBadEvent", line, c, err)
		}
	}
}

func TestParseAddrMapEvent(t *testing.T) {
	a, err := ParseAddrMapEvent(ev(t, `650 ADDRMAP example.test 127.0.0.1 "2026-11-23 17:27:31" EXPIRES="2026-11-23 17:27:31" CACHED="NO" STREAMID=47`))
	if err != nil || a.Address != "example.test" || a.NewAddress != "127.0.0.1" || a.Failed() || a.Cached || a.StreamID != "47" ||
		!a.Expiry.Equal(time.Date(2026, 11, 23, 17, 27, 31, 0, time.UTC)) || a.Never {
		t.Fatalf("%+v %v", a, err)
	}
	a, err = ParseAddrMapEvent(ev(t, `650 ADDRMAP nx.invalid <error> "2026-11-23 17:26:30" error=yes EXPIRES="2026-11-23 17:26:30" CACHED="NO" STREAMID=48`))
	if err != nil || !a.Failed() || a.Error != "yes" || a.NewAddress != "<error>" {
		t.Fatalf("%+v %v", a, err)
	}
	a, err = ParseAddrMapEvent(ev(t, `650 ADDRMAP 127.222.253.156 example.test NEVER CACHED="YES"`))
	if err != nil || !a.Never || !a.Expiry.IsZero() || !a.Cached || a.Failed() {
		t.Fatalf("%+v %v", a, err)
	}
	a, err = ParseAddrMapEvent(ev(t, `650 ADDRMAP 198.51.100.7 rev.example.test "2026-11-22 11:18:57"`))
	if err != nil || a.NewAddress != "rev.example.test" || a.Expiry.IsZero() {
		t.Fatalf("%+v %v", a, err)
	}
	if _, err := ParseAddrMapEvent(ev(t, `650 ADDRMAP a b`)); !errors.Is(err, ErrBadEvent) {
		t.Fatal(err)
	}
}

func TestParseStatusEvent(t *testing.T) {
	s, err := ParseStatusEvent(ev(t, `650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`))
	if err != nil || s.Type != "STATUS_CLIENT" || s.Severity != "NOTICE" || s.Action != "BOOTSTRAP" || s.Args["PROGRESS"] != "100" || s.Args["SUMMARY"] != "Done" {
		t.Fatalf("%+v %v", s, err)
	}
	s, err = ParseStatusEvent(ev(t, `650 STATUS_CLIENT NOTICE CONSENSUS_ARRIVED`))
	if err != nil || s.Action != "CONSENSUS_ARRIVED" || len(s.Args) != 0 {
		t.Fatalf("%+v %v", s, err)
	}
	// Real tor 0.4.9.11 output: \' and \n escapes inside a QuotedString.
	s, err = ParseStatusEvent(ev(t, `650 STATUS_GENERAL WARN BUG REASON="addressmap_register_virtual_address(): Bug: I thought that \'example.test\' was mapped. (on Tor 0.4.9.11 )\n"`))
	if err != nil || s.Args["REASON"] != "addressmap_register_virtual_address(): Bug: I thought that 'example.test' was mapped. (on Tor 0.4.9.11 )\n" {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{`650 CIRC 1 BUILT`, `650 STATUS_CLIENT NOTICE`} {
		if _, err := ParseStatusEvent(ev(t, bad)); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestParseBootstrapPhase(t *testing.T) {
	p, tag, sum, err := ParseBootstrapPhase(`NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`)
	if err != nil || p != 100 || tag != "done" || sum != "Done" {
		t.Fatalf("%d %q %q %v", p, tag, sum, err)
	}
	p, tag, sum, err = ParseBootstrapPhase(`WARN BOOTSTRAP PROGRESS=14 TAG=handshake SUMMARY="Handshaking with a relay" WARNING="Connection refused" REASON=CONNECTREFUSED COUNT=3 RECOMMENDATION=ignore`)
	if err != nil || p != 14 || tag != "handshake" || sum != "Handshaking with a relay" {
		t.Fatalf("%d %q %q %v", p, tag, sum, err)
	}
	for _, bad := range []string{"", "NOTICE", "NOTICE BOOTSTRAP", "NOTICE BOOTSTRAP PROGRESS=101", "NOTICE OTHER PROGRESS=5", `NOTICE BOOTSTRAP PROGRESS=5 SUMMARY="x`} {
		if _, _, _, err := ParseBootstrapPhase(bad); !errors.Is(err, ErrBadReply) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestParseInfoValues(t *testing.T) {
	l, err := ParseListeners(`"127.0.0.1:16100" "127.0.0.1:16101" "unix:/run/tor/so cks"`)
	if err != nil || !reflect.DeepEqual(l, []string{"127.0.0.1:16100", "127.0.0.1:16101", "unix:/run/tor/so cks"}) {
		t.Fatalf("%q %v", l, err)
	}
	if l, err := ParseListeners(""); err != nil || len(l) != 0 {
		t.Fatalf("empty: %q %v", l, err)
	}
	if _, err := ParseListeners(`"open`); !errors.Is(err, ErrBadReply) {
		t.Fatal(err)
	}

	ss, err := ParseStreamStatus("47 SENTRESOLVE 25 example.test:0\n153 CONTROLLER_WAIT 0 example.test:80\n")
	if err != nil || len(ss) != 2 || ss[1].ID != "153" || ss[1].Status != "CONTROLLER_WAIT" || ss[1].TargetPort != 80 {
		t.Fatalf("%+v %v", ss, err)
	}
	if ss, err := ParseStreamStatus(""); err != nil || ss != nil {
		t.Fatalf("%+v %v", ss, err)
	}
	if _, err := ParseStreamStatus("1 NEW"); !errors.Is(err, ErrBadReply) {
		t.Fatal(err)
	}

	cs, err := ParseCircuitStatus("1 BUILT $ECE678205D1D7517A6708BC23443E8D542A3F040~auth0 BUILD_FLAGS=ONEHOP_TUNNEL,IS_INTERNAL,NEED_CAPACITY PURPOSE=GENERAL TIME_CREATED=2026-11-23T17:21:33.110971\n44 LAUNCHED PURPOSE=CONFLUX_UNLINKED")
	if err != nil || len(cs) != 2 || len(cs[0].Path) != 1 || cs[0].BuildFlags[0] != "ONEHOP_TUNNEL" || cs[1].Path != nil {
		t.Fatalf("%+v %v", cs, err)
	}

	am, err := ParseAddressMappings("127.222.253.156 example.test NEVER\nexample.test 127.0.0.1 \"2026-11-23 17:27:31\"")
	if err != nil || len(am) != 2 || am[0] != (AddressMapping{"127.222.253.156", "example.test", "NEVER"}) || am[1].Expiry != "2026-11-23 17:27:31" {
		t.Fatalf("%+v %v", am, err)
	}
	if _, err := ParseAddressMappings("a b"); !errors.Is(err, ErrBadReply) {
		t.Fatal(err)
	}
}
