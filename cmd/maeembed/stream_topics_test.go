package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	franz "github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

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

// An output or dead-letter topic the brokers do not have (an output
// topic not created yet, a dead-letter topic deleted while the worker
// runs): the worker stays up, logs one error naming the topic and its
// flag, answers /readyz 503 with that reason, and neither drops nor
// commits the messages whose results wait; once the topic is created
// they are written and committed, and /readyz is 200 again. (A
// dead-letter topic missing at start is refused:
// TestStreamDLQTopicMissingAtStart.)
func TestStreamMissingOutputTopic(t *testing.T) {
	for _, c := range []struct {
		flag, topic string
		bad         bool // the inputs are not images (they go to the DLQ)
	}{
		{"--output-topic", "embeddings-typo", false},
		{"--dlq-topic", "dlq-deleted", true},
	} {
		t.Run(c.flag, func(t *testing.T) {
			seed := []string{"images"}
			if c.bad {
				seed = append(seed, c.topic) // there at start, deleted below
			}
			cl, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(1, seed...))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			addr := cl.ListenAddrs()[0]
			imgs := fixtureImages(t)
			keys := manyKeys("wait", 4)
			if !c.bad {
				produceImages(t, producer(t, addr), keys, imgs, pickImage(imgs))
			}
			metrics := freeAddr(t)
			args := []string{"-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr, "--topic", "images", "--group", "missing",
				"--metrics-addr", metrics, "--commit-interval", "100ms", c.flag, c.topic}
			if c.bad {
				args = append(args, "-o", t.TempDir(), "--flush-interval", "100ms")
			}
			stop, logs := streamInProcess(t, args...)
			if c.bad {
				waitFor(t, "ready", 30*time.Second, func() bool { code, _ := httpGet(metrics, "/readyz"); return code == http.StatusOK })
				deleteTopic(t, addr, c.topic)
				p := producer(t, addr)
				for _, k := range keys {
					if err := p.ProduceSync(context.Background(), &franz.Record{Key: []byte(k), Value: []byte("not an image")}).FirstErr(); err != nil {
						t.Fatal(err)
					}
				}
			}

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

// deleteTopic deletes a topic through the admin API.
func deleteTopic(t *testing.T, addr, topic string) {
	t.Helper()
	cl := adminClient(t, addr)
	defer cl.Close()
	req := kmsg.NewPtrDeleteTopicsRequest()
	rt := kmsg.NewDeleteTopicsRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics, req.TopicNames = append(req.Topics, rt), []string{topic}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if ec := resp.Topics[0].ErrorCode; ec != 0 {
		t.Fatalf("delete topic %s: error code %d", topic, ec)
	}
}

// topicExists asks the brokers whether they have topic, without asking
// them to create it.
func topicExists(t *testing.T, addr, topic string) bool {
	t.Helper()
	cl := adminClient(t, addr)
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics, req.AllowAutoTopicCreation = append(req.Topics, rt), false
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0
}

// streamExit runs `maeembed stream` to its end (a minute at most) and
// returns its exit code, its stderr and how long it took.
func streamExit(t *testing.T, args ...string) (int, string, time.Duration) {
	t.Helper()
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	go func() {
		errb := &logtest.Buffer{}
		code := run(ctx, append([]string{"stream"}, args...), strings.NewReader(""), io.Discard, errb)
		done <- result{code, errb.String()}
	}()
	select {
	case r := <-done:
		return r.code, r.stderr, time.Since(start)
	case <-time.After(time.Minute):
		cancel()
		r := <-done
		t.Fatalf("still running after a minute\n%s", r.stderr)
		return 0, "", 0
	}
}

// A dead-letter topic the brokers do not have at start (a typo in
// --dlq-topic) ends the worker at once with exit 1 and an error naming
// the topic and the flag, before it loads its model (here a model that
// does not exist) or consumes anything, rather than when the first bad
// input arrives; and the check does not create the topic on brokers
// that create topics on demand.
func TestStreamDLQTopicMissingAtStart(t *testing.T) {
	cl, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(1, "images", "embeddings"), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	addr := cl.ListenAddrs()[0]
	out := filepath.Join(t.TempDir(), "out")
	code, stderr, _ := streamExit(t, "-m", filepath.Join(t.TempDir(), "no-model"), "--brokers", addr, "--topic", "images", "--group", "dlq-typo",
		"--output-topic", "embeddings", "--dlq-topic", "dlq-typo")
	last := lineWith(stderr, "maeembed stream:")
	if code != 1 || !strings.Contains(last, `topic "dlq-typo" (--dlq-topic) does not exist on the brokers`) {
		t.Errorf("exit %d, error %q: want 1 naming the topic dlq-typo and --dlq-topic\n%s", code, last, stderr)
	}
	if got := committed(t, addr, "dlq-typo", "images", 1); got[0] > 0 {
		t.Errorf("committed %v: consumed before the check", got)
	}
	if topicExists(t, addr, "dlq-typo") {
		t.Error("the check created the topic dlq-typo")
	}
	// With an output directory too: its checks come first, the refusal
	// leaves no directory behind.
	code, stderr, _ = streamExit(t, "-m", filepath.Join(tiny, "hf"), "--brokers", addr, "--topic", "images", "--group", "dlq-typo",
		"-o", out, "--dlq-topic", "dlq-typo")
	if last := lineWith(stderr, "maeembed stream:"); code != 1 || !strings.Contains(last, "--dlq-topic") {
		t.Errorf("exit %d, error %q: want 1 naming --dlq-topic\n%s", code, last, stderr)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind by a refused start (%v)", out, err)
	}
}

// Credentials the brokers refuse (a wrong password; a mechanism the user
// has no credentials for) end the worker at once with exit 1 and an
// error that says authentication failed, naming the broker and the
// mechanism, never the password; before the model loads (here a model
// that does not exist), and never as "brokers unreachable".
func TestStreamSASLRefused(t *testing.T) {
	cl, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(1, "images", "embeddings"), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "worker", "right-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	addr := cl.ListenAddrs()[0]
	for _, c := range []struct{ mech, password string }{
		{"scram-sha-256", "wrong-secret"},
		{"plain", "right-secret"},
	} {
		t.Run(c.mech, func(t *testing.T) {
			t.Setenv("MAEEMBED_SASL_PASSWORD", c.password)
			code, stderr, took := streamExit(t, "-m", filepath.Join(t.TempDir(), "no-model"), "--brokers", addr, "--topic", "images",
				"--output-topic", "embeddings", "--sasl-mechanism", c.mech, "--sasl-username", "worker")
			last := lineWith(stderr, "maeembed stream:")
			want := "authentication failed at broker " + addr + " with SASL mechanism " + strings.ToUpper(c.mech) + ` as user "worker"`
			if code != 1 || !strings.Contains(last, want) {
				t.Errorf("exit %d after %v, error %q: want 1 and %q\n%s", code, took, last, want, stderr)
			}
			if strings.Contains(stderr, "secret") || strings.Contains(stderr, "unreachable") {
				t.Errorf("stderr shows the password or calls it an outage:\n%s", stderr)
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
// join retried for ever; its output directory is left without an empty
// errors/ (made only with the first error row).
func TestStreamSessionTimeoutRefused(t *testing.T) {
	addr := broker(t, 0, 1)
	for _, st := range []string{"1s", "10m"} {
		t.Run(st, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			code, stderr, _ := streamExit(t, "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr, "--topic", "images",
				"--group", "st-"+st, "-o", out, "--output-topic", "embeddings", "--session-timeout", st)
			last := lineWith(stderr, "maeembed stream:")
			if code != 1 || !strings.Contains(last, "--session-timeout "+st) || !strings.Contains(last, "6s to 5m0s") {
				t.Errorf("exit %d, error %q: want 1 naming --session-timeout %s and the range 6s to 5m0s\n%s", code, last, st, stderr)
			}
			if _, err := os.Stat(filepath.Join(out, "errors")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s/errors after a refused join: %v, want none", out, err)
			}
		})
	}
}
