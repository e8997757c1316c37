package dispatch

import (
	"sync/atomic"

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

	cache children
}

// Connection outcomes (label values).
const (
	outcomeOK              = "ok"              // relayed or answered
	outcomeFailed          = "failed"          // answered with a failure reply
	outcomeRejected        = "rejected"        // refused by policy (reject_internal, safe_socks)
	outcomeHandshakeError  = "handshake_error" // malformed or unsupported request
	outcomeTimeout         = "handshake_timeout"
	outcomeOverLimit       = "over_limit"        // max_connections reached
	outcomeUnknownProtocol = "unknown_protocol"  // first byte not SOCKS or HTTP
	outcomeWarningPage     = "http_warning"      // plain HTTP to the SOCKS port
	outcomeForeignHost     = "http_foreign_host" // plain HTTP with a Host not naming this machine: closed, no answer
	outcomeOptions         = "http_options"      // HTTP OPTIONS answered, no CONNECT followed
	outcomeClosed          = "client_closed"     // client left during the handshake
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

// protoLabels are the values of the protocol label (Protocol.String and
// the sniffed "http" / "unknown").
var protoLabels = [...]string{"unknown", "socks4", "socks4a", "socks5", "http", "http-connect"}

// outcomeLabels are the values of the outcome label.
var outcomeLabels = [...]string{outcomeOK, outcomeFailed, outcomeRejected, outcomeHandshakeError, outcomeTimeout,
	outcomeOverLimit, outcomeUnknownProtocol, outcomeWarningPage, outcomeForeignHost, outcomeOptions, outcomeClosed}

func labelIndex(labels []string, v string) int {
	for i, l := range labels {
		if l == v {
			return i
		}
	}
	return -1
}

// children caches the label children counted for every connection
// (WithLabelValues hashes the values and looks them up in the vector each
// time). A child is created on first use, as WithLabelValues would, so no
// series appears before its first event.
type children struct {
	connections [len(protoLabels)][len(outcomeLabels)]atomic.Pointer[prometheus.Counter]
	replies     [len(protoLabels)][256]atomic.Pointer[prometheus.Counter]
	handshake   [len(protoLabels)]atomic.Pointer[prometheus.Observer]
}

// child returns *slot, filling it with make() the first time. Two
// goroutines may both call make: WithLabelValues returns the same child.
func child[T any](slot *atomic.Pointer[T], make func() T) T {
	if p := slot.Load(); p != nil {
		return *p
	}
	v := make()
	slot.Store(&v)
	return v
}

// connection is Connections.WithLabelValues(proto, outcome).
func (m *Metrics) connection(proto, outcome string) prometheus.Counter {
	p, o := labelIndex(protoLabels[:], proto), labelIndex(outcomeLabels[:], outcome)
	if p < 0 || o < 0 {
		return m.Connections.WithLabelValues(proto, outcome)
	}
	return child(&m.cache.connections[p][o], func() prometheus.Counter { return m.Connections.WithLabelValues(proto, outcome) })
}

// reply is Replies.WithLabelValues(proto, codeLabel(code)).
func (m *Metrics) reply(proto string, code byte) prometheus.Counter {
	p := labelIndex(protoLabels[:], proto)
	if p < 0 {
		return m.Replies.WithLabelValues(proto, codeLabel(code))
	}
	return child(&m.cache.replies[p][code], func() prometheus.Counter { return m.Replies.WithLabelValues(proto, codeLabel(code)) })
}

// handshake is HandshakeSeconds.WithLabelValues(proto).
func (m *Metrics) handshake(proto string) prometheus.Observer {
	p := labelIndex(protoLabels[:], proto)
	if p < 0 {
		return m.HandshakeSeconds.WithLabelValues(proto)
	}
	return child(&m.cache.handshake[p], func() prometheus.Observer { return m.HandshakeSeconds.WithLabelValues(proto) })
}
