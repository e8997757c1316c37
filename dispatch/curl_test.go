package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// webServer serves "hello from socksd test" on 127.0.0.1.
func webServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Write([]byte("hello from socksd test"))
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

func curl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--max-time", "10", "--noproxy", ""}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = []string{"PATH=/usr/bin:/bin"} // no proxy variables from the environment
	err := cmd.Run()
	if err != nil {
		return out.String(), &curlError{err, errb.String()}
	}
	return out.String(), nil
}

type curlError struct {
	err    error
	stderr string
}

func (e *curlError) Error() string { return e.err.Error() + ": " + e.stderr }

func TestCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	h := newHarness(t, hopt{})
	web := webServer(t)
	_, port, _ := net.SplitHostPort(web)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"socks4", []string{"--socks4", h.addr, "http://" + web + "/"}},
		{"socks4a", []string{"--socks4a", h.addr, "http://localhost:" + port + "/"}},
		{"socks5", []string{"--socks5", h.addr, "http://" + web + "/"}},
		{"socks5-hostname", []string{"--socks5-hostname", h.addr, "http://localhost:" + port + "/"}},
		{"socks5h with user", []string{"-x", "socks5h://alice:pw@" + h.addr, "http://localhost:" + port + "/"}},
		{"http connect", []string{"-p", "-x", "http://" + h.addr, "http://localhost:" + port + "/"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := curl(t, tc.args...)
			if err != nil || out != "hello from socksd test" {
				t.Fatalf("curl %v: %q, %v", tc.args, out, err)
			}
		})
	}
	// The hostname forms must reach the upstream as names: never resolved
	// by socksd.
	var names int
	for _, r := range h.fake.Requests() {
		if r.Host == "localhost" {
			names++
		}
	}
	if names != 4 {
		t.Errorf("upstream saw %d hostname requests, want 4", names)
	}

	// curl used as a plain web proxy for another site: its Host names that
	// site, so socksd answers nothing at all (DNS-rebinding defence).
	t.Run("http proxy foreign host", func(t *testing.T) {
		out, err := curl(t, "-i", "-x", "http://"+h.addr, "http://example.com/")
		var ce *curlError
		var ee *exec.ExitError
		if !errors.As(err, &ce) || !errors.As(ce.err, &ee) || ee.ExitCode() != 52 || out != "" {
			t.Fatalf("curl: %q, %v; want exit 52 (empty reply from server)", out, err)
		}
	})
	t.Run("http proxy warning page", func(t *testing.T) {
		out, err := curl(t, "-i", "-x", "http://"+h.addr, "http://localhost/")
		if err != nil {
			t.Fatal(err)
		}
		head, body, ok := strings.Cut(out, "\r\n\r\n")
		if !ok {
			t.Fatalf("no head: %q", out)
		}
		lines := strings.Split(head, "\r\n")
		if lines[0] != "HTTP/1.0 501 socksd is a SOCKS proxy, not an HTTP proxy" {
			t.Fatalf("status %q", lines[0])
		}
		want := []string{"Tor-Capabilities: ", "Server: tor/1.0 (socksd)", "Content-Type: text/html; charset=utf-8", "Content-Length: " + strconv.Itoa(len(body)), "Connection: close"}
		if strings.Join(lines[1:], "\n") != strings.Join(want, "\n") {
			t.Fatalf("headers %q, want %q", lines[1:], want)
		}
		if !strings.Contains(body, "SOCKS") || !strings.Contains(body, h.addr[strings.LastIndexByte(h.addr, ':')+1:]) {
			t.Fatalf("body does not explain the SOCKS setup: %q", body)
		}
	})
}
