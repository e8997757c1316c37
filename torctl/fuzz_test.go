package torctl

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// replySeeds are wire texts from the tables above and from real tor.
var replySeeds = []string{
	"250 OK\r\n",
	"250-version=Tor 0.4.9.11\r\n250 OK\r\n",
	"250+config-text=\r\nSocksPort 9050\r\n..hidden\r\n..\r\n\r\nlast\r\n.\r\n250 OK\r\n",
	"650 CIRC 1000 EXTENDED moria1,moria2\r\n250-SOCKSPORT=9050\r\n250 ORPORT=0\r\n",
	"650-CIRC 1000 EXTENDED moria1,moria2 0xBEEF\r\n650-EXTRAMAGIC=99\r\n650 ANONYMITY=high\r\n",
	"650+NS\r\nr foo\r\n.\r\n650 OK\r\n",
	"512-syntax error: invalid address '@@@'\r\n250 127.199.80.246=bogus1.google.com\r\n",
	"250-PROTOCOLINFO 1\r\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE=\"/tmp/c\"\r\n250-VERSION Tor=\"0.4.9.11\"\r\n250 OK\r\n",
	"650 STREAM 153 NEW 0 127.0.0.1:15120 SOURCE_ADDR=127.0.0.1:58538 PURPOSE=USER SOCKS_USERNAME=\"alice\"\r\n",
	"2x0 OK\r\n", "250\r\n", "250-a=b\r\n650 CIRC 1 BUILT\r\n", "250+a=\r\nxyz", "250 O",
}

// chunkReader returns data in pieces whose sizes come from sizes, so that
// partial reads at every boundary are exercised.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(r.sizes) > 0 {
		n = int(r.sizes[r.i%len(r.sizes)])%17 + 1
		r.i++
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func parseFrom(r io.Reader) ([][]ReplyLine, error) {
	lr := newLineReader(r, 4096) // small bound so the fuzzer reaches it
	var a assembler
	var out [][]ReplyLine
	for {
		line, err := lr.next()
		if err == io.EOF {
			if a.midMessage() {
				return out, io.ErrUnexpectedEOF
			}
			return out, nil
		}
		if err != nil {
			return out, err
		}
		msg, err := a.feed(line)
		if err != nil {
			return out, err
		}
		if msg != nil {
			out = append(out, msg)
		}
	}
}

// FuzzReply: the line reader and assembler never panic, give the same answer
// however the input is chunked, and what they accept re-encodes to a wire
// text that parses to the same messages.
func FuzzReply(f *testing.F) {
	for i, s := range replySeeds {
		f.Add([]byte(s), []byte{byte(i), 3, 7})
	}
	f.Fuzz(func(t *testing.T, wire, sizes []byte) {
		whole, errWhole := parseFrom(bytes.NewReader(wire))
		chunked, errChunked := parseFrom(&chunkReader{data: wire, sizes: sizes})
		if !reflect.DeepEqual(whole, chunked) || (errWhole == nil) != (errChunked == nil) {
			t.Fatalf("chunking changed the result:\n%v %v\n%v %v", whole, errWhole, chunked, errChunked)
		}
		for _, m := range whole {
			if len(m) == 0 || m[len(m)-1].Sep != ' ' {
				t.Fatalf("message without EndReplyLine: %v", m)
			}
			for _, l := range m {
				if strings.ContainsAny(l.Text, "\n") || l.Code < 100 || l.Code > 699 {
					t.Fatalf("bad line %+v", l)
				}
				if l.Sep != '+' && l.Data != "" {
					t.Fatalf("data on a %c line", l.Sep)
				}
			}
			if (m[0].Code >= 600) != (m[len(m)-1].Code >= 600) {
				t.Fatalf("event and reply lines mixed: %v", m)
			}
			again, err := parseFrom(strings.NewReader(encodeLines(m)))
			if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0], m) {
				t.Fatalf("round trip of %q: %v %v", encodeLines(m), again, err)
			}
		}
	})
}

// FuzzConn feeds arbitrary bytes to a whole Conn: it must end (EOF or
// error), never panic, and close its event channel.
func FuzzConn(f *testing.F) {
	for _, s := range replySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		c := NewConn(&fuzzRW{r: bytes.NewReader(wire)})
		for range c.Events() {
		}
		<-c.Done()
		if c.Err() == nil {
			t.Fatal("Done closed with nil Err")
		}
		c.Close()
	})
}

