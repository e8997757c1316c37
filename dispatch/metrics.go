package dispatch

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the dispatcher's Prometheus collectors (namespace socksd).
// Labels are low-cardinality only: protocol, outcome, reply code,
// direction. Never a hostname, username or address.
type Metrics struct {
	Connections      *prometheus.CounterVec // protocol, outcome
	Active           prometheus.Gauge
	HandshakeSeconds *prometheus.HistogramVec // protocol
	UpstreamSeconds  *prometheus.HistogramVec // outcome (ok, fail)
	Replies          *prometheus.CounterVec   // protocol, code
	Bytes            *prometheus.CounterVec   // direction (up = client→Tor, down)
	AcceptErrors     prometheus.Counter
	// AppLookups counts client_app lookups by result: "found", or
	// "unknown" when the owning process could not be identified and the
	// stream fell back to the shared unknown-application identity.
	AppLookups *prometheus.CounterVec // result
}

// Connection outcomes (label values).
const (
	outcomeOK              = "ok"              // relayed or answered
	outcomeFailed          = "failed"          // answered with a failure reply
	outcomeRejected        = "rejected"        // refused by policy (reject_internal, safe_socks)
	outcomeHandshakeError  = "handshake_error" // malformed or unsupported request
	outcomeTimeout         = "handshake_timeout"
	outcomeOverLimit       = "over_limit"       // max_connections reached
	outcomeUnknownProtocol = "unknown_protocol" // first byte not SOCKS or HTTP
	outcomeWarningPage     = "http_warning"     // plain HTTP to the SOCKS port
	outcomeClosed          = "client_closed"    // client left during the handshake
)

// NewMetrics creates the collectors and registers them with reg (nil =
// unregistered, for tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns = "socksd"
	m := &Metrics{
		Connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "connections_total",
			Help: "Client connections by protocol and outcome.",
		}, []string{"protocol", "outcome"}),
		Active: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "active_connections",
			Help: "Client connections currently open.",
		}),
		HandshakeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "handshake_duration_seconds",
			Help:    "Time from accept to a complete client request.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30},
		}, []string{"protocol"}),
		UpstreamSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "upstream_connect_duration_seconds",
			Help:    "Time from the request to the upstream's (Tor's) answer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"outcome"}),
		Replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "replies_total",
			Help: "Replies sent to clients by protocol and SOCKS5 reply code (0x00 = success).",
		}, []string{"protocol", "code"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "relayed_bytes_total",
			Help: "Bytes relayed; direction up = client to Tor, down = Tor to client.",
		}, []string{"direction"}),
		AcceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "accept_errors_total",
			Help: "Accept failures (EMFILE, ENFILE, ...) that made a listener back off.",
		}),
		AppLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "client_app_lookups_total",
			Help: "Per-application isolation lookups by result (found, unknown = fell back to the unknown-application identity).",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Connections, m.Active, m.HandshakeSeconds, m.UpstreamSeconds, m.Replies, m.Bytes, m.AcceptErrors, m.AppLookups} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// codeLabels holds "0x00".."0xff", so counting a reply does not allocate.
var codeLabels = func() (l [256]string) {
	const hexdigits = "0123456789abcdef"
	for i := range l {
		l[i] = "0x" + string([]byte{hexdigits[i>>4], hexdigits[i&0xf]})
	}
	return l
}()

// codeLabel renders a reply code as "0x04"; 256 possible values at most.
func codeLabel(code byte) string { return codeLabels[code] }
