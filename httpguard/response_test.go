package httpguard

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestWarningPage(t *testing.T) {
	for _, tc := range []struct {
		listen, host, port string
	}{
		{"127.0.0.1:9350", "127.0.0.1", "9350"},
		{"[::1]:9350", "::1", "9350"},
		{"unix:/run/socksd.sock", "unix:/run/socksd.sock", ""},
		{"<script>alert(1)</script>:9&0", "&lt;script&gt;alert(1)&lt;/script&gt;", "9&amp;0"},
	} {
		page := WarningPage(tc.listen)
		end := bytes.Index(page, []byte("\r\n\r\n"))
		if end < 0 {
			t.Fatalf("%s: no end of head", tc.listen)
		}
		head, body := string(page[:end+4]), string(page[end+4:])
		want := "HTTP/1.0 501 socksd is a SOCKS proxy, not an HTTP proxy\r\n" +
			"Tor-Capabilities: \r\nServer: tor/1.0 (socksd)\r\n" +
			"Content-Type: text/html; charset=utf-8\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
			"Connection: close\r\n\r\n"
		if head != want {
			t.Fatalf("%s: head\n%q\nwant\n%q", tc.listen, head, want)
		}
		if !strings.HasPrefix(head, WarningStatusLine+"\r\n") {
			t.Fatal("WarningStatusLine out of date")
		}
		for _, s := range []string{"SOCKS v5", "Proxy DNS when using SOCKS v5", "not an HTTP proxy"} {
			if !strings.Contains(body, s) {
				t.Errorf("%s: body lacks %q", tc.listen, s)
			}
		}
		if tc.port == "" {
			if !strings.Contains(body, "<code>"+tc.host+"</code>") {
				t.Errorf("%s: body lacks the address", tc.listen)
			}
		} else if !strings.Contains(body, "SOCKS host: <code>"+tc.host+"</code>") ||
			!strings.Contains(body, "Port: <code>"+tc.port+"</code>") {
			t.Errorf("%s: body lacks host %q port %q:\n%s", tc.listen, tc.host, tc.port, body)
		}
		if strings.Contains(body, "<script>") {
			t.Errorf("%s: listen address not escaped", tc.listen)
		}
		// A real HTTP client reads it as one complete response.
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(page)), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != body || resp.StatusCode != 501 || !resp.Close ||
			resp.ContentLength != int64(len(body)) || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Fatalf("net/http reads %+v, body %d bytes, err %v", resp, len(b), err)
		}
	}
}

func TestAppendConnectEstablished(t *testing.T) {
	got := AppendConnectEstablished([]byte("x"))
	if string(got) != "xHTTP/1.1 200 Connection established\r\nTor-Capabilities: \r\nVia: tor/1.0 tor-network (socksd)\r\n\r\n" {
		t.Fatalf("%q", got)
	}
}

