package isolation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func base() Input {
	return Input{
		Protocol:   "socks5",
		HasAuth:    true,
		Username:   []byte("alice"),
		Password:   []byte("pw"),
		ClientAddr: netip.MustParseAddr("127.0.0.1"),
		DestHost:   "example.com",
		DestPort:   443,
		Epoch:      1,
		App:        App{Known: true, UID: 1000, Exe: "/usr/bin/curl"},
	}
}

const all = SOCKSAuth | ClientAddr | ClientProtocol | DestPort | DestAddr | SessionGroup | ClientApp

// TestKeyEncodingVector pins the documented encoding: domain tag, then for
// each field tag || count || (len || value)... in a fixed order, SHA-256
// truncated to 16 bytes. The expected bytes are written out by hand here.
func TestKeyEncodingVector(t *testing.T) {
	p := Policy{Fields: SOCKSAuth | DestPort, SessionGroup: "g"}
	in := Input{Username: []byte("u"), Password: []byte("pw"), DestPort: 80, Epoch: 2}
	enc := hex.EncodeToString([]byte(keyDomain)) +
		"47 00000001 00000001 67" + // 'G', 1 value, "g"
		"45 00000001 00000008 0000000000000002" + // 'E', epoch 2
		"41 00000002 00000001 75 00000002 7077" + // 'A', "u", "pw"
		"70 00000001 00000002 0050" // 'p', port 80
	raw, err := hex.DecodeString(strings.ReplaceAll(enc, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	want := hex.EncodeToString(sum[:16])
	if got := p.Key(in).String(); got != want {
		t.Fatalf("key = %s, want %s", got, want)
	}
}

func TestKeyTable(t *testing.T) {
	mod := func(f func(*Input)) Input { in := base(); f(&in); return in }
	tests := []struct {
		name   string
		fields Fields
		a, b   Input
		same   bool
	}{
		{"identical", all, base(), base(), true},
		{"different user", SOCKSAuth, base(), mod(func(i *Input) { i.Username = []byte("bob") }), false},
		{"different password", SOCKSAuth, base(), mod(func(i *Input) { i.Password = []byte("pw2") }), false},
		{"user/pass boundary", SOCKSAuth,
			mod(func(i *Input) { i.Username, i.Password = []byte("ab"), []byte("c") }),
			mod(func(i *Input) { i.Username, i.Password = []byte("a"), []byte("bc") }), false},
		{"raw bytes, not case folded", SOCKSAuth, base(), mod(func(i *Input) { i.Username = []byte("Alice") }), false},
		{"no auth equals empty user/pass (C Tor)", SOCKSAuth,
			mod(func(i *Input) { i.HasAuth, i.Username, i.Password = false, nil, nil }),
			mod(func(i *Input) { i.HasAuth, i.Username, i.Password = true, []byte{}, []byte{} }), true},
		{"socks4 userid equals socks5 user with empty password", SOCKSAuth,
			mod(func(i *Input) { i.Protocol, i.Username, i.Password = "socks4", []byte("alice"), nil }),
			mod(func(i *Input) { i.Protocol, i.Username, i.Password = "socks5", []byte("alice"), []byte{} }), true},
		{"socks4 userid vs socks5 with client_protocol", SOCKSAuth | ClientProtocol,
			mod(func(i *Input) { i.Protocol, i.Username, i.Password = "socks4", []byte("alice"), nil }),
			mod(func(i *Input) { i.Protocol, i.Username, i.Password = "socks5", []byte("alice"), nil }), false},
		{"torS0X0: password alone, username ignored beyond the marker", SOCKSAuth,
			mod(func(i *Input) { i.Username, i.Password = []byte("<torS0X>0"), []byte("tok") }),
			mod(func(i *Input) { i.Username, i.Password = []byte("<torS0X>0"), []byte("tok") }), true},
		{"torS0X0 differs from a plain pair with the same bytes", SOCKSAuth,
			mod(func(i *Input) { i.Username, i.Password = []byte("<torS0X>0"), []byte("tok") }),
			mod(func(i *Input) { i.Username, i.Password = []byte(""), []byte("tok") }), false},
		{"torS0X0 different tokens", SOCKSAuth,
			mod(func(i *Input) { i.Username, i.Password = []byte("<torS0X>0"), []byte("a") }),
			mod(func(i *Input) { i.Username, i.Password = []byte("<torS0X>0"), []byte("b") }), false},
		{"auth ignored when off", ClientAddr, base(), mod(func(i *Input) { i.Username = []byte("bob") }), true},
		{"client port never matters", ClientAddr, base(), base(), true},
		{"v4-mapped client equals v4", ClientAddr, base(),
			mod(func(i *Input) { i.ClientAddr = netip.MustParseAddr("::ffff:127.0.0.1") }), true},
		{"other loopback client differs", ClientAddr, base(),
			mod(func(i *Input) { i.ClientAddr = netip.MustParseAddr("127.0.0.2") }), false},
		{"zones differ", ClientAddr,
			mod(func(i *Input) { i.ClientAddr = netip.MustParseAddr("fe80::1%eth0") }),
			mod(func(i *Input) { i.ClientAddr = netip.MustParseAddr("fe80::1%eth1") }), false},
		{"unix client differs from loopback", ClientAddr, base(),
			mod(func(i *Input) { i.ClientAddr = netip.Addr{} }), false},
		{"socks4 vs socks4a", ClientProtocol,
			mod(func(i *Input) { i.Protocol = "socks4" }), mod(func(i *Input) { i.Protocol = "socks4a" }), false},
		{"dest port", DestPort, base(), mod(func(i *Input) { i.DestPort = 80 }), false},
		{"dest host case-insensitive", DestAddr, base(), mod(func(i *Input) { i.DestHost = "EXAMPLE.com." }), true},
		{"dest host vs other host", DestAddr, base(), mod(func(i *Input) { i.DestHost = "example.org" }), false},
		{"dest IP literal host equals IP", DestAddr,
			mod(func(i *Input) { i.DestHost = "192.0.2.1" }),
			mod(func(i *Input) { i.DestHost, i.DestIP = "", netip.MustParseAddr("192.0.2.1") }), true},
		{"dest ignored when off", SOCKSAuth, base(), mod(func(i *Input) { i.DestHost, i.DestPort = "x.test", 1 }), true},
		{"app exe", ClientApp, base(), mod(func(i *Input) { i.App.Exe = "/usr/bin/firefox" }), false},
		{"app uid", ClientApp, base(), mod(func(i *Input) { i.App.UID = 1001 }), false},
		{"unknown app differs from every known app", ClientApp, base(), mod(func(i *Input) { i.App = App{} }), false},
		{"unknown apps share", ClientApp,
			mod(func(i *Input) { i.App = App{UID: 1} }), mod(func(i *Input) { i.App = App{UID: 2, Exe: "x"} }), true},
		{"known app with empty exe differs from unknown", ClientApp,
			mod(func(i *Input) { i.App = App{Known: true} }), mod(func(i *Input) { i.App = App{} }), false},
		{"app ignored when off", SOCKSAuth, base(), mod(func(i *Input) { i.App = App{} }), true},
		{"epoch always", 0, base(), mod(func(i *Input) { i.Epoch = 2 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Policy{Fields: tt.fields, SessionGroup: "127.0.0.1:9050"}
			ka, kb := p.Key(tt.a), p.Key(tt.b)
			if (ka == kb) != tt.same {
				t.Fatalf("keys equal = %v, want %v (%s vs %s)", ka == kb, tt.same, ka, kb)
			}
		})
	}
}

func TestSessionGroupAlwaysKeyed(t *testing.T) {
	for _, f := range []Fields{0, SessionGroup, Default, all} {
		a := Policy{Fields: f, SessionGroup: "127.0.0.1:9050"}.Key(base())
		b := Policy{Fields: f, SessionGroup: "127.0.0.1:9052"}.Key(base())
		if a == b {
			t.Errorf("fields %v: two session groups share a key", f)
		}
		c := Policy{Fields: f, SessionGroup: "127.0.0.1:9050"}.Key(base())
		if a != c {
			t.Errorf("fields %v: same group, same input, different keys", f)
		}
	}
}

// mutate changes exactly the property behind one field so that the change
// is real after canonicalisation (a case change of a hostname is not).
func mutate(r *rand.Rand, in Input, f Fields) Input {
	randBytes := func() []byte {
		b := make([]byte, r.IntN(6))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	}
	switch f {
	case SOCKSAuth:
		old := in
		for bytes.Equal(in.Username, old.Username) && bytes.Equal(in.Password, old.Password) {
			if r.IntN(2) == 0 {
				in.Username = randBytes()
			} else {
				in.Password = randBytes()
			}
		}
	case ClientAddr:
		old := in.ClientAddr
		for in.ClientAddr.Unmap() == old.Unmap() {
			in.ClientAddr = randAddr(r)
		}
	case ClientProtocol:
		old := in.Protocol
		for in.Protocol == old {
			in.Protocol = protocols[r.IntN(len(protocols))]
		}
	case DestPort:
		in.DestPort += uint16(1 + r.IntN(65535))
	case DestAddr:
		if in.DestIP.IsValid() || r.IntN(2) == 0 {
			in.DestIP, in.DestHost = netip.Addr{}, fmt.Sprintf("h%d.example", r.IntN(1e6))+in.DestHost
		} else {
			in.DestHost, in.DestIP = "", randAddr(r)
		}
	case ClientApp:
		switch {
		case !in.App.Known:
			in.App = App{Known: true, UID: r.Uint32(), Exe: "/bin/x"}
		case r.IntN(3) == 0:
			in.App = App{}
		case r.IntN(2) == 0:
			in.App.UID++
		default:
			in.App.Exe += "x"
		}
	}
	return in
}

var protocols = []string{"socks4", "socks4a", "socks5", "http-connect"}

func randAddr(r *rand.Rand) netip.Addr {
	if r.IntN(2) == 0 {
		return netip.AddrFrom4([4]byte{127, byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(255))})
	}
	var b [16]byte
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return netip.AddrFrom16(b)
}

func randInput(r *rand.Rand) Input {
	in := Input{
		Protocol:   protocols[r.IntN(len(protocols))],
		ClientAddr: randAddr(r),
		DestPort:   uint16(r.IntN(65536)),
		Epoch:      r.Uint64N(4),
	}
	if r.IntN(2) == 0 {
		in.HasAuth, in.Username, in.Password = true, []byte(fmt.Sprint(r.IntN(100))), []byte(fmt.Sprint(r.IntN(100)))
	}
	if r.IntN(2) == 0 {
		in.DestHost = fmt.Sprintf("d%d.example", r.IntN(1000))
	} else {
		in.DestIP = randAddr(r)
	}
	if r.IntN(2) == 0 {
		in.App = App{Known: true, UID: uint32(r.IntN(3)), Exe: fmt.Sprint("/bin/", r.IntN(3))}
	}
	return in
}

// TestKeyProperty: inputs differing in an enabled field get different keys;
// inputs differing only in disabled fields get equal keys: a policy's fields,
// and only they, decide which streams may share a circuit.
func TestKeyProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(171, 2010))
	single := []Fields{SOCKSAuth, ClientAddr, ClientProtocol, DestPort, DestAddr, ClientApp}
	for i := 0; i < 20000; i++ {
		p := Policy{Fields: Fields(r.IntN(int(all) + 1)), SessionGroup: fmt.Sprint(r.IntN(3))}
		a := randInput(r)
		// Change a random subset of fields.
		b := a
		var changed Fields
		for _, f := range single {
			if r.IntN(3) == 0 {
				b = mutate(r, b, f)
				changed |= f
			}
		}
		ka, kb := p.Key(a), p.Key(b)
		if changed&p.Fields != 0 && ka == kb {
			t.Fatalf("iteration %d: fields %v changed %v enabled, keys equal\n a=%+v\n b=%+v", i, p.Fields, changed, a, b)
		}
		if changed&p.Fields == 0 && ka != kb {
			t.Fatalf("iteration %d: fields %v only disabled %v changed, keys differ\n a=%+v\n b=%+v", i, p.Fields, changed, a, b)
		}
	}
}

