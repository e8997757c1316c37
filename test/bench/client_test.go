package main

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestHTTPGetOn: the request the bench sends and how it reads the answer,
// for both callers: the tor bench takes any status, the user bench only 200.
func TestHTTPGetOn(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		want200      bool
		n            int64
		err          string
	}{
		{"ok", "HTTP/1.0 200 OK\r\nA: b\r\n\r\nhello", true, 5, ""},
		{"404 counted", "HTTP/1.0 404 Not Found\r\n\r\nabc", false, 3, ""},
		{"404 refused", "HTTP/1.0 404 Not Found\r\n\r\nabc", true, 0, `answer "HTTP/1.0 404 Not Found"`},
		{"cut in the head", "HTTP/1.0 200 OK\r\nA: b", true, 0, "EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := net.Pipe()
			req := make(chan string, 1)
			go func() {
				defer s.Close()
				br := bufio.NewReader(s)
				var head strings.Builder
				for {
					l, err := br.ReadString('\n')
					head.WriteString(l)
					if err != nil || l == "\r\n" {
						break
					}
				}
				req <- head.String()
				s.Write([]byte(tc.answer))
			}()
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			ttfb, n, err := httpGetOn(c, time.Now(), "example.test:80", "/x", tc.want200)
			if got, want := <-req, "GET /x HTTP/1.0\r\nHost: example.test:80\r\n\r\n"; got != want {
				t.Errorf("request %q, want %q", got, want)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || n != tc.n || ttfb <= 0 {
				t.Fatalf("ttfb %v, n %d, err %v; want n %d", ttfb, n, err, tc.n)
			}
		})
	}
}
