package metrics

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maeembed/maeembed/pipeline"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The probes follow their checks and /metrics carries the stage counters
// in the Prometheus text format.
func TestServeEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Stages(func() []pipeline.StageStats {
		return []pipeline.StageStats{{Name: "model", Items: 13, Busy: 2 * time.Second, Queue: 1}}
	}))
	var loading atomic.Bool
	loading.Store(true)
	srv, err := Serve("127.0.0.1:0", reg, func() error { return nil }, func() error {
		if loading.Load() {
			return errors.New("model loading")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	addr := srv.Addr()
	if code, body := get(t, "http://"+addr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "model loading") {
		t.Errorf("/readyz while loading: %d %q", code, body)
	}
	loading.Store(false)
	if code, _ := get(t, "http://"+addr+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d", code)
	}
	if code, _ := get(t, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	_, body := get(t, "http://"+addr+"/metrics")
	for _, want := range []string{`maeembed_stage_items_total{stage="model"} 13`, `maeembed_stage_busy_seconds_total{stage="model"} 2`, "# TYPE maeembed_stage_queue gauge"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
