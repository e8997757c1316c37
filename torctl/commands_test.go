package torctl

import (
	"errors"
	"reflect"
	"testing"
)

func TestGetInfo(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("GETINFO version net/listeners/socks config-text address-mappings/control",
		"250-version=Tor 0.4.9.11\n"+
			"250-net/listeners/socks=\"127.0.0.1:16100\" \"127.0.0.1:16101\"\n"+
			"250+config-text=\nSocksPort 127.0.0.1:16100\n..dot\n.\n"+
			"250-address-mappings/control=\n"+
			"250 OK")
	m, err := c.GetInfo(ctx, "version", "net/listeners/socks", "config-text", "address-mappings/control")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"version":                  "Tor 0.4.9.11",
		"net/listeners/socks":      `"127.0.0.1:16100" "127.0.0.1:16101"`,
		"config-text":              "SocksPort 127.0.0.1:16100\n.dot",
		"address-mappings/control": "",
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %q\nwant %q", m, want)
	}
}

// GETCONF as tor 0.4.9 answers it for a repeated key, and for a key at its
// default (no value).
func TestGetConf(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("GETCONF SocksPort", "250-SocksPort=127.0.0.1:9050\n250 SocksPort=unix:/run/tor/socks ExtendedErrors")
	got, err := c.GetConf(ctx, "SocksPort")
	if err != nil || !reflect.DeepEqual(got, []string{"127.0.0.1:9050", "unix:/run/tor/socks ExtendedErrors"}) {
		t.Fatalf("GetConf: %q, %v", got, err)
	}
	s.Expect("GETCONF HashedControlPassword", "250 HashedControlPassword")
	if got, err := c.GetConf(ctx, "HashedControlPassword"); err != nil || !reflect.DeepEqual(got, []string{""}) {
		t.Fatalf("GetConf of a default: %q, %v", got, err)
	}
	s.Expect("GETCONF Nope", `552 Unrecognized configuration key "Nope"`)
	if _, err := c.GetConf(ctx, "Nope"); !IsCode(err, 552) {
		t.Fatalf("GetConf of an unknown key: %v", err)
	}
	if _, err := c.GetConf(ctx, "a b"); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("GetConf(\"a b\"): %v", err)
	}
}

func TestGetInfoErrors(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("GETINFO nope", `552 Unrecognized key "nope"`)
	if _, err := c.GetInfo(ctx, "nope"); !IsCode(err, 552) {
		t.Fatalf("err %v", err)
	}
	s.Expect("GETINFO x", "250-garbage\n250 OK")
	if _, err := c.GetInfo(ctx, "x"); !errors.Is(err, ErrBadReply) {
		t.Fatalf("err %v", err)
	}
	for _, bad := range [][]string{nil, {""}, {"a b"}, {"version\r\nSIGNAL HALT"}} {
		if _, err := c.GetInfo(ctx, bad...); !errors.Is(err, ErrBadArgument) {
			t.Fatalf("GetInfo(%q): %v", bad, err)
		}
	}
	if got := s.Received(); len(got) != 2 {
		t.Fatalf("bad arguments were sent: %q", got)
	}
}

