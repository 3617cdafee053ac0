package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	franz "github.com/twmb/franz-go/pkg/kgo"

	"github.com/maeembed/maeembed/internal/logtest"
)

// httpGet returns the status and body of a GET (0 when it fails).
func httpGet(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// An output or dead-letter topic the brokers do not have: the worker
// stays up, logs one error naming the topic and its flag, answers
// /readyz 503 with that reason, and neither drops nor commits the
// messages whose results wait; once the topic is created they are
// written and committed, and /readyz is 200 again.
func TestStreamMissingOutputTopic(t *testing.T) {
	for _, c := range []struct {
		flag, topic string
		bad         bool // the inputs are not images (they go to the DLQ)
	}{
		{"--output-topic", "embeddings-typo", false},
		{"--dlq-topic", "dlq-typo", true},
	} {
		t.Run(c.flag, func(t *testing.T) {
			cl, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(1, "images"))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			addr := cl.ListenAddrs()[0]
			imgs := fixtureImages(t)
			keys := manyKeys("wait", 4)
			if c.bad {
				p := producer(t, addr)
				for _, k := range keys {
					if err := p.ProduceSync(context.Background(), &franz.Record{Key: []byte(k), Value: []byte("not an image")}).FirstErr(); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				produceImages(t, producer(t, addr), keys, imgs, pickImage(imgs))
			}
			metrics := freeAddr(t)
			args := []string{"-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr, "--topic", "images", "--group", "missing",
				"--metrics-addr", metrics, "--commit-interval", "100ms", c.flag, c.topic}
			if c.bad {
				args = append(args, "-o", t.TempDir(), "--flush-interval", "100ms")
			}
			stop, logs := streamInProcess(t, args...)

			var body string
			waitFor(t, "/readyz 503 naming the topic", 30*time.Second, func() bool {
				code, b := httpGet(metrics, "/readyz")
				body = b
				return code == http.StatusServiceUnavailable && strings.Contains(b, c.topic)
			})
			if !strings.Contains(body, c.flag) || !strings.Contains(body, "does not exist") {
				t.Errorf("/readyz body %q: want the topic, %s and that it does not exist", body, c.flag)
			}
			// Several attempts, one error line.
			waitFor(t, "produce retries", 30*time.Second, func() bool {
				return scrape(t, metrics)["maeembed_kafka_produce_retries_total"] >= 3
			})
			if n := strings.Count(logs.String(), "does not exist on the brokers"); n != 1 {
				t.Errorf("%d log lines about the missing topic, want 1\n%s", n, logs.String())
			}
			if line := lineWith(logs.String(), "does not exist on the brokers"); !strings.Contains(line, "level=ERROR") ||
				!strings.Contains(line, c.topic) || !strings.Contains(line, c.flag) {
				t.Errorf("log line %q: want an error naming %s and %s", line, c.topic, c.flag)
			}
			for p, off := range committed(t, addr, "missing", "images", 1) {
				if off > 0 {
					t.Errorf("partition %d committed at %d while its results are not written", p, off)
				}
			}

			createTopic(t, addr, c.topic, 1, nil)
			got := consumeAll(t, addr, c.topic, len(keys), 60*time.Second)
			if len(got) != len(keys) {
				t.Errorf("%d messages on %s, want %d", len(got), c.topic, len(keys))
			}
			waitFor(t, "ready", 30*time.Second, func() bool { code, _ := httpGet(metrics, "/readyz"); return code == http.StatusOK })
			waitFor(t, "the offsets committed", 30*time.Second, func() bool {
				return committed(t, addr, "missing", "images", 1)[0] == int64(len(keys))
			})
			if code := stop(); code != 0 {
				t.Fatalf("exit %d\n%s", code, logs.String())
			}
		})
	}
}

// lineWith is the first line of s that holds sub ("" if none).
func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// A session timeout the brokers refuse (kfake: 6 s to 5 min, as Kafka's
// group.min/max.session.timeout.ms) ends the worker with exit 1 and an
// error naming --session-timeout and the allowed range, instead of a
// join retried for ever.
func TestStreamSessionTimeoutRefused(t *testing.T) {
	addr := broker(t, 0, 1)
	for _, st := range []string{"1s", "10m"} {
		t.Run(st, func(t *testing.T) {
			type result struct {
				code   int
				stderr string
			}
			done := make(chan result, 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				errb := &logtest.Buffer{}
				code := run(ctx, []string{"stream", "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr, "--topic", "images",
					"--group", "st-" + st, "--output-topic", "embeddings", "--session-timeout", st}, strings.NewReader(""), io.Discard, errb)
				done <- result{code, errb.String()}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(60 * time.Second):
				cancel()
				r = <-done
				t.Fatalf("still running a minute after a refused join\n%s", r.stderr)
			}
			last := lineWith(r.stderr, "maeembed stream:")
			if r.code != 1 || !strings.Contains(last, "--session-timeout "+st) || !strings.Contains(last, "6s to 5m0s") {
				t.Errorf("exit %d, error %q: want 1 naming --session-timeout %s and the range 6s to 5m0s\n%s", r.code, last, st, r.stderr)
			}
		})
	}
}
