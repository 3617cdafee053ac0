// Package metrics serves a worker's Prometheus metrics and health probes:
// /metrics (the Prometheus text format, through client_golang), /healthz
// (liveness) and /readyz (readiness), and turns the pipeline's per-stage
// counters into metrics.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/maeembed/maeembed/pipeline"
)

// Serve serves g at /metrics, healthy at /healthz (nil: 200 "ok", else 500
// with the error) and ready at /readyz (nil: 200 "ready", else 503 with the
// reason) on addr (":9090"; port 0 picks one).
func Serve(addr string, g prometheus.Gatherer, healthy, ready func() error) (*Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	probe := func(check func() error, fail int, ok string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := check(); err != nil {
				http.Error(w, err.Error(), fail)
				return
			}
			fmt.Fprintln(w, ok)
		}
	}
	mux.HandleFunc("/healthz", probe(healthy, http.StatusInternalServerError, "ok"))
	mux.HandleFunc("/readyz", probe(ready, http.StatusServiceUnavailable, "ready"))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	slog.Info("metrics and health endpoints", "addr", ln.Addr().String(), "paths", "/metrics /healthz /readyz")
	return &Server{srv: srv, addr: ln.Addr().String()}, nil
}

// Server is a running metrics and health server.
type Server struct {
	srv  *http.Server
	addr string
}

// Addr is the address it listens on.
func (s *Server) Addr() string { return s.addr }

// Stop shuts the server down, waiting at most 2 s for requests in progress.
func (s *Server) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// stages exports pipeline.StageStats.
type stages struct {
	stats                      func() []pipeline.StageStats
	items, errors, busy, queue *prometheus.Desc
}

// Stages is a collector of the per-stage counters of a run, labelled by
// stage: maeembed_stage_items_total, _errors_total, _busy_seconds_total
// (busy/items is the mean latency) and maeembed_stage_queue. stats may
// return nil (no run yet).
func Stages(stats func() []pipeline.StageStats) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"stage"}, nil)
	}
	return &stages{stats: stats,
		items:  d("maeembed_stage_items_total", "Items through each pipeline stage."),
		errors: d("maeembed_stage_errors_total", "Per-item failures per stage."),
		busy:   d("maeembed_stage_busy_seconds_total", "Time spent in each stage, summed over its workers (busy/items = mean latency)."),
		queue:  d("maeembed_stage_queue", "Items waiting in each stage's input queue."),
	}
}

func (s *stages) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.items
	ch <- s.errors
	ch <- s.busy
	ch <- s.queue
}

func (s *stages) Collect(ch chan<- prometheus.Metric) {
	for _, st := range s.stats() {
		ch <- prometheus.MustNewConstMetric(s.items, prometheus.CounterValue, float64(st.Items), st.Name)
		ch <- prometheus.MustNewConstMetric(s.errors, prometheus.CounterValue, float64(st.Errors), st.Name)
		ch <- prometheus.MustNewConstMetric(s.busy, prometheus.CounterValue, st.Busy.Seconds(), st.Name)
		ch <- prometheus.MustNewConstMetric(s.queue, prometheus.GaugeValue, float64(st.Queue), st.Name)
	}
}

// LatencyBuckets are seconds from 1 ms to ~2 min.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
