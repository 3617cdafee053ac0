package kafka

import (
	"math"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maeembed/maeembed/metrics"
)

// Histogram is a histogram with fixed buckets that also estimates
// quantiles (the benchmarks report p50/p99 without a Prometheus server);
// Source.Collector exports it.
type Histogram struct {
	mu     sync.Mutex
	bounds []float64 // upper bounds, ascending; +Inf is implicit
	counts []uint64  // per bucket, not cumulative; len(bounds)+1
	sum    float64
	n      uint64
}

// LatencyBuckets are seconds from 1 ms to ~2 min.
var LatencyBuckets = metrics.LatencyBuckets

// NewHistogram makes a histogram with the given ascending upper bounds.
func NewHistogram(bounds []float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.n++
	h.mu.Unlock()
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Quantile estimates the q-quantile by linear interpolation inside the
// bucket that holds it, as Prometheus' histogram_quantile does.
func (h *Histogram) Quantile(q float64) float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return math.NaN()
	}
	rank := q * float64(h.n)
	var cum float64
	for i, c := range h.counts {
		prev := cum
		cum += float64(c)
		if cum >= rank && c > 0 {
			lo := 0.0
			if i > 0 {
				lo = h.bounds[i-1]
			}
			if i == len(h.bounds) {
				return lo
			}
			return lo + (h.bounds[i]-lo)*(rank-prev)/float64(c)
		}
	}
	return h.bounds[len(h.bounds)-1]
}

// metric is the histogram as a Prometheus sample of d.
func (h *Histogram) metric(d *prometheus.Desc) prometheus.Metric {
	h.mu.Lock()
	defer h.mu.Unlock()
	buckets := make(map[float64]uint64, len(h.bounds))
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.n, h.sum, buckets)
}