type fuzzRW struct{ r io.Reader }

func (f *fuzzRW) Read(p []byte) (int, error)  { return f.r.Read(p) }
func (f *fuzzRW) Write(p []byte) (int, error) { return len(p), nil }
func (f *fuzzRW) Close() error                { return nil }

var argSeeds = []string{
	"153 NEW 0 127.0.0.1:15120 SOURCE_ADDR=127.0.0.1:58538 PURPOSE=USER",
	`SOCKS_USERNAME="al ice" SOCKS_PASSWORD="p\"w"`,
	`example.test 127.0.0.1 "2026-11-22 11:18:57" EXPIRES="2026-11-22 11:18:57" CACHED="NO" STREAMID=159`,
	`nx.invalid <error> "2026-11-22 11:18:57" error=yes`,
	"94 BUILT $AAAA=auth0,$BBBB~exit0 BUILD_FLAGS=NEED_CAPACITY",
	`WARN BUG REASON="I thought that \'example.test\' was mapped\n"`,
	`K="\101\1234\377" "" =x`, `K="open`, `"\`,
}

// FuzzParseArgs: ParseArgs never panics, and arguments it returns survive
// encoding (every value as a QuotedString) and parsing again.
func FuzzParseArgs(f *testing.F) {
	for _, s := range argSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args, err := ParseArgs(s)
		if err != nil {
			if !errors.Is(err, ErrQuote) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		var b strings.Builder
		for _, a := range args {
			if a.Key != "" {
				b.WriteString(a.Key + "=")
			}
			b.WriteString(Quote(a.Value) + " ")
		}
		again, err := ParseArgs(b.String())
		if err != nil || !reflect.DeepEqual(again, args) {
			t.Fatalf("round trip %q -> %q: %q %v", s, b.String(), again, err)
		}
		// The event and bootstrap parsers accept anything without panicking.
		for _, typ := range []string{"STREAM", "CIRC", "CIRC_MINOR", "ADDRMAP", "STATUS_CLIENT"} {
			e := Event{Type: typ, Text: typ + " " + s, Lines: []ReplyLine{{650, ' ', typ + " " + s, ""}}}
			// What the event parsers accept is made of plain words where
			// the grammar has them: callers key maps and compare on them.
			if se, err := ParseStreamEvent(e); err == nil && !atoms(se.ID, se.Status, se.CircID) {
				t.Fatalf("STREAM %q accepted as %+v", s, se)
			}
			if ce, err := ParseCircEvent(e); err == nil && (!atoms(ce.ID, ce.Status) || !atoms(ce.Path...)) {
				t.Fatalf("CIRC %q accepted as %+v", s, ce)
			}
			if me, err := ParseCircMinorEvent(e); err == nil && (!atoms(me.ID, me.Event) || !atoms(me.Path...)) {
				t.Fatalf("CIRC_MINOR %q accepted as %+v", s, me)
			}
			ParseAddrMapEvent(e)
			ParseStatusEvent(e)
		}
		ParseBootstrapPhase(s)
	})
}

// FuzzQuote: Unquote(Quote(s)) == s for every s; Unquote never panics, and
// what it accepts re-quotes to something it accepts with the same value.
func FuzzQuote(f *testing.F) {
	for _, s := range append(argSeeds, `"a\"b"`, `"\n\t\r\0"`, `""`, "caf\xc3\xa9", "\x00\xff") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		back, err := Unquote(q)
		if err != nil || back != s {
			t.Fatalf("Unquote(Quote(%q)) = %q, %v (quoted %s)", s, back, err, q)
		}
		if strings.ContainsAny(q, "\r\n\x00") {
			t.Fatalf("Quote(%q) = %q contains a line break or NUL", s, q)
		}
		if utf8.ValidString(s) && !utf8.ValidString(q) {
			t.Fatalf("Quote broke UTF-8: %q", q)
		}
		v, err := Unquote(s)
		if err != nil {
			return
		}
		if v2, err := Unquote(Quote(v)); err != nil || v2 != v {
			t.Fatalf("requote of %q: %q %v", v, v2, err)
		}
	})
}
