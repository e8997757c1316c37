package torup

import "github.com/prometheus/client_golang/prometheus"

// metrics are torup's Prometheus collectors. Labels are closed sets chosen
// here; no hostname, username, address or key ever becomes a label.
type metrics struct {
	attached      *prometheus.CounterVec   // outcome
	attachLatency *prometheus.HistogramVec // circuit: existing | new
	// Children resolved once: WithLabelValues hashes and locks per call,
	// and these are on the attach path.
	outcomes            map[string]prometheus.Counter
	latNew, latExisting prometheus.Observer
	circBuilt           prometheus.Counter
	circFailed          prometheus.Counter
	circInUse           prometheus.Gauge
	circLaunched        prometheus.Counter
	ctlConnected        prometheus.Gauge
	ctlReconnects       prometheus.Counter
	ctlHung             prometheus.Counter
	ctlProbe            prometheus.Observer
	ctlProbeHist        prometheus.Histogram
	bootstrap           prometheus.Gauge
	timeouts            prometheus.Counter
	refused             prometheus.Counter

	// The warm pool (pool.go).
	poolSize     prometheus.Gauge
	poolTarget   prometheus.Gauge
	poolReqVec   *prometheus.CounterVec // result: hit | miss
	poolRequests [2]prometheus.Counter  // hit, miss
	poolBuilt    prometheus.Counter
	poolExpVec   *prometheus.CounterVec // reason: lifetime | excess | newnym
	poolExp      map[string]prometheus.Counter
}

// Outcomes of attach decisions (label "outcome" of
// socksd_tor_streams_attached_total).
const (
	outAttached   = "attached"    // ATTACHSTREAM to a socksd circuit: 250
	outOnion      = "onion"       // .onion handed to Tor with circuit 0
	outExit       = "exit"        // .exit handed to Tor with circuit 0
	outForeign    = "foreign"     // not socksd's stream: handed back with 0
	outHandback   = "handback"    // socksd's stream handed back after repeated failures
	outRetry      = "retry"       // re-attached after DETACHED or a 551/552
	outRejected   = "rejected"    // 551/552 from ATTACHSTREAM
	outNotWaiting = "not_waiting" // 555: the stream was not waiting for us
	outError      = "error"       // the control connection failed
	outTainted    = "tainted"     // a foreign stream appeared on a socksd circuit: circuit retired
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		attached: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "streams_attached_total",
			Help: "Attach decisions for Tor streams, by outcome.",
		}, []string{"outcome"}),
		attachLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "attach_latency_seconds",
			Help:    "Time from socksd reading STREAM NEW off the control connection to the answer of its ATTACHSTREAM; circuit=existing when the key's circuit was already built.",
			Buckets: []float64{.00005, .0001, .0002, .0003, .0005, .0007, .001, .0015, .002, .003, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"circuit"}),
		circBuilt: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "circuits_built_total",
			Help: "Circuits socksd built (EXTENDCIRCUIT 0) that reached BUILT.",
		}),
		circFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "circuits_failed_total",
			Help: "Circuits socksd asked for that failed before BUILT or could not be launched.",
		}),
		circLaunched: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "circuits_launched_total",
			Help: "EXTENDCIRCUIT 0 commands socksd sent.",
		}),
		circInUse: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "circuits_in_use",
			Help: "Built socksd circuits currently known (one or more per isolation key).",
		}),
		ctlConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "control_connected",
			Help: "1 while the Tor control connection is up and configured.",
		}),
		ctlReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "control_reconnects_total",
			Help: "Successful control connections after the first.",
		}),
		ctlHung: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "control_hung_total",
			Help: "Control connections closed because Tor stopped answering the liveness probe.",
		}),
		bootstrap: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "bootstrap_percent",
			Help: "Tor's bootstrap progress (STATUS_CLIENT BOOTSTRAP PROGRESS).",
		}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "stream_timeouts_total",
			Help: "Streams socksd closed for waiting longer than socks_timeout.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "socksd", Subsystem: "tor", Name: "fail_closed_total",
			Help: "Opens refused because the control connection was down.",
		}),
	}
	m.ctlProbeHist = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "socksd", Subsystem: "tor", Name: "control_probe_seconds",
		Help:    "Round trip of the liveness probe (GETINFO version) on an idle control connection: how busy Tor is.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	m.ctlProbe = m.ctlProbeHist
	m.poolSize = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "socksd", Subsystem: "tor", Name: "pool_circuits",
		Help: "Clean circuits ready in the warm pool (built, never used, no key yet).",
	})
	m.poolTarget = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "socksd", Subsystem: "tor", Name: "pool_target",
		Help: "Size the warm pool aims at, from the recent demand for new circuits.",
	})
	m.poolReqVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "socksd", Subsystem: "tor", Name: "pool_requests_total",
		Help: "Keys that needed a new circuit: result=hit took a pool circuit at once, miss built its own.",
	}, []string{"result"})
	m.poolRequests = [2]prometheus.Counter{m.poolReqVec.WithLabelValues("hit"), m.poolReqVec.WithLabelValues("miss")}
	m.poolBuilt = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "socksd", Subsystem: "tor", Name: "pool_circuits_built_total",
		Help: "Warm pool circuits that reached BUILT.",
	})
	m.poolExpVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "socksd", Subsystem: "tor", Name: "pool_circuits_expired_total",
		Help: "Pool circuits closed unused: reason=lifetime (unused for circuit_lifetime), excess (demand fell), newnym (a new identity emptied the pool).",
	}, []string{"reason"})
	m.poolExp = make(map[string]prometheus.Counter)
	for _, r := range []string{poolLifetime, poolExcess, poolNewnym} {
		m.poolExp[r] = m.poolExpVec.WithLabelValues(r)
	}
	m.outcomes = make(map[string]prometheus.Counter)
	for _, o := range []string{outAttached, outOnion, outExit, outForeign, outHandback, outRetry, outRejected, outNotWaiting, outError, outTainted} {
		m.outcomes[o] = m.attached.WithLabelValues(o)
	}
	m.latNew = m.attachLatency.WithLabelValues("new")
	m.latExisting = m.attachLatency.WithLabelValues("existing")
	if reg != nil {
		reg.MustRegister(m.attached, m.attachLatency, m.circBuilt, m.circFailed, m.circLaunched,
			m.circInUse, m.ctlConnected, m.ctlReconnects, m.ctlHung, m.bootstrap, m.timeouts, m.refused,
			m.ctlProbeHist, m.poolSize, m.poolTarget, m.poolReqVec, m.poolBuilt, m.poolExpVec)
	}
	return m
}

// outcome is the attach-decision counter for o.
func (m *metrics) outcome(o string) prometheus.Counter {
	if c := m.outcomes[o]; c != nil {
		return c
	}
	return m.attached.WithLabelValues(o)
}

// poolExpired is the pool expiry counter for reason.
func (m *metrics) poolExpired(reason string) prometheus.Counter {
	return m.poolExp[reason]
}
