package socks5

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"socksd/internal/testutil"
	"socksd/socksproto"
)

// TestExtAuthVectors: proposal 229's method 0x97, byte for byte.
func TestExtAuthVectors(t *testing.T) {
	const connect = "05 01 00 03 07 'a.onion' 01bb"
	for _, tc := range []struct {
		name    string
		in      string
		written string
		err     error // nil: done
		check   func(*testing.T, *Request)
	}{
		{name: "zero pairs", in: "05 01 97 01 0000 " + connect, written: "05 97 01 00 0000",
			check: func(t *testing.T, r *Request) {
				if !r.ExtAuth || r.HasAuth || len(r.Options.Pairs()) != 0 {
					t.Errorf("zero pairs gave %+v", r)
				}
			}},
		{name: "preferred over user/pass", in: "05 03 00 02 97 01 0000 " + connect, written: "05 97 01 00 0000"},
		{name: "every option", in: "05 01 97 01 0006 " +
			"0009 'isolation' 0003 'tok' 0008 'lifetime' 0003 '90s' 000a 'keep_alive' 0001 '1' " +
			"0005 'fresh' 0004 'true' 000a 'onion_only' 0001 '1' 000f 'extended_errors' 0001 '0' " + connect,
			written: "05 97 01 00 0000",
			check: func(t *testing.T, r *Request) {
				o := r.Options
				if string(o.Isolation) != "tok" || o.Lifetime != 90*time.Second || !o.KeepAlive.Or(false) ||
					!o.Fresh || !o.OnionOnly || o.ExtendedErrors.Or(true) {
					t.Errorf("options %+v", o)
				}
			}},
		{name: "USERNAME and PASSWD are the RFC 1929 credentials", in: "05 01 97 01 0002 0008 'USERNAME' 0005 'alice' 0006 'PASSWD' 0000 " + connect,
			written: "05 97 01 00 0000",
			check: func(t *testing.T, r *Request) {
				if !r.HasAuth || string(r.Username) != "alice" || len(r.Password) != 0 {
					t.Errorf("credentials %q/%q (%v)", r.Username, r.Password, r.HasAuth)
				}
			}},
		{name: "empty value", in: "05 01 97 01 0001 0009 'isolation' 0000 " + connect, written: "05 97 01 00 0000",
			check: func(t *testing.T, r *Request) {
				if !r.Options.HasIsolation || len(r.Options.Isolation) != 0 {
					t.Errorf("options %+v", r.Options)
				}
			}},
		{name: "unknown key", in: "05 01 97 01 0001 0006 'colour' 0003 'red' " + connect, written: "05 97 01 02 0000", err: socksproto.ErrOption},
		{name: "bad value", in: "05 01 97 01 0001 0005 'fresh' 0003 'yes'", written: "05 97 01 02 0000", err: socksproto.ErrOption},
		{name: "duplicate key", in: "05 01 97 01 0002 0005 'fresh' 0001 '1' 0005 'fresh' 0001 '1'", written: "05 97 01 02 0000", err: socksproto.ErrOption},
		{name: "duplicate USERNAME", in: "05 01 97 01 0002 0008 'USERNAME' 0001 'a' 0008 'USERNAME' 0001 'b'", written: "05 97 01 02 0000", err: ErrExtAuthArgs},
		{name: "USERNAME over 255 bytes", in: "05 01 97 01 0001 0008 'USERNAME' 0100 '" + strings.Repeat("u", 256) + "'", written: "05 97 01 02 0000", err: ErrExtAuthArgs},
		{name: "oversize value refused from its length", in: "05 01 97 01 0001 0009 'isolation' 0800", written: "05 97 01 02 0000", err: ErrExtAuthArgs},
		{name: "oversize pair count refused from the lengths", in: "05 01 97 01 ffff" + strings.Repeat(" 0001 'x' 0000", 600), written: "05 97 01 02 0000", err: ErrExtAuthArgs},
		{name: "wrong VER closes", in: "05 01 97 02 0000", written: "05 97", err: ErrExtAuthVersion},
		{name: "empty key closes", in: "05 01 97 01 0001 0000 0001 'x'", written: "05 97", err: ErrExtAuthVersion},
		{name: "RFC 1929 after 0x97 credentials is a repeat", in: "05 01 97 01 0001 0008 'USERNAME' 0001 'a' 01 01 'a' 01 'b' " + connect,
			written: "05 97 01 00 0000 05 01 00 01 00000000 0000", err: ErrAuthRepeated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Handshake{}
			o := drive(h, testutil.Unhex(t, tc.in))
			if got, want := o.written, testutil.Unhex(t, tc.written); !bytes.Equal(got, want) {
				t.Errorf("written % x, want % x", got, want)
			}
			if tc.err != nil {
				if !errors.Is(o.err, tc.err) {
					t.Fatalf("err %v, want %v", o.err, tc.err)
				}
				return
			}
			if o.err != nil {
				t.Fatalf("err %v", o.err)
			}
			if tc.check != nil {
				r := o.req
				tc.check(t, &r)
			}
		})
	}
}

// FuzzExtAuth: any proposal 229 message, split anywhere, gives the same
// outcome as in one piece, never panics, and a success holds only the
// options the model accepts.
func FuzzExtAuth(f *testing.F) {
	for _, s := range []string{"01 0000", "01 0001 0009 'isolation' 0003 'tok'", "01 0001 0006 'colour' 0003 'red'",
		"01 0002 0005 'fresh' 0001 '1' 0005 'fresh' 0001 '1'", "02 0000", "01 0001 0000 0000", "01 ffff ffff",
		"01 0002 0008 'USERNAME' 0001 'a' 0006 'PASSWD' 0001 'b'", "01 0001 0008 'lifetime' 0002 '60'"} {
		f.Add(testutil.Unhex(f, s), uint64(len(s)))
	}
	f.Fuzz(func(t *testing.T, msg []byte, seed uint64) {
		in := append(testutil.Unhex(t, "05 01 97"), msg...)
		in = append(in, testutil.Unhex(t, "05 01 00 03 07 'a.onion' 01bb")...)
		whole := drive(&Handshake{}, in)
		chunked := driveChunks(&Handshake{}, in, seededChunks(seed))
		if d := sameOutcome(whole, chunked); d != "" {
			t.Fatalf("whole vs chunked: %s", d)
		}
		if whole.err != nil {
			return
		}
		r := whole.req
		if !r.ExtAuth {
			t.Fatal("done without ExtAuth")
		}
		var back socksproto.StreamOptions
		for _, p := range r.Options.Pairs() {
			if err := back.Set([]byte(p[0]), []byte(p[1])); err != nil {
				t.Fatalf("accepted %v, which the model refuses: %v", p, err)
			}
		}
	})
}
