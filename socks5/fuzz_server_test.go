package socks5

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"socksd/internal/testutil"
	"socksd/socksproto"
)

// seedVectors are whole client transcripts (valid and hostile) used as
// fuzz seeds and by TestHandshakeChunked.
var seedVectors = []string{
	"05 01 00 05 01 00 03 0b 'example.com' 0050",
	"05 02 00 02 01 05 'alice' 03 'pw1' 05 01 00 01 7f000001 0050 'data'",
	"05 01 02 01 00 00 05 f0 00 03 0c 'example.test' 0000",
	"05 01 00 01 01 'a' 01 'b' 05 f1 00 04 20010db8000000000000000000000001 0000",
	"05 01 02 01 09 '<torS0X>0' 03 'key' 05 01 00 03 07 'a.onion' 01bb 'GET /'",
	"05 01 02 01 09 '<torS0X>1' 03 'obj' 05 01 00 03 07 'a.onion' 01bb",
	"05 03 99 21 10",
	"05 00",
	"01 05 'alice' 03 'pw1'",
	"06 01 00",
	"05 01 02 02 01 'u' 01 'p'",
	"05 01 00 05 02 00 01 7f000001 0050",
	"05 01 00 05 03 00 01 00000000 0000",
	"05 01 00 05 01 00 23 7f000001 0050",
	"05 01 00 05 f1 00 03 0b 'example.com' 0000",
	"05 01 00 05 01 00 03 00 0050",
	"05 01 00 05 01 00 03 0c 'example.com' 00 0050",
	"05 01 00 05 01 01 01 7f000001 0050",
	"05 01 00 05 01 00 01 7f000001 0000",
	"05 01 00 05 01 00 03 05 '[::1]' 0050",
	"05 01 97 01 0000 05 01 00 03 07 'a.onion' 01bb",
	"05 02 02 97 01 0002 0009 'isolation' 0003 'tok' 0008 'lifetime' 0002 '60' 05 01 00 03 07 'a.onion' 01bb 'GET /'",
	"05 01 97 01 0001 0006 'colour' 0003 'red' 05 01 00 03 07 'a.onion' 01bb",
	"05 01 97 01 0002 0005 'fresh' 0001 '1' 0005 'fresh' 0001 '0'",
	"05 01 97 02 0000",
	"05 01 97 01 0001 0000 0000",
	"05 01 97 01 ffff ffff",
}

// driveChunks is drive for a client whose bytes arrive in pieces: next
// says how many bytes the next read delivers. Reads happen only when the
// handshake asks for more (socksproto.ErrShortBuffer), like the dispatcher's loop.
func driveChunks(h *Handshake, in []byte, next func(remaining int) int) outcome {
	var o outcome
	var buf []byte
	for {
		a, err := h.Step(buf)
		if a.Consumed < 0 || a.Consumed > len(buf) {
			panic("Consumed out of range")
		}
		o.written = append(o.written, a.Reply...)
		buf = buf[a.Consumed:]
		switch {
		case errors.Is(err, socksproto.ErrShortBuffer):
			if a.Consumed != 0 || a.Reply != nil {
				panic("socksproto.ErrShortBuffer with progress")
			}
			if len(in) == 0 {
				o.err = err
				return o
			}
			n := min(max(next(len(in)), 1), len(in))
			buf = append(buf, in[:n]...)
			in = in[n:]
		case err != nil:
			o.err = err
			return o
		case a.Done:
			o.req = *h.Request()
			o.early = append(buf, in...)
			return o
		}
	}
}

// seededChunks gives reproducible read sizes (at most 64 bytes) from a
// fuzzer's seed, by xorshift.
func seededChunks(seed uint64) func(remaining int) int {
	s := seed | 1
	return func(rem int) int {
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		return int(s % uint64(min(rem, 64)+1))
	}
}

// sameOutcome compares two runs; "" when equal.
func sameOutcome(a, b outcome) string {
	if !bytes.Equal(a.written, b.written) {
		return fmt.Sprintf("written % x vs % x", a.written, b.written)
	}
	if (a.err == nil) != (b.err == nil) || a.err != nil && a.err.Error() != b.err.Error() {
		return fmt.Sprintf("err %v vs %v", a.err, b.err)
	}
	if a.err != nil {
		return ""
	}
	ra, rb := a.req, b.req
	if ra.Command != rb.Command || ra.IP != rb.IP || !bytes.Equal(ra.Host, rb.Host) || ra.Port != rb.Port ||
		ra.HasAuth != rb.HasAuth || !bytes.Equal(ra.Username, rb.Username) || !bytes.Equal(ra.Password, rb.Password) ||
		ra.ExtAuth != rb.ExtAuth || !reflect.DeepEqual(ra.Options, rb.Options) {
		return fmt.Sprintf("request %+v vs %+v", ra, rb)
	}
	if !bytes.Equal(a.early, b.early) {
		return fmt.Sprintf("early % x vs % x", a.early, b.early)
	}
	return ""
}

// FuzzHandshake: any input, split anywhere, never panics, and gives the
// same replies, error, request and optimistic data as in one piece. A
// finished request also satisfies the parser's promises.
func FuzzHandshake(f *testing.F) {
	for i, v := range seedVectors {
		f.Add(testutil.Unhex(f, v), uint64(i)*0x9e3779b97f4a7c15+1)
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		whole := drive(&Handshake{}, in)
		chunked := driveChunks(&Handshake{}, in, seededChunks(seed))
		if d := sameOutcome(whole, chunked); d != "" {
			t.Fatalf("chunking changed the outcome: %s", d)
		}
		if whole.err != nil {
			return
		}
		r := whole.req
		switch r.Command {
		case socksproto.CmdConnect, socksproto.CmdResolve:
			if r.Host != nil == r.IP.IsValid() {
				t.Fatalf("exactly one of Host/IP must be set: %+v", r)
			}
			if r.Host != nil && !socksproto.ValidHostname(r.Host) {
				t.Fatalf("invalid host accepted: %q", r.Host)
			}
			if r.Command == socksproto.CmdConnect && r.Port == 0 {
				t.Fatal("CONNECT port 0 accepted")
			}
		case socksproto.CmdResolvePTR:
			if r.Host != nil || !r.IP.IsValid() {
				t.Fatalf("RESOLVE_PTR without address: %+v", r)
			}
		default:
			t.Fatalf("command %v accepted", r.Command)
		}
		if r.IP.Is4In6() {
			t.Fatalf("mapped address not unmapped: %v", r.IP)
		}
	})
}
