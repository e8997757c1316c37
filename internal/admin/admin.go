// Package admin serves socksd's status page, health check and new-identity
// endpoint on the metrics listener. It
// knows nothing of Tor or the dispatcher: cmd/socksd passes functions
// that take snapshots and act.
package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Status is a snapshot of the daemon for the status page and GET /status.
// Nothing in it names a destination or a username: identities are hashed
// key strings.
//
// The JSON keys are an interface (README "Status JSON"): lower-case
// snake_case, stable across versions. A new field gets a tag of that form
// (TestStatusJSONKeys pins the whole set); renaming or removing a key is a
// breaking change.
type Status struct {
	Version    string         `json:"version"`
	Started    time.Time      `json:"started"` // RFC 3339
	Tor        TorStatus      `json:"tor"`
	Listeners  []Listener     `json:"listeners"`
	Streams    map[string]int `json:"streams"`    // live streams by client protocol
	Identities []Identity     `json:"identities"` // isolation identities with live streams
	DNS        *DNSStatus     `json:"dns"`        // null: the DNS bridge is off
	Replies    []ReplyCount   `json:"replies"`    // replies sent since start, by protocol and code
	Recent     []RecentError  `json:"recent"`     // the latest failures, newest first
}

// TorStatus is the state of socksd's connection to Tor.
type TorStatus struct {
	Mode       string `json:"mode"`       // "control port", "managed tor", "SocksPort only (no control port)"
	Control    string `json:"control"`    // control port address, "" without one
	SOCKS      string `json:"socks"`      // SocksPort in use
	Connected  bool   `json:"connected"`  // control connection up (always false without one)
	Bootstrap  int    `json:"bootstrap"`  // percent; -1 unknown (no control port)
	Reconnects int    `json:"reconnects"` // control connections re-established since start
	LastError  string `json:"last_error"` // why the control connection last failed, "" if never
}

// Listener is one SOCKS listener.
type Listener struct {
	Config string `json:"config"` // as configured
	Addr   string `json:"addr"`   // bound address
}

// Identity is one isolation identity with live streams.
type Identity struct {
	Key      string   `json:"key"`      // isolation.Key.String(): a hash, never a credential
	Streams  int      `json:"streams"`  // live streams
	Circuits []string `json:"circuits"` // circuit IDs socksd built for it
}

// DNSStatus is the DNS bridge's table.
type DNSStatus struct {
	Listen   []string `json:"listen"`
	Mappings int      `json:"mappings"`
	Capacity int      `json:"capacity"`
	// PoolExhausted counts queries answered SERVFAIL since start because
	// every virtual address was in use.
	PoolExhausted int `json:"pool_exhausted"`
}

// ReplyCount is how often a reply code was sent.
type ReplyCount struct {
	Protocol string `json:"protocol"`
	Code     string `json:"code"` // "0x04"
	Count    int    `json:"count"`
}

// RecentError is one failed request (no destination).
type RecentError struct {
	Time     time.Time `json:"time"`
	Protocol string    `json:"protocol"`
	Code     string    `json:"code"` // e.g. "0x04 host unreachable"
}

// Handler serves the admin endpoints. Nil functions disable what needs
// them (the endpoint answers 503).
type Handler struct {
	// Status returns the snapshot for GET / and GET /status.
	Status func() Status
	// Health reports whether Tor is usable now, with a reason when not.
	Health func(ctx context.Context) (ok bool, reason string)
	// NewIdentity renews every identity (Tor's SIGNAL NEWNYM plus a new
	// isolation epoch).
	NewIdentity func(ctx context.Context) error
	// NewUserIdentity renews the identity of one SOCKS username.
	NewUserIdentity func(username string) error
	// NewAppIdentity renews the identity of one client application
	// (absolute executable path, as client_app isolation sees it).
	NewAppIdentity func(exe string) error
	Log            *zap.Logger
}