// TestKeyNeverShowsCredentials: whatever formatting verb a log line uses,
// the key shows neither the credentials nor the destination.
func TestKeyNeverShowsCredentials(t *testing.T) {
	in := base()
	in.Username = []byte("ZZsecretuserZZ")
	in.Password = []byte("QQsecretpassQQ")
	in.DestHost = "secret-destination.example"
	k := Policy{Fields: all, SessionGroup: "g"}.Key(in)
	secrets := []string{"ZZsecretuserZZ", "QQsecretpassQQ", "secret-destination",
		hex.EncodeToString(in.Username), hex.EncodeToString(in.Password)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(verb, k)
		for _, s := range secrets {
			if strings.Contains(strings.ToLower(out), strings.ToLower(s)) {
				t.Errorf("%s of key = %q contains %q", verb, out, s)
			}
		}
	}
	if s := k.String(); len(s) != 32 {
		t.Errorf("String() = %q, want 32 hex digits", s)
	}
}

func TestKeyIsZero(t *testing.T) {
	if !(Key{}).IsZero() {
		t.Error("zero Key: IsZero false")
	}
	if (Policy{}).Key(Input{}).IsZero() {
		t.Error("derived key is zero")
	}
}

func TestFieldsStringParse(t *testing.T) {
	tests := []struct {
		f    Fields
		want string
	}{
		{0, "none"},
		{Default, "socks_auth,client_addr"},
		{all, "socks_auth,client_addr,client_protocol,dest_port,dest_addr,session_group,client_app"},
		{DestPort | 0x8000, "dest_port,0x8000"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("Fields(%#x).String() = %q, want %q", uint16(tt.f), got, tt.want)
		}
	}
}

