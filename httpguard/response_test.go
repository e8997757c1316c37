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
	if string(got) != "xHTTP/1.1 200 Connection established\r\n\r\n" {
		t.Fatalf("%q", got)
	}
}

func TestAppendConnectError(t *testing.T) {
	const tail = "Content-Length: 0\r\nConnection: close\r\n\r\n"
	for _, tc := range []struct {
		status int
		reason string
		code   byte
		want   string
	}{
		{502, "", 0x04, "HTTP/1.1 502 Bad Gateway\r\nTor-Request-Failed: 0x04 host unreachable\r\n" + tail},
		{502, "end reason EXITPOLICY", 0x02, "HTTP/1.1 502 Bad Gateway\r\nTor-Request-Failed: 0x02 end reason EXITPOLICY\r\n" + tail},
		{504, "", 0xF7, "HTTP/1.1 504 Gateway Timeout\r\nTor-Request-Failed: 0xf7 onion service introduction timed out\r\n" + tail},
		{403, "", 0x02, "HTTP/1.1 403 Forbidden\r\nTor-Request-Failed: 0x02 connection not allowed by ruleset\r\n" + tail},
		{502, "", 0xF0, "HTTP/1.1 502 Bad Gateway\r\nTor-Request-Failed: 0xf0 onion service descriptor can not be found\r\n" + tail},
		{502, "", 0x99, "HTTP/1.1 502 Bad Gateway\r\nTor-Request-Failed: 0x99 unknown reply 0x99\r\n" + tail},
		// Header injection is impossible: control bytes are dropped.
		{502, "a\r\nX-Evil: 1\r\n\r\n<html>", 0x01, "HTTP/1.1 502 Bad Gateway\r\nTor-Request-Failed: 0x01 aX-Evil: 1<html>\r\n" + tail},
		{502, "\r\n\x00", 0x01, "HTTP/1.1 502 Bad Gateway\r\nTor-Request-Failed: 0x01 general SOCKS server failure\r\n" + tail},
		{400, "", 0, "HTTP/1.1 400 Bad Request\r\n" + tail},
		{431, "ignored without a code", 0, "HTTP/1.1 431 Request Header Fields Too Large\r\n" + tail},
		{42, "", 0, "HTTP/1.1 500 Internal Server Error\r\n" + tail},
		{599, "", 0, "HTTP/1.1 599 Error\r\n" + tail},
	} {
		if got := string(AppendConnectError(nil, tc.status, tc.reason, tc.code)); got != tc.want {
			t.Errorf("AppendConnectError(%d, %q, %#x) =\n%q\nwant\n%q", tc.status, tc.reason, tc.code, got, tc.want)
		}
	}
	long := string(AppendConnectError(nil, 502, strings.Repeat("r", 500), 0x01))
	if !strings.Contains(long, " "+strings.Repeat("r", 128)+"\r\n") {
		t.Fatalf("reason not capped at 128 bytes: %q", long)
	}
}

func TestStatusFor(t *testing.T) {
	for code, want := range map[byte]int{
		0x01: 502, 0x02: 403, 0x03: 502, 0x04: 502, 0x05: 502, 0x06: 504, 0x07: 400, 0x08: 400,
		0xF0: 502, 0xF1: 502, 0xF2: 502, 0xF3: 502, 0xF4: 403, 0xF5: 403, 0xF6: 400, 0xF7: 504,
	} {
		if got := StatusFor(code); got != want {
			t.Errorf("StatusFor(%#x) = %d, want %d", code, got, want)
		}
	}
}
