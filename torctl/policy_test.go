package torctl

import (
	"errors"
	"testing"
)

func TestParsePortPolicy(t *testing.T) {
	for _, tc := range []struct {
		in      string
		allow   []uint16
		deny    []uint16
		wantErr bool
	}{
		{in: "accept 1-65535", allow: []uint16{1, 80, 65535}},
		{in: "accept 80,443", allow: []uint16{80, 443}, deny: []uint16{1, 81, 442, 8080}},
		{in: "reject 25,119,135-139,445", allow: []uint16{80, 134, 140}, deny: []uint16{25, 119, 135, 137, 139, 445}},
		{in: "accept 20-23,43,53,79-81,88", allow: []uint16{20, 23, 80, 81, 88}, deny: []uint16{24, 82}},
		{in: "", wantErr: true},
		{in: "accept", wantErr: true},
		{in: "allow 80", wantErr: true},
		{in: "accept 0", wantErr: true},
		{in: "accept 65536", wantErr: true},
		{in: "accept 90-80", wantErr: true},
		{in: "accept 80,,443", wantErr: true},
		{in: "accept +80", wantErr: true},
		{in: "accept 80-", wantErr: true},
	} {
		p, err := ParsePortPolicy(tc.in)
		if tc.wantErr {
			if !errors.Is(err, ErrBadReply) {
				t.Errorf("%q: %v, want ErrBadReply", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		for _, port := range tc.allow {
			if !p.Allows(port) {
				t.Errorf("%q refuses port %d", tc.in, port)
			}
		}
		for _, port := range tc.deny {
			if p.Allows(port) {
				t.Errorf("%q allows port %d", tc.in, port)
			}
		}
	}
	var zero PortPolicy
	if zero.Allows(80) {
		t.Error("the zero PortPolicy (no p line) allows port 80")
	}
}

// A microdescriptor as tor 0.4.9 answers GETINFO md/id/<fp> (recorded on
// the private network), and one with both families.
func TestParseMicrodescPolicy(t *testing.T) {
	md := "onion-key\n-----BEGIN RSA PUBLIC KEY-----\nMIGJAoGBALCY\n-----END RSA PUBLIC KEY-----\n" +
		"ntor-onion-key yJuo14iemgs60YB30X3QcvXUkE23wLA8bPvaq8zvbUs\np accept 1-65535\nid ed25519 njEuQX5dEFtWPKTDxZGrnDg7U680rQwcvmKj18Y8LFI\n"
	e, err := ParseMicrodescPolicy(md)
	if err != nil {
		t.Fatal(err)
	}
	if !e.IPv4.Allows(80) || e.IPv6.Allows(80) {
		t.Errorf("policy %+v: want IPv4 all, IPv6 none", e)
	}
	e, err = ParseMicrodescPolicy("p reject 25\np6 accept 443\n")
	if err != nil {
		t.Fatal(err)
	}
	if e.IPv4.Allows(25) || !e.IPv4.Allows(80) || !e.IPv6.Allows(443) || e.IPv6.Allows(80) {
		t.Errorf("policy %+v", e)
	}
	if _, err := ParseMicrodescPolicy("p accept 80-x\n"); !errors.Is(err, ErrBadReply) {
		t.Errorf("bad p line: %v", err)
	}
	e, err = ParseMicrodescPolicy("")
	if err != nil || e.IPv4.Allows(80) {
		t.Errorf("no microdescriptor lines: %+v %v, want nothing allowed", e, err)
	}
}

func FuzzParsePortPolicy(f *testing.F) {
	for _, s := range []string{"accept 1-65535", "reject 25,119,135-139,445", "accept 80,443", "accept 0", "reject 9-1", "p accept 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePortPolicy(s)
		if err != nil {
			return
		}
		if len(p.Ranges) == 0 {
			t.Fatalf("%q parsed without ranges", s)
		}
		for _, r := range p.Ranges {
			if r[0] == 0 || r[1] < r[0] {
				t.Fatalf("%q: range %v", s, r)
			}
			// The verdict inside a range is the verb's, outside the other.
			if p.Allows(r[0]) != p.Accept || p.Allows(r[1]) != p.Accept {
				t.Fatalf("%q: ports %v judged against the verb", s, r)
			}
		}
		_, _ = ParseMicrodescPolicy("p " + s + "\np6 " + s)
	})
}