// TestConfigMatchesFields: every field but session_group is a bool key of
// [isolation] and of a listener's table, and every such key but
// keep_alive is a field, so a field added to the table cannot be missing
// from the file (or the reverse).
func TestConfigMatchesFields(t *testing.T) {
	keys := func(v any) map[string]bool {
		m := map[string]bool{}
		ty := reflect.TypeOf(v)
		for i := 0; i < ty.NumField(); i++ {
			m[ty.Field(i).Tag.Get("toml")] = true
		}
		return m
	}
	c, o := keys(Config{}), keys(Override{})
	if !reflect.DeepEqual(c, o) {
		t.Fatalf("Config keys %v, Override keys %v", c, o)
	}
	want := map[string]bool{"keep_alive": true}
	for _, f := range fields {
		if f.f != SessionGroup {
			want[f.name] = true
		}
		if f.key == nil && f.f != SessionGroup {
			t.Errorf("%s: no digest", f.name)
		}
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Config keys %v, want the fields table's %v", c, want)
	}
	for i, f := range fields {
		if f.f != 1<<i {
			t.Errorf("fields[%d] is %s: rows must be in bit order", i, f.f)
		}
	}
}

// TestConfigPolicy: defaults, a listener's overrides, and every key on
// its own giving its field.
func TestConfigPolicy(t *testing.T) {
	on, off := true, false
	d := DefaultConfig()
	if p := d.Policy("g"); p.Fields != Default|SessionGroup || p.SessionGroup != "g" || p.KeepAlive {
		t.Errorf("default policy %+v", p)
	}
	got := d.Apply(&Override{ClientAddr: &off, DestPort: &on, KeepAlive: &on}).Policy("g")
	if got.Fields != SOCKSAuth|DestPort|SessionGroup || !got.KeepAlive {
		t.Errorf("overridden policy %+v (%s)", got, got.Fields)
	}
	if d.Apply(nil) != d {
		t.Error("a nil override changed the defaults")
	}
	for _, f := range fields {
		if f.f == SessionGroup {
			continue
		}
		var c Config
		reflect.ValueOf(&c).Elem().FieldByNameFunc(func(n string) bool {
			sf, _ := reflect.TypeOf(c).FieldByName(n)
			return sf.Tag.Get("toml") == f.name
		}).SetBool(true)
		if p := c.Policy(""); p.Fields != f.f|SessionGroup {
			t.Errorf("%s alone gives %s", f.name, p.Fields)
		}
	}
}

func BenchmarkKey(b *testing.B) {
	p := Policy{Fields: all, SessionGroup: "127.0.0.1:9350"}
	in := base()
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Key(in)
	}
}

// TestKeyFresh: a fresh stream's value separates it under every policy,
// even one that isolates on nothing, and Fresh 0 changes nothing.
func TestKeyFresh(t *testing.T) {
	for _, f := range []Fields{0, Default, all} {
		p := Policy{Fields: f, SessionGroup: "g"}
		in := base()
		plain := p.Key(in)
		in.Fresh = 1
		one := p.Key(in)
		in.Fresh = 2
		two := p.Key(in)
		if one == plain || two == plain || one == two {
			t.Errorf("fields %v: fresh keys not distinct: %v %v %v", f, plain, one, two)
		}
		in.Fresh = 0
		if p.Key(in) != plain {
			t.Errorf("fields %v: Fresh 0 changed the key", f)
		}
	}
}
