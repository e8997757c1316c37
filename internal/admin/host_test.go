package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHostGuard(t *testing.T) {
	mux := http.NewServeMux()
	(&fakeDaemon{healthy: true}).handler().Register(mux)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics\n") })
	for _, listen := range []string{"127.0.0.1:9352", "admin.lan:9352"} {
		h := HostGuard(listen, mux)
		for _, path := range []string{"/", "/status", "/metrics", "/healthz", "/newnym"} {
			for _, tc := range []struct {
				host string
				ok   bool
			}{
				{"127.0.0.1:9352", true},
				{"[::1]:9352", true},
				{"localhost:9352", true},
				{"LOCALHOST", true},
				{"localhost.:9352", true},
				{"192.0.2.1:9352", true}, // an IP literal is never a rebinding
				{"", true},
				{"rebind.attacker.example", false},
				{"rebind.attacker.example:9352", false},
				{"localhost.attacker.example:9352", false},
				{"127.0.0.1.attacker.example", false},
				{"admin.lan:9352", listen == "admin.lan:9352"},
				{"ADMIN.lan", listen == "admin.lan:9352"},
			} {
				method := "GET"
				if path == "/newnym" {
					method = "POST"
				}
				r := httptest.NewRequest(method, "http://127.0.0.1:9352"+path, nil)
				r.RemoteAddr = "127.0.0.1:40000"
				r.Host = tc.host
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				refused := w.Code == http.StatusMisdirectedRequest
				if refused == tc.ok {
					t.Errorf("listen %s: %s %s Host %q: %d %q", listen, method, path, tc.host, w.Code, w.Body.String())
				}
				if refused && !strings.Contains(w.Body.String(), "Host header") {
					t.Errorf("refusal does not explain itself: %q", w.Body.String())
				}
			}
		}
	}
}