// Register adds the endpoints to mux. /metrics is the caller's.
func (h *Handler) Register(mux *http.ServeMux) {
	if h.Log == nil {
		h.Log = zap.NewNop()
	}
	mux.HandleFunc("GET /{$}", h.page)
	mux.HandleFunc("GET /status", h.statusJSON)
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("POST /newnym", h.newnym)
	mux.HandleFunc("GET /newnym", h.newnymHelp)
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if h.Health == nil {
		http.Error(w, "unhealthy: no health check wired", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	ok, reason := h.Health(ctx)
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "unhealthy: %s\n", reason)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (h *Handler) statusJSON(w http.ResponseWriter, r *http.Request) {
	if h.Status == nil {
		http.Error(w, "no status wired", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(h.Status())
}

// NewnymHelp is the usage text of the new-identity endpoint.
const NewnymHelp = `POST /newnym renews socksd's Tor identity. Loopback clients only.

  curl -X POST http://127.0.0.1:9352/newnym
      every identity: Tor's SIGNAL NEWNYM, and no stream opened from now on
      shares a circuit with a stream opened before.

  curl -X POST 'http://127.0.0.1:9352/newnym?user=alice'
      one identity: streams whose SOCKS username is "alice" (SOCKS4 userid,
      SOCKS5 username, or Proxy-Authorization user) get new circuits from now
      on; every other identity keeps its circuits. Needs socks_auth isolation
      on the listener (the default). URL-encode the name (curl --data-urlencode
      with -G, or %XX escapes). No Tor-wide NEWNYM is sent.

  curl -X POST 'http://127.0.0.1:9352/newnym?app=/usr/bin/curl'
      one application: streams from that executable (the target of
      /proc/PID/exe, e.g. /usr/lib/firefox-esr/firefox-esr; find it with
      readlink /proc/PID/exe, since wrappers and symlinks differ) get new
      circuits; needs client_app = true on the listener. No Tor-wide NEWNYM
      is sent.

The same as the first form: kill -USR1 $(pidof socksd)
`

func (h *Handler) newnymHelp(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Allow", "POST")
	w.WriteHeader(http.StatusMethodNotAllowed)
	io.WriteString(w, NewnymHelp)
}

func (h *Handler) newnym(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if why := refuseAdmin(r); why != "" {
		h.Log.Warn("refused POST /newnym", zap.String("remote", r.RemoteAddr), zap.String("why", why))
		http.Error(w, "forbidden: "+why, http.StatusForbidden)
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, "bad query: "+err.Error(), http.StatusBadRequest)
		return
	}
	for k := range q {
		if k != "user" && k != "app" {
			http.Error(w, fmt.Sprintf("unknown parameter %q\n\n", k)+NewnymHelp, http.StatusBadRequest)
			return
		}
	}
	if len(q) > 1 {
		http.Error(w, "give user=NAME or app=PATH, not both", http.StatusBadRequest)
		return
	}
	if apps, ok := q["app"]; ok {
		if len(apps) != 1 || !strings.HasPrefix(apps[0], "/") {
			http.Error(w, "want exactly one app=/absolute/path/of/the/executable", http.StatusBadRequest)
			return
		}
		if h.NewAppIdentity == nil {
			http.Error(w, "per-application renewal is not available", http.StatusServiceUnavailable)
			return
		}
		if err := h.NewAppIdentity(apps[0]); err != nil {
			http.Error(w, "new identity failed: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		h.Log.Info("new identity for one client application (POST /newnym?app=)")
		fmt.Fprintln(w, "ok: new circuits for this application's new streams")
		return
	}
	if users, ok := q["user"]; ok {
		if len(users) != 1 || users[0] == "" {
			http.Error(w, "want exactly one non-empty user=NAME", http.StatusBadRequest)
			return
		}
		if h.NewUserIdentity == nil {
			http.Error(w, "per-user renewal is not available", http.StatusServiceUnavailable)
			return
		}
		if err := h.NewUserIdentity(users[0]); err != nil {
			http.Error(w, "new identity failed: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		// The username stays out of the log (privacy rules).
		h.Log.Info("new identity for one SOCKS username (POST /newnym?user=)")
		fmt.Fprintln(w, "ok: new circuits for this username's new streams")
		return
	}
	if h.NewIdentity == nil {
		http.Error(w, "new identity is not available", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := h.NewIdentity(ctx); err != nil {
		http.Error(w, "new identity failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok: new identity; new streams use new circuits")
}

// refuseAdmin says why a state-changing request is refused, "" if it is
// allowed: only loopback peers (the metrics listener may be bound wider
// than loopback), and no cross-site requests: a web page the user visits
// can make the browser POST to 127.0.0.1 (no CORS preflight for a simple
// POST) but then sends its own Origin; a DNS-rebinding page sends its own
// Host name.
func refuseAdmin(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return "only loopback clients may renew identities"
	}
	if !loopbackHost(r.Host) {
		return "Host header is not a loopback address"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return "cross-origin request"
		}
	}
	return ""
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
