package torctl

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// parseAll runs the line reader and assembler over a whole wire text.
func parseAll(wire string) ([][]ReplyLine, error) {
	lr := newLineReader(strings.NewReader(wire), MaxLineLength)
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

func TestAssembler(t *testing.T) {
	tests := []struct {
		name string
		wire string
		want [][]ReplyLine
	}{
		{"single", "250 OK\r\n", [][]ReplyLine{{{250, ' ', "OK", ""}}}},
		{"empty text", "250 \r\n", [][]ReplyLine{{{250, ' ', "", ""}}}},
		{"LF only accepted", "250 OK\n", [][]ReplyLine{{{250, ' ', "OK", ""}}}},
		{"mid lines", "250-version=Tor 0.4.9.11\r\n250 OK\r\n", [][]ReplyLine{{
			{250, '-', "version=Tor 0.4.9.11", ""}, {250, ' ', "OK", ""}}}},
		{"data block dot-unstuffed", "250+config-text=\r\nSocksPort 9050\r\n..hidden\r\n..\r\n\r\nlast\r\n.\r\n250 OK\r\n", [][]ReplyLine{{
			{250, '+', "config-text=", "SocksPort 9050\n.hidden\n.\n\nlast"}, {250, ' ', "OK", ""}}}},
		{"empty data block", "250+k=\r\n.\r\n250 OK\r\n", [][]ReplyLine{{{250, '+', "k=", ""}, {250, ' ', "OK", ""}}}},
		{"data with CR inside a line", "250+k=\r\na\rb\r\n.\r\n250 OK\r\n", [][]ReplyLine{{{250, '+', "k=", "a\rb"}, {250, ' ', "OK", ""}}}},
		{"data line that looks like a reply", "250+k=\r\n250 OK\r\n.\r\n250 OK\r\n", [][]ReplyLine{{{250, '+', "k=", "250 OK"}, {250, ' ', "OK", ""}}}},
		{"event then reply", "650 CIRC 1 LAUNCHED\r\n250 OK\r\n", [][]ReplyLine{
			{{650, ' ', "CIRC 1 LAUNCHED", ""}}, {{250, ' ', "OK", ""}}}},
		{"multi-line event", "650-CIRC 1000 EXTENDED moria1,moria2 0xBEEF\r\n650-EXTRAMAGIC=99\r\n650 ANONYMITY=high\r\n", [][]ReplyLine{{
			{650, '-', "CIRC 1000 EXTENDED moria1,moria2 0xBEEF", ""}, {650, '-', "EXTRAMAGIC=99", ""}, {650, ' ', "ANONYMITY=high", ""}}}},
		{"data event", "650+NS\r\nr foo\r\n.\r\n650 OK\r\n", [][]ReplyLine{{{650, '+', "NS", "r foo"}, {650, ' ', "OK", ""}}}},
		{"mixed codes (MAPADDRESS)", "512-syntax error: invalid address '@@@'\r\n250 127.199.80.246=bogus1.google.com\r\n", [][]ReplyLine{{
			{512, '-', "syntax error: invalid address '@@@'", ""}, {250, ' ', "127.199.80.246=bogus1.google.com", ""}}}},
		// §4.1 forbids this and tor does not do it; if it happens, each
		// line still goes where its code says.
		{"event inside reply", "250-a=b\r\n650 CIRC 1 BUILT\r\n250 OK\r\n", [][]ReplyLine{
			{{650, ' ', "CIRC 1 BUILT", ""}}, {{250, '-', "a=b", ""}, {250, ' ', "OK", ""}}}},
		{"multi-line event inside data reply", "250+k=\r\nv\r\n.\r\n650-CIRC 1 BUILT\r\n250-x=y\r\n650+NS\r\nr\r\n.\r\n650 OK\r\n250 OK\r\n", [][]ReplyLine{
			{{650, '-', "CIRC 1 BUILT", ""}, {650, '+', "NS", "r"}, {650, ' ', "OK", ""}},
			{{250, '+', "k=", "v"}, {250, '-', "x=y", ""}, {250, ' ', "OK", ""}}}},
		{"text with 8-bit bytes", "250 caf\xc3\xa9\xff\r\n", [][]ReplyLine{{{250, ' ', "caf\xc3\xa9\xff", ""}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAll(tt.wire)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tt.want)
			}
			// Round trip: encoding the messages gives back a wire text that
			// parses to the same messages.
			var enc strings.Builder
			for _, m := range got {
				enc.WriteString(encodeLines(m))
			}
			again, err := parseAll(enc.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip: %v\n%#v", err, again)
			}
		})
	}
}

// Hostile and malformed input: each entry names the error it must get.
func TestAssemblerRejects(t *testing.T) {
	tests := []struct {
		name string
		wire string
		want error
	}{
		{"letters in code", "2x0 OK\r\n", ErrProtocol},
		{"code 0xx", "050 OK\r\n", ErrProtocol},
		{"code 7xx", "750 OK\r\n", ErrProtocol},
		{"no separator", "250OK\r\n", ErrProtocol},
		{"bare code", "250\r\n", ErrProtocol},
		{"empty line", "\r\n", ErrProtocol},
		{"reply inside unfinished event", "650-CIRC 1 BUILT\r\n250 OK\r\n", io.ErrUnexpectedEOF},
		{"EOF mid reply", "250-a=b\r\n", io.ErrUnexpectedEOF},
		{"EOF mid data", "250+a=\r\nxyz\r\n", io.ErrUnexpectedEOF},
		{"EOF mid line", "250 O", io.ErrUnexpectedEOF},
		{"overlong line", "250 " + strings.Repeat("x", MaxLineLength) + "\r\n", ErrLineTooLong},
		{"overlong data line", "250+a=\r\n" + strings.Repeat("x", MaxLineLength+1) + "\r\n.\r\n250 OK\r\n", ErrLineTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseAll(tt.wire)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLineLengthBoundary(t *testing.T) {
	// Exactly MaxLineLength bytes (CRLF excluded) is accepted.
	line := "250 " + strings.Repeat("y", MaxLineLength-4)
	got, err := parseAll(line + "\r\n")
	if err != nil || len(got) != 1 || len(got[0][0].Text) != MaxLineLength-4 {
		t.Fatalf("line of MaxLineLength: err %v", err)
	}
	if _, err := parseAll(line + "y\r\n"); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("line of MaxLineLength+1: err %v", err)
	}
}

func TestReplyTooLarge(t *testing.T) {
	var a assembler
	line := []byte("250-" + strings.Repeat("z", 1<<20-4))
	for i := 0; ; i++ {
		_, err := a.feed(line)
		if errors.Is(err, ErrReplyTooLarge) {
			if i < MaxMessageSize/(1<<20)-1 {
				t.Fatalf("refused after %d MiB", i)
			}
			return
		}
		if err != nil || i > MaxMessageSize/(1<<20)+1 {
			t.Fatalf("err %v after %d lines", err, i)
		}
	}
}

func TestDotStuff(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ".\r\n"},
		{"a", "a\r\n.\r\n"},
		{".a\n.\nb", "..a\r\n..\r\nb\r\n.\r\n"},
		{"x\r\ny", "x\r\ny\r\n.\r\n"},
	}
	for _, tt := range tests {
		if got := DotStuff(tt.in); got != tt.want {
			t.Errorf("DotStuff(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