// Each command's wire form and reply handling.
func TestCommandWireForms(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	steps := []struct {
		want  string
		reply string
		run   func() error
	}{
		{"SETEVENTS STREAM CIRC ADDRMAP STATUS_CLIENT", "250 OK", func() error { return c.SetEvents(ctx, "STREAM", "CIRC", "ADDRMAP", "STATUS_CLIENT") }},
		{"SETEVENTS", "250 OK", func() error { return c.SetEvents(ctx) }},
		{`SETCONF __LeaveStreamsUnattached="1" Nickname="a \"b\"" SocksPort`, "250 OK", func() error {
			return c.SetConf(ctx, KV{"__LeaveStreamsUnattached", "1"}, KV{"Nickname", `a "b"`}, KV{"SocksPort", ""})
		}},
		{"RESETCONF __LeaveStreamsUnattached __OwningControllerProcess", "250 OK", func() error {
			return c.ResetConf(ctx, "__LeaveStreamsUnattached", "__OwningControllerProcess")
		}},
		{"ATTACHSTREAM 153 94", "250 OK", func() error { return c.AttachStream(ctx, "153", "94") }},
		{"CLOSECIRCUIT 94", "250 OK", func() error { return c.CloseCircuit(ctx, "94") }},
		{"CLOSECIRCUIT 95 IfUnused", "250 OK", func() error { return c.CloseCircuitIfUnused(ctx, "95") }},
		{"SETCIRCUITPURPOSE 96 purpose=controller", "250 OK", func() error { return c.SetCircuitPurpose(ctx, "96", "controller") }},
		{"CLOSESTREAM 153 7", "250 OK", func() error { return c.CloseStream(ctx, "153", EndReasonTimeout) }},
		{"RESOLVE example.test", "250 OK", func() error { return c.Resolve(ctx, "example.test", false) }},
		{"RESOLVE mode=reverse 198.51.100.7", "250 OK", func() error { return c.Resolve(ctx, "198.51.100.7", true) }},
		{"SIGNAL NEWNYM", "250 OK", func() error { return c.Signal(ctx, "NEWNYM") }},
		{"TAKEOWNERSHIP", "250 OK", func() error { return c.TakeOwnership(ctx) }},
	}
	for _, st := range steps {
		s.Expect(st.want, st.reply)
		if err := st.run(); err != nil {
			t.Fatalf("%s: %v", st.want, err)
		}
	}
	if err := s.Done(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSetConfErrors(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect(`SETCONF Bogus="1"`, `552 Unrecognized option: Unknown option 'Bogus'.  Failing.`)
	if err := c.SetConf(ctx, KV{"Bogus", "1"}); !IsCode(err, 552) {
		t.Fatalf("err %v", err)
	}
	for _, kv := range [][]KV{nil, {{"", "x"}}, {{"a b", "x"}}, {{"a=b", "x"}}} {
		if err := c.SetConf(ctx, kv...); !errors.Is(err, ErrBadArgument) {
			t.Fatalf("SetConf(%q): %v", kv, err)
		}
	}
	// A value with CR LF cannot inject a command: it is escaped.
	s.Expect(`SETCONF ContactInfo="x\r\nSIGNAL HALT"`, "250 OK")
	if err := c.SetConf(ctx, KV{"ContactInfo", "x\r\nSIGNAL HALT"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Done(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestMapAddress(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	tests := []struct{ from, to, reply, want string }{
		{"0.0.0.0", "example.test", "250 127.252.21.219=example.test", "127.252.21.219"},
		{"::", "example.test", "250 [fea0:9887:1234::1]=example.test", "[fea0:9887:1234::1]"},
		{".", "example.test", "250 a74s77feczedetwy.virtual=example.test", "a74s77feczedetwy.virtual"},
		{"1.2.3.4", "torproject.org", "250 1.2.3.4=torproject.org", "1.2.3.4"},
		{"1.2.3.4", "1.2.3.4", "250 1.2.3.4=1.2.3.4", "1.2.3.4"},
	}
	for _, tt := range tests {
		s.Expect("MAPADDRESS "+tt.from+"="+tt.to, tt.reply)
		got, err := c.MapAddress(ctx, tt.from, tt.to)
		if err != nil || got != tt.want {
			t.Fatalf("MapAddress(%s, %s) = %q, %v; want %q", tt.from, tt.to, got, err, tt.want)
		}
	}
	s.Expect("MAPADDRESS xxx=@@@", "512 syntax error: invalid address '@@@'")
	if _, err := c.MapAddress(ctx, "xxx", "@@@"); !IsCode(err, 512) {
		t.Fatalf("err %v", err)
	}
	s.Expect("MAPADDRESS 0.0.0.0=x.test", "451 resource exhausted")
	if _, err := c.MapAddress(ctx, "0.0.0.0", "x.test"); !IsCode(err, 451) {
		t.Fatalf("err %v", err)
	}
	s.Expect("MAPADDRESS 0.0.0.0=y.test", "250 OK")
	if _, err := c.MapAddress(ctx, "0.0.0.0", "y.test"); !errors.Is(err, ErrBadReply) {
		t.Fatalf("err %v", err)
	}
	for _, p := range [][2]string{{"a=b", "c"}, {"", "c"}, {"a", "b c"}, {"a", "b\r\nSIGNAL HALT"}} {
		if _, err := c.MapAddress(ctx, p[0], p[1]); !errors.Is(err, ErrBadArgument) {
			t.Fatalf("MapAddress(%q): %v", p, err)
		}
	}
	if err := s.Done(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAttachStreamErrors(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	for _, code := range []int{551, 552, 555} {
		reply := map[int]string{551: "551 Unable to attach stream", 552: `552 Unknown stream "153"`, 555: "555 Connection is not managed by controller."}[code]
		s.Expect("ATTACHSTREAM 153 94", reply)
		err := c.AttachStream(ctx, "153", "94")
		if !IsCode(err, code) {
			t.Fatalf("want %d, got %v", code, err)
		}
	}
	if err := c.AttachStream(ctx, "153 94", "1"); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("err %v", err)
	}
}

func TestExtendCircuit(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect("EXTENDCIRCUIT 0", "250 EXTENDED 94")
	id, err := c.ExtendCircuit(ctx, "0", nil, "")
	if err != nil || id != "94" {
		t.Fatalf("%q %v", id, err)
	}
	s.Expect("EXTENDCIRCUIT 0 auth0,$AB~auth2,exit0 purpose=controller", "250 EXTENDED 95")
	id, err = c.ExtendCircuit(ctx, "0", []string{"auth0", "$AB~auth2", "exit0"}, "controller")
	if err != nil || id != "95" {
		t.Fatalf("%q %v", id, err)
	}
	s.Expect("EXTENDCIRCUIT 0", "250 OK")
	if _, err := c.ExtendCircuit(ctx, "0", nil, ""); !errors.Is(err, ErrBadReply) {
		t.Fatalf("err %v", err)
	}
	s.Expect("EXTENDCIRCUIT 0 nobody", `552 No such router "nobody"`)
	if _, err := c.ExtendCircuit(ctx, "0", []string{"nobody"}, ""); !IsCode(err, 552) {
		t.Fatalf("err %v", err)
	}
	if _, err := c.ExtendCircuit(ctx, "0", []string{"a,b"}, ""); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("err %v", err)
	}
	if err := s.Done(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCommandArgumentChecks(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	checks := []error{
		c.Resolve(ctx, "", false),
		c.Resolve(ctx, "a b", false),
		c.Resolve(ctx, "mode=reverse", false),
		c.Signal(ctx, "NEWNYM\r\nSIGNAL HALT"),
		c.CloseStream(ctx, "1", 256),
		c.CloseStream(ctx, "", 1),
		c.CloseCircuit(ctx, ""),
		c.SetEvents(ctx, "STREAM CIRC"),
		c.ResetConf(ctx),
	}
	for i, err := range checks {
		if !errors.Is(err, ErrBadArgument) {
			t.Errorf("check %d: %v", i, err)
		}
	}
	if got := s.Received(); len(got) != 0 {
		t.Fatalf("sent %q", got)
	}
}

// MapAddresses: plain pairs share one command and get one answer line
// each, a pair that would break the grammar is never sent, and a pair with
// a quote goes alone.
func TestMapAddresses(t *testing.T) {
	ctx := testCtx(t)
	c, s := pair(t)
	s.Expect(`MAPADDRESS 0.0.0.0=a"b.test`, "250 127.192.0.9=a\"b.test")
	s.Expect("MAPADDRESS 0.0.0.0=one.test 1.2.3.4=1.2.3.4 0.0.0.0=two.test",
		"250-127.192.0.7=one.test\n512-syntax error: invalid address '1.2.3.4'\n250 127.192.0.8=two.test")
	res, err := c.MapAddresses(ctx, []KV{
		{"0.0.0.0", "one.test"}, {"1.2.3.4", "1.2.3.4"}, {"0.0.0.0", "bad name"},
		{"0.0.0.0", `a"b.test`}, {"0.0.0.0", "two.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Addr != "127.192.0.7" || res[0].Err != nil || res[4].Addr != "127.192.0.8" || res[3].Addr != "127.192.0.9" {
		t.Errorf("answers %+v", res)
	}
	if !IsCode(res[1].Err, 512) {
		t.Errorf("the refused pair: %v, want 512", res[1].Err)
	}
	if !errors.Is(res[2].Err, ErrBadArgument) {
		t.Errorf("a name with a space: %v, want ErrBadArgument", res[2].Err)
	}
	// A reply that does not match the pairs fails every pair sent.
	s.Expect("MAPADDRESS 0.0.0.0=x.test 0.0.0.0=y.test", "250 127.192.0.10=x.test")
	res, err = c.MapAddresses(ctx, []KV{{"0.0.0.0", "x.test"}, {"0.0.0.0", "y.test"}})
	if !errors.Is(err, ErrBadReply) || !errors.Is(res[0].Err, ErrBadReply) || !errors.Is(res[1].Err, ErrBadReply) {
		t.Errorf("short reply: %v %+v", err, res)
	}
}
