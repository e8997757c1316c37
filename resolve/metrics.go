package resolve

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bridge's collectors: namespace socksd, subsystem dns.
// Labels are low-cardinality enums only — never a name or an address.
type metrics struct {
	queries  *prometheus.CounterVec   // qtype, result
	answers  *prometheus.CounterVec   // source: cache | new | tor
	duration *prometheus.HistogramVec // source
	mappings *prometheus.GaugeVec     // family
	capacity *prometheus.GaugeVec     // family
	reclaims *prometheus.CounterVec   // family
	full     *prometheus.CounterVec   // family
	expired  *prometheus.CounterVec   // family
	torCalls *prometheus.CounterVec   // call: map | unmap | resolve; result: ok | error
	repushes prometheus.Counter
	saves    *prometheus.CounterVec // result

	tcpAcceptErrors prometheus.Counter
	tcpOverLimit    prometheus.Counter

	hot hotMetrics
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "socksd", "dns"
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "queries_total",
			Help: "DNS queries answered, by query type (A, AAAA, PTR, ANY, other) and result (noerror, nodata, nxdomain, formerr, notimp, refused, servfail).",
		}, []string{"qtype", "result"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "answers_total",
			Help: "Positive answers by source: cache (existing mapping), new (new mapping), tor (resolved through Tor).",
		}, []string{"source"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "query_duration_seconds",
			Help:    "Time to answer a query, by source of the answer (cache, new, tor, local).",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1, 5},
		}, []string{"source"}),
		mappings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "mappings",
			Help: "Live virtual address mappings, by family.",
		}, []string{"family"}),
		capacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "pool_capacity",
			Help: "Usable virtual addresses, by family (pool size capped by the mapping limit).",
		}, []string{"family"}),
		reclaims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "reclaims_total",
			Help: "Least recently used mappings reclaimed because the pool was full.",
		}, []string{"family"}),
		full: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "pool_exhausted_total",
			Help: "Queries answered SERVFAIL because every virtual address of the family was in use (pinned by a live stream or answered within the TTL).",
		}, []string{"family"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "expired_total",
			Help: "Mappings removed after mapping_idle without use.",
		}, []string{"family"}),
		torCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "tor_calls_total",
			Help: "Calls to Tor: map (MAPADDRESS v=name), unmap (MAPADDRESS v=v), resolve; by result.",
		}, []string{"call", "result"}),
		repushes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "tor_repushes_total",
			Help: "Times every mapping was pushed to Tor again (after a control-port reconnect).",
		}),
		saves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "state_saves_total",
			Help: "Mapping table writes to state_dir, by result.",
		}, []string{"result"}),
		tcpAcceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "tcp_accept_errors_total",
			Help: "Failed accepts on the DNS-over-TCP listeners (EMFILE: out of file descriptors); each one backs off up to 1 s.",
		}),
		tcpOverLimit: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "tcp_over_limit_total",
			Help: "DNS-over-TCP connections closed at once because max_tcp_connections were live.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.queries, m.answers, m.duration, m.mappings, m.capacity,
			m.reclaims, m.full, m.expired, m.torCalls, m.repushes, m.saves, m.tcpAcceptErrors, m.tcpOverLimit} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Label values the hot path uses, in a fixed order: the children for them
// are looked up once and kept (WithLabelValues hashes the values and takes
// the vector's lock on every call — a measurable share of a table hit).
var (
	qtypeLabels  = [...]string{"A", "AAAA", "PTR", "ANY", "other", "none"}
	resultLabels = [...]string{"noerror", "nodata", "nxdomain", "formerr", "notimp", "refused", "servfail", "badvers"}
	sourceLabels = [...]string{"cache", "new", "tor", "local"}
)

// hotMetrics caches children of the per-query vectors, filled lazily so
// only series that happened are exported (as with WithLabelValues).
type hotMetrics struct {
	queries  [len(qtypeLabels)][len(resultLabels)]atomic.Pointer[prometheus.Counter]
	answers  [len(sourceLabels)]atomic.Pointer[prometheus.Counter]
	duration [len(sourceLabels)]atomic.Pointer[prometheus.Observer]
}

func labelIndex(labels []string, v string) int {
	for i, l := range labels {
		if l == v {
			return i
		}
	}
	return -1
}

func cached[T any](p *atomic.Pointer[T], newChild func() T) T {
	if c := p.Load(); c != nil {
		return *c
	}
	c := newChild()
	p.Store(&c) // a race stores the same child twice: harmless
	return c
}

// query is queries.WithLabelValues(qtype, result), cached.
func (m *metrics) query(qtype, result string) prometheus.Counter {
	i, j := labelIndex(qtypeLabels[:], qtype), labelIndex(resultLabels[:], result)
	if i < 0 || j < 0 {
		return m.queries.WithLabelValues(qtype, result)
	}
	return cached(&m.hot.queries[i][j], func() prometheus.Counter { return m.queries.WithLabelValues(qtype, result) })
}

// answer is answers.WithLabelValues(source), cached.
func (m *metrics) answer(source string) prometheus.Counter {
	i := labelIndex(sourceLabels[:], source)
	if i < 0 {
		return m.answers.WithLabelValues(source)
	}
	return cached(&m.hot.answers[i], func() prometheus.Counter { return m.answers.WithLabelValues(source) })
}

// took is duration.WithLabelValues(source), cached.
func (m *metrics) took(source string) prometheus.Observer {
	i := labelIndex(sourceLabels[:], source)
	if i < 0 {
		return m.duration.WithLabelValues(source)
	}
	return cached(&m.hot.duration[i], func() prometheus.Observer { return m.duration.WithLabelValues(source) })
}