func TestAppendConnectError(t *testing.T) {
	const via = "Tor-Capabilities: \r\nVia: tor/1.0 tor-network (socksd)\r\n"
	const tail = "Content-Length: 0\r\nConnection: close\r\n\r\n"
	for _, tc := range []struct {
		status int
		reason string
		code   byte
		want   string
	}{
		{503, "", 0x04, "HTTP/1.1 503 Service Unavailable (host unreachable)\r\n" + via + "Tor-Request-Failed: 0x04 host unreachable\r\n" + tail},
		{502, "end reason EXITPOLICY", 0x02, "HTTP/1.1 502 Bad Gateway (connection not allowed by ruleset)\r\n" + via + "Tor-Request-Failed: 0x02 end reason EXITPOLICY\r\n" + tail},
		{504, "", 0xF7, "HTTP/1.1 504 Gateway Timeout (onion service introduction timed out)\r\n" + via + "Tor-Request-Failed: 0xf7 onion service introduction timed out\r\n" + tail},
		{403, "", 0x02, "HTTP/1.1 403 Forbidden (connection not allowed by ruleset)\r\n" + via + "Tor-Request-Failed: 0x02 connection not allowed by ruleset\r\n" + tail},
		{503, "", 0xF0, "HTTP/1.1 503 Service Unavailable (onion service descriptor can not be found)\r\n" + via + "Tor-Request-Failed: 0xf0 onion service descriptor can not be found\r\n" + tail},
		{502, "", 0x99, "HTTP/1.1 502 Bad Gateway (unknown reply 0x99)\r\n" + via + "Tor-Request-Failed: 0x99 unknown reply 0x99\r\n" + tail},
		// Header injection is impossible: control bytes are dropped.
		{502, "a\r\nX-Evil: 1\r\n\r\n<html>", 0x01, "HTTP/1.1 502 Bad Gateway (general SOCKS server failure)\r\n" + via + "Tor-Request-Failed: 0x01 aX-Evil: 1<html>\r\n" + tail},
		{502, "\r\n\x00", 0x01, "HTTP/1.1 502 Bad Gateway (general SOCKS server failure)\r\n" + via + "Tor-Request-Failed: 0x01 general SOCKS server failure\r\n" + tail},
		{400, "", 0, "HTTP/1.1 400 Bad Request\r\n" + via + tail},
		{431, "ignored without a code", 0, "HTTP/1.1 431 Request Header Fields Too Large\r\n" + via + tail},
		{42, "", 0, "HTTP/1.1 500 Internal Server Error\r\n" + via + tail},
		{599, "", 0, "HTTP/1.1 599 Error\r\n" + via + tail},
	} {
		if got := string(AppendConnectError(nil, tc.status, tc.reason, tc.code)); got != tc.want {
			t.Errorf("AppendConnectError(%d, %q, %#x) =\n%q\nwant\n%q", tc.status, tc.reason, tc.code, got, tc.want)
		}
	}
	long := string(AppendConnectError(nil, 502, strings.Repeat("r", 500), 0x01))
	if !strings.Contains(long, " "+strings.Repeat("r", 128)+"\r\n") {
		t.Fatalf("reason not capped at 128 bytes: %q", long)
	}
	// A real HTTP client reads the code from the status line.
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(AppendConnectError(nil, 503, "", 0x04))), &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Tor-Request-Failed") != "0x04 host unreachable" ||
		resp.Header.Get("Via") != ViaValue || len(resp.Header.Values("Tor-Capabilities")) != 1 {
		t.Fatalf("net/http reads %+v, %v", resp, err)
	}
}

func TestAppendOptions(t *testing.T) {
	for _, persistent := range []bool{true, false} {
		out := AppendOptions([]byte("x"), persistent)
		want := "xHTTP/1.1 200 OK\r\nAllow: CONNECT, OPTIONS\r\nTor-Capabilities: \r\nServer: tor/1.0 (socksd)\r\nContent-Length: 0\r\n"
		if !persistent {
			want += "Connection: close\r\n"
		}
		want += "\r\n"
		if string(out) != want {
			t.Fatalf("persistent %v: %q\nwant %q", persistent, out, want)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out[1:])), &http.Request{Method: "OPTIONS"})
		if err != nil || resp.StatusCode != 200 || resp.Close == persistent || resp.Header.Get("Server") != ServerValue ||
			resp.Header.Get("Allow") != "CONNECT, OPTIONS" || resp.ContentLength != 0 {
			t.Fatalf("net/http reads %+v, %v", resp, err)
		}
	}
}

func TestStatusFor(t *testing.T) {
	// Proposal 365: RESOLVEFAILED and NOROUTE (0x04) are 503.
	for code, want := range map[byte]int{
		0x01: 502, 0x02: 403, 0x03: 503, 0x04: 503, 0x05: 503, 0x06: 504, 0x07: 400, 0x08: 400,
		0xF0: 503, 0xF1: 503, 0xF2: 503, 0xF3: 503, 0xF4: 403, 0xF5: 403, 0xF6: 400, 0xF7: 504, 0x99: 502,
	} {
		if got := StatusFor(code); got != want {
			t.Errorf("StatusFor(%#x) = %d, want %d", code, got, want)
		}
	}
}
