package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/internal/testtls"
	"github.com/maeembed/maeembed/kafkaconn"
	srckafka "github.com/maeembed/maeembed/sources/kafka"
)

// tlsBroker starts a kfake broker with TLS and the topics images,
// embeddings and dlq, and returns its address and the path of a PEM file
// with its CA.
func tlsBroker(t *testing.T) (addr, caFile string) {
	t.Helper()
	cert, _, caFile := testtls.SelfSigned(t)
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(1, "images", "embeddings", "dlq"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0], caFile
}

// treeFiles lists the files below dir (hidden ones too), relative to it;
// nil for a missing dir.
func treeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// A worker whose producer or consumer fails to open after its model
// loaded, when its writers are open already, leaves its output as it
// was: no new file, visible or hidden (no part, no temporary, no lock),
// and no directory it made. The producer fails as when its TLS CA file
// is gone by then (a rotated secret); the consumer on a start offset it
// does not know. (The Parquet writers create their files at their first
// write, so this checks the outcome, not Run's aborts of its writers:
// it passes without them.)
func TestWorkerFailingAfterItsModelLeavesNothing(t *testing.T) {
	addr, caFile := tlsBroker(t)
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	var ca string // this worker's copy of the CA file
	for _, c := range []struct {
		name string
		set  func(*Config)
		open func() (Model, error)
		want string
	}{
		{"producer", func(c *Config) { c.OutputTopic, c.DLQTopic = "embeddings", "dlq" }, func() (Model, error) {
			if err := os.Remove(ca); err != nil {
				return Model{}, err
			}
			return openTiny()
		}, "--tls-ca"},
		{"source", func(c *Config) { c.OutputTopic, c.Consumer.StartOffset = "embeddings", "middle" }, openTiny, `start offset "middle"`},
	} {
		for _, existing := range []bool{false, true} {
			out := filepath.Join(t.TempDir(), "out")
			var before []string
			if existing {
				// An output with the part of an earlier worker.
				cfg := Config{
					Consumer: srckafka.Config{Brokers: []string{topicWithImages(t, 2, func(int) bool { return false })}, Topics: []string{"images"}, Group: "g",
						MaxInFlight: 64, CommitInterval: 50 * time.Millisecond},
					Output: out,
					Engine: engine.Config{BatchSize: 4, Workers: 1, BatchLatency: 20 * time.Millisecond, FlushInterval: 50 * time.Millisecond},
				}
				runUntilPublished(t, cfg, openTiny, 2)
				before = treeFiles(t, out)
			}
			ca = filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(ca, pem, 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := Config{
				Consumer: srckafka.Config{Brokers: []string{addr}, Topics: []string{"images"}, Group: "g", MaxInFlight: 64,
					Security: kafkaconn.Security{TLS: true, CAFile: ca}},
				Output: out,
				Engine: engine.Config{BatchSize: 4, Workers: 1},
			}
			c.set(&cfg)
			stop := engine.OnSignals(context.Background(), time.Second)
			_, err := Run(stop, cfg, Loader{Open: c.open})
			stop.Release()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s, existing %v: err %v, want %q", c.name, existing, err, c.want)
			}
			if got := treeFiles(t, out); !slices.Equal(got, before) {
				t.Errorf("%s, existing %v: files %q after the failed worker, want %q", c.name, existing, got, before)
			}
			if _, err := os.Stat(out); !existing && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: the worker left the output directory it made (%v)", c.name, err)
			}
		}
	}
}
