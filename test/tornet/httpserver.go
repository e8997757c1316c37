package tornet

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HelloBody is what GET / returns.
const HelloBody = "hello from tornet\n"

// HTTPHit is one request the test HTTP server handled.
type HTTPHit struct {
	RemoteIP string // the connection's source address (127.0.0.1 for every tor, see sockowner.go)
	// Via is the tor that made the connection: "exit0".."exitN", "hs", or
	// "" (not one of ours). Only /via and /page.html look it up: it costs
	// a scan of /proc (sockowner.go), and a load test of the other paths
	// must measure socksd and Tor, not this server.
	Via  string
	Host string
	Path string
}

// The test HTTP server: the exits' loopback target and the onion service's
// backend. Routes:
//
//	GET /            "hello from tornet\n" (text/plain)
//	GET /page.html   an HTML page: <h1 id="hello">hello from tornet</h1><p id="via">VIA</p>
//	GET /whoami      the connection's source IP, no newline
//	GET /via         which of the network's tors made the connection ("exit1", "hs"), or "-"
//	GET /headers     the request headers, one "Name: value" per line, sorted
//	GET /bytes?n=N   N bytes (N <= 16 MiB) of a repeating 0..255 pattern
type httpServer struct {
	srv  *http.Server
	addr string
	via  func(remote, local string) string
	mu   sync.Mutex
	hits []HTTPHit
}

func startHTTP(addr string, via func(remote, local string) string) (*httpServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &httpServer{via: via, addr: ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, HelloBody)
	})
	mux.HandleFunc("GET /page.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><title>tornet</title></head>"+
			"<body style=\"background:#7d4698;color:#fff;font:32px sans-serif\">"+
			"<h1 id=\"hello\">hello from tornet</h1><p id=\"via\">%s</p></body></html>\n", viaOf(r))
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, remoteIP(r))
	})
	mux.HandleFunc("GET /via", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, viaOf(r))
	})
	mux.HandleFunc("GET /headers", func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		for k, vs := range r.Header {
			for _, v := range vs {
				lines = append(lines, k+": "+v)
			}
		}
		sort.Strings(lines)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, strings.Join(lines, "\n"))
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 || n > 16<<20 {
			http.Error(w, "n must be 0..16777216", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(Pattern(n))
	})
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Look the peer up while the connection is open: its socket
			// is gone from /proc once the client closes.
			var via string
			if r.URL.Path == "/via" || r.URL.Path == "/page.html" {
				local := r.Context().Value(http.LocalAddrContextKey).(net.Addr).String()
				via = s.via(r.RemoteAddr, local)
			}
			s.mu.Lock()
			s.hits = append(s.hits, HTTPHit{RemoteIP: remoteIP(r), Via: via, Host: r.Host, Path: r.URL.Path})
			s.mu.Unlock()
			mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), viaKey{}, via)))
		}),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go s.srv.Serve(ln)
	return s, nil
}

type viaKey struct{}

// viaOf is the tor that made r's connection, "-" for none of ours.
func viaOf(r *http.Request) string {
	if v, _ := r.Context().Value(viaKey{}).(string); v != "" {
		return v
	}
	return "-"
}

// Pattern returns the n bytes GET /bytes?n=N serves.
func Pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *httpServer) close() { s.srv.Close() }

func (s *httpServer) log() []HTTPHit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]HTTPHit(nil), s.hits...)
}
