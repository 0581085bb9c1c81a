package handlers

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the service's Prometheus metrics, served at /metrics.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// metrics returns the server's metrics, made on first use: the API's /metrics and the
// separate listener of MetricsHandler serve the same ones.
func (s *Server) metrics() *metrics {
	s.metricsOnce.Do(func() { s.metricSet = s.newMetrics() })
	return s.metricSet
}

// MetricsHandler serves the Prometheus metrics without authentication, for a listener of
// their own (--metrics-addr): GET /metrics and nothing else, to a request whose Host is one of
// hosts (any when empty) or the IP address it came in on (DNS rebinding as on the API). The API's GET /metrics serves the same
// metrics to a reader.
func (s *Server) MetricsHandler(hosts []string) http.Handler {
	h := s.metrics().handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !hostAllowed(hosts, r.Host) && !hostIsLocalAddr(r):
			s.problem(w, r, http.StatusMisdirectedRequest, "Host "+quoteHost(r.Host)+" is not one this server answers to", "Host")
		case r.URL.Path != "/metrics":
			s.problem(w, r, http.StatusNotFound, "this listener serves only GET /metrics; the API is on --addr", "")
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET")
			s.problem(w, r, http.StatusMethodNotAllowed, r.Method+" /metrics is not supported; use GET", "")
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// newMetrics registers the request metrics and the ledger's gauges, which are read from the
// log, the projections and the sinks at each scrape.
func (s *Server) newMetrics() *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "memledger_http_requests_total", Help: "HTTP requests by route, method and status.",
	}, []string{"route", "method", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "memledger_http_request_duration_seconds", Help: "HTTP request latency by route.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"route"})
	m.registry.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&ledgerCollector{s: s})
	return m
}

// observe wraps h to count and time its requests under route.
func (m *metrics) observe(route string, w http.ResponseWriter, r *http.Request, h http.Handler) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	h.ServeHTTP(rec, r)
	m.requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Inc()
	m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (for the watch stream's flushes).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ledgerCollector reads the ledger's figures at each scrape.
type ledgerCollector struct{ s *Server }

var (
	descLastSeq    = prometheus.NewDesc("memledger_log_last_seq", "Position of the last event in the log.", nil, nil)
	descCheckpoint = prometheus.NewDesc("memledger_projection_checkpoint", "Position of the last event a projection applied.", []string{"projection"}, nil)
	descLag        = prometheus.NewDesc("memledger_projection_lag", "Events in the log a projection has not applied yet.", []string{"projection"}, nil)
	descMemories   = prometheus.NewDesc("memledger_memories", "Memories by status.", []string{"status"}, nil)
	descDelivered  = prometheus.NewDesc("memledger_alerts_delivered_total", "Alerts a sink delivered since the process started.", []string{"sink"}, nil)
	descFailures   = prometheus.NewDesc("memledger_alert_delivery_failures", "Alerts a sink recorded it gave up on.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLastSeq, descCheckpoint, descLag, descMemories, descDelivered, descFailures} {
		ch <- d
	}
}

// Collect implements prometheus.Collector; a figure that cannot be read is left out.
func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	last, lastErr := c.s.Store.LastSeq(ctx)
	if lastErr == nil {
		ch <- prometheus.MustNewConstMetric(descLastSeq, prometheus.GaugeValue, float64(last))
	}
	if cps, err := c.s.DB.Checkpoints(); err == nil {
		for name, cp := range cps {
			ch <- prometheus.MustNewConstMetric(descCheckpoint, prometheus.GaugeValue, float64(cp), name)
			if lastErr == nil {
				ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(last-min(cp, last)), name)
			}
		}
	}
	if counts, err := c.s.DB.MemoryCounts(); err == nil {
		for status, n := range counts.ByStatus {
			ch <- prometheus.MustNewConstMetric(descMemories, prometheus.GaugeValue, float64(n), status)
		}
	}
	for _, sink := range c.s.Sinks {
		ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(sink.Status().Delivered), sink.Sink.Name())
	}
	if n, _, err := c.s.DB.DeliveryFailures(0); err == nil {
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.GaugeValue, float64(n))
	}
	c.s.collectSubscriptions(ctx, ch)
}
