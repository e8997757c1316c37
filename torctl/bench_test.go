package torctl

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
)

// BenchmarkAssembler: the parser alone over a STREAM event line as tor
// 0.4.9 sends it.
func BenchmarkAssembler(b *testing.B) {
	line := []byte(`650 STREAM 153 NEW 0 127.0.0.1:15120 SOURCE_ADDR=127.0.0.1:58538 PURPOSE=USER SOCKS_USERNAME="alice" SOCKS_PASSWORD="pw1" CLIENT_PROTOCOL=SOCKS5 NYM_EPOCH=0 SESSION_GROUP=-4 ISO_FIELDS=SOCKS_USERNAME,SOCKS_PASSWORD,CLIENTADDR,SESSION_GROUP,NYM_EPOCH`)
	var a assembler
	b.SetBytes(int64(len(line) + 2))
	for b.Loop() {
		if _, err := a.feed(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseStreamEvent(b *testing.B) {
	text := `STREAM 153 NEW 0 127.0.0.1:15120 SOURCE_ADDR=127.0.0.1:58538 PURPOSE=USER SOCKS_USERNAME="alice" SOCKS_PASSWORD="pw1" CLIENT_PROTOCOL=SOCKS5 NYM_EPOCH=0 SESSION_GROUP=-4 ISO_FIELDS=SOCKS_USERNAME,SOCKS_PASSWORD,CLIENTADDR,SESSION_GROUP,NYM_EPOCH`
	e := Event{Type: "STREAM", Text: text, Lines: []ReplyLine{{650, ' ', text, ""}}}
	for b.Loop() {
		if _, err := ParseStreamEvent(e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDo: one command round trip through Conn over net.Pipe against a
// minimal echo server (no script bookkeeping).
func BenchmarkDo(b *testing.B) {
	client, server := net.Pipe()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := server.Read(buf)
			if err != nil {
				return
			}
			for range strings.Count(string(buf[:n]), "\n") {
				if _, err := io.WriteString(server, "250 OK\r\n"); err != nil {
					return
				}
			}
		}
	}()
	c := NewConn(client)
	defer c.Close()
	defer server.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Do(ctx, "SIGNAL NEWNYM"); err != nil {
			b.Fatal(err)
		}
	}
}
