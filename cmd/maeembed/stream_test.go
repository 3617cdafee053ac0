package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/twmb/franz-go/pkg/kfake"
	franz "github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/maeembed/maeembed/internal/logtest"
	"github.com/maeembed/maeembed/sinks"
	sinkkafka "github.com/maeembed/maeembed/sinks/kafka"
)

var tiny = filepath.Join(fixtures, "tiny32")

// broker starts a kfake cluster on loopback with the stream topics.
func broker(t *testing.T, port int, partitions int32) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(partitions, "images", "embeddings"), kfake.SeedTopics(1, "images-dlq"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// fixtureImages returns the tiny32 PNGs by file name.
func fixtureImages(t *testing.T) map[string][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(tiny, "images", "*.png"))
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	if len(out) == 0 {
		t.Fatal("no fixture images")
	}
	return out
}

// fileModeVectors runs `maeembed embed --format npy` on the fixture images:
// the vectors stream mode must reproduce.
func fileModeVectors(t *testing.T) map[string][]float32 {
	t.Helper()
	out := t.TempDir()
	mustRun(t, "embed", "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--format", "npy", "-o", out, filepath.Join(tiny, "images"))
	shape, data := npy(t, filepath.Join(out, "embeddings.npy"))
	tbl, _, err := sinks.ReadParquet(filepath.Join(out, "metadata.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	ids := tbl.Column(0).Data().Chunk(0).(*array.String)
	vecs := map[string][]float32{}
	for i := 0; i < shape[0]; i++ {
		vecs[ids.Value(i)] = data[i*shape[1] : (i+1)*shape[1]]
	}
	return vecs
}

// producer returns a franz-go client producing to images.
func producer(t *testing.T, addr string) *franz.Client {
	t.Helper()
	cl, err := franz.NewClient(franz.SeedBrokers(addr), franz.DefaultProduceTopic("images"), franz.ProducerLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produceImages(t *testing.T, cl *franz.Client, keys []string, imgs map[string][]byte, pick func(i int) string) {
	t.Helper()
	for i, k := range keys {
		if err := cl.ProduceSync(context.Background(), &franz.Record{Key: []byte(k), Value: imgs[pick(i)]}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// committed fetches the group's committed offsets of topic.
func committed(t *testing.T, addr, group, topic string, partitions int32) map[int32]int64 {
	t.Helper()
	cl := adminClient(t, addr)
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < partitions; p++ {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			out[p.Partition] = p.Offset
		}
	}
	return out
}

// parquetRows reads every visible part file under dir (recursively) and
// returns the ids (with repeats) and vectors; a corrupt file fails the test.
func parquetRows(t *testing.T, dir string) ([]string, map[string][]float32) {
	t.Helper()
	var ids []string
	vecs := map[string][]float32{}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".parquet") || strings.HasPrefix(d.Name(), ".") || strings.Contains(path, "/errors/") {
			return nil
		}
		tbl, _, err := sinks.ReadParquet(path)
		if err != nil {
			t.Errorf("corrupt output %s: %v", path, err)
			return nil
		}
		defer tbl.Release()
		for c := 0; c < len(tbl.Column(0).Data().Chunks()); c++ {
			idc := tbl.Column(0).Data().Chunk(c).(*array.String)
			emb := tbl.Column(1).Data().Chunk(c).(*array.FixedSizeList)
			vals := emb.ListValues().(*array.Float32).Float32Values()
			d := int(emb.DataType().(interface{ Len() int32 }).Len())
			for i := 0; i < idc.Len(); i++ {
				ids = append(ids, idc.Value(i))
				vecs[idc.Value(i)] = vals[(emb.Offset()+i)*d : (emb.Offset()+i+1)*d]
			}
		}
		return nil
	})
	return ids, vecs
}

// consumeAll reads n records of topic with franz-go.
func consumeAll(t *testing.T, addr, topic string, n int, timeout time.Duration) []*franz.Record {
	t.Helper()
	cl, err := franz.NewClient(franz.SeedBrokers(addr), franz.ConsumeTopics(topic), franz.ConsumeResetOffset(franz.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*franz.Record
	for len(out) < n && ctx.Err() == nil {
		out = append(out, cl.PollFetches(ctx).Records()...)
	}
	if len(out) < n {
		t.Fatalf("%d of %d records on %s within %v", len(out), n, topic, timeout)
	}
	return out
}

func recHeader(r *franz.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// streamInProcess runs `maeembed stream` in this process until stop is
// called (the SIGTERM path: the context ends), returning its exit code.
func streamInProcess(t *testing.T, args ...string) (stop func() int, logs *logtest.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &logtest.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"stream"}, args...), strings.NewReader(""), io.Discard, logs) }()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("stream did not stop within 30 s\n%s", logs.String())
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return stop, logs
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !poll(timeout, 50*time.Millisecond, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// startUntil starts cmd and returns once cond holds (checked every 2 ms);
// if it does not within timeout, it kills cmd and fails the test naming
// what it waited for.
func startUntil(t *testing.T, cmd *exec.Cmd, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !poll(timeout, 2*time.Millisecond, cond) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no %s within %v", what, timeout)
	}
}

// poll checks cond every interval until it holds (true) or timeout passes
// (false), for callers that must clean up (kill a child) before failing.
func poll(timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}

func checkVector(t *testing.T, id string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", id, len(got), len(want))
	}
	for i := range got {
		if d := got[i] - want[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("%s[%d] = %g, file mode %g", id, i, got[i], want[i])
		}
	}
}

// kcat returns the kcat binary, skipping the test only outside CI.
func kcat(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is required in CI (apt-get install kcat)")
		}
		t.Skip("kcat not installed")
	}
	return p
}

// kcatRecord is one message as kcat prints it with kcatFormat.
type kcatRecord struct {
	key     string
	headers map[string]string
	value   []byte
}

// kcatFormat frames each message so binary values survive: the key, the
// headers, the value length, then the value bytes.
const kcatFormat = "KEY %k\nHDR %h\nLEN %S\n%s\n"

func parseKcat(t *testing.T, out []byte) []kcatRecord {
	t.Helper()
	var recs []kcatRecord
	r := bufio.NewReader(bytes.NewReader(out))
	line := func(prefix string) (string, bool) {
		s, err := r.ReadString('\n')
		if err == io.EOF && s == "" {
			return "", false
		}
		if !strings.HasPrefix(s, prefix) {
			t.Fatalf("kcat output: %q does not start with %q", s, prefix)
		}
		return strings.TrimSuffix(strings.TrimPrefix(s, prefix), "\n"), true
	}
	for {
		key, ok := line("KEY ")
		if !ok {
			return recs
		}
		hdr, _ := line("HDR ")
		ls, _ := line("LEN ")
		n, err := strconv.Atoi(ls)
		if err != nil {
			t.Fatal(err)
		}
		val := make([]byte, n+1)
		if _, err := io.ReadFull(r, val); err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for _, kv := range strings.Split(hdr, ",") {
			k, v, _ := strings.Cut(kv, "=")
			h[k] = v
		}
		recs = append(recs, kcatRecord{key: key, headers: h, value: val[:n]})
	}
}

// kcat (librdkafka) produces real image files and a poison message into the
// input topic; kcat reads the output and dead-letter topics: the values are
// the vectors file mode gives, the poison is in the DLQ with its original
// bytes, the stream went on after it, and a clean stop commits everything.
func TestStreamKcatInterop(t *testing.T) {
	kc := kcat(t)
	addr := broker(t, 0, 3)
	want := fileModeVectors(t)
	poison := []byte("this is not an image")
	poisonFile := filepath.Join(t.TempDir(), "poison.bin")
	os.WriteFile(poisonFile, poison, 0o644)
	// All into partition 0, poison first: the images behind it must flow.
	files := []string{poisonFile}
	g, _ := filepath.Glob(filepath.Join(tiny, "images", "*.png"))
	files = append(files, g...)
	for _, f := range files {
		key := filepath.Base(f)
		if out, err := exec.Command(kc, "-P", "-b", addr, "-t", "images", "-p", "0", "-k", key, f).CombinedOutput(); err != nil {
			t.Fatalf("kcat produce %s: %v\n%s", f, err, out)
		}
	}
	out := t.TempDir()
	stop, logs := streamInProcess(t, "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr, "--topic", "images",
		"--group", "interop", "-o", out, "--output-topic", "embeddings", "--dlq-topic", "images-dlq", "--batch-size", "2", "--flush-interval", "200ms")
	consumeAll(t, addr, "embeddings", len(g), 30*time.Second)
	consumeAll(t, addr, "images-dlq", 1, 10*time.Second)
	if code := stop(); code != 0 {
		t.Fatalf("exit %d\n%s", code, logs.String())
	}

	kout, err := exec.Command(kc, "-C", "-b", addr, "-t", "embeddings", "-o", "beginning", "-e", "-q", "-f", kcatFormat).Output()
	if err != nil {
		t.Fatalf("kcat consume: %v", err)
	}
	recs := parseKcat(t, kout)
	if len(recs) != len(want) {
		t.Fatalf("kcat read %d output messages, want %d", len(recs), len(want))
	}
	for _, r := range recs {
		vec, err := sinkkafka.DecodeFloat32(r.value)
		if err != nil {
			t.Fatal(err)
		}
		checkVector(t, r.key, vec, want[r.key])
		if r.headers["maeembed-dim"] != "48" || r.headers["maeembed-pool"] != "mean" || r.headers["maeembed-model"] != filepath.Join(tiny, "hf") ||
			!strings.HasPrefix(r.headers["maeembed-source"], "images/0/") {
			t.Errorf("%s: headers %v", r.key, r.headers)
		}
	}
	dout, err := exec.Command(kc, "-C", "-b", addr, "-t", "images-dlq", "-o", "beginning", "-e", "-q", "-f", kcatFormat).Output()
	if err != nil {
		t.Fatalf("kcat consume dlq: %v", err)
	}
	dl := parseKcat(t, dout)
	if len(dl) != 1 || dl[0].key != "poison.bin" || !bytes.Equal(dl[0].value, poison) || dl[0].headers["maeembed-stage"] != "decode" ||
		dl[0].headers["maeembed-error"] == "" || dl[0].headers["maeembed-source"] != "images/0/0" {
		t.Errorf("dead letters %+v", dl)
	}

	// The Parquet output holds the same vectors; the poison is not there.
	ids, vecs := parquetRows(t, out)
	if len(ids) != len(want) {
		t.Errorf("parquet ids %v", ids)
	}
	for id, v := range vecs {
		checkVector(t, id, v, want[id])
	}
	if c := committed(t, addr, "interop", "images", 3); c[0] != int64(len(files)) {
		t.Errorf("committed %v, want partition 0 at %d", c, len(files))
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds the real maeembed command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "maeembed-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "maeembed")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// worker is a maeembed stream subprocess.
type worker struct {
	cmd  *exec.Cmd
	logs *logtest.Buffer
	done chan struct{}
	err  error
}

func startWorker(t *testing.T, args ...string) *worker {
	t.Helper()
	w := &worker{logs: &logtest.Buffer{}, done: make(chan struct{})}
	w.cmd = exec.Command(binary(t), append([]string{"stream"}, args...)...)
	w.cmd.Stdout, w.cmd.Stderr = w.logs, w.logs
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.err = w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.done
		if t.Failed() {
			t.Logf("worker %v logs:\n%s", args, w.logs.String())
		}
	})
	return w
}

// stop sends SIGTERM and returns the exit code and how long the exit took.
func (w *worker) stop(t *testing.T, bound time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(bound):
		t.Fatalf("worker still running %v after SIGTERM\n%s", bound, w.logs.String())
	}
	return w.cmd.ProcessState.ExitCode(), time.Since(start)
}

func manyKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return keys
}

func pickImage(imgs map[string][]byte) func(int) string {
	names := make([]string, 0, len(imgs))
	for n := range imgs {
		names = append(names, n)
	}
	sort.Strings(names)
	return func(i int) string { return names[i%len(names)] }
}

// SIGTERM mid-stream: the worker stops fetching, drains, publishes, commits
// and leaves within the bound; what it committed is exactly what it wrote.
func TestStreamSIGTERM(t *testing.T) {
	addr := broker(t, 0, 3)
	imgs := fixtureImages(t)
	keys := manyKeys("img", 3000)
	cl := producer(t, addr)
	produceImages(t, cl, keys, imgs, pickImage(imgs))
	out := t.TempDir()
	w := startWorker(t, "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr, "--topic", "images", "--group", "term",
		"-o", out, "--flush-interval", "100ms", "--max-in-flight", "64", "--batch-size", "8", "--shutdown-timeout", "10s")
	waitFor(t, "a first published part", 30*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(out, "part-*.parquet"))
		return len(m) > 0
	})
	code, took := w.stop(t, 20*time.Second)
	if code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, w.logs.String())
	}
	t.Logf("stopped in %v", took)
	ids, _ := parquetRows(t, out)
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	if len(seen) != len(ids) {
		t.Errorf("%d rows for %d ids: duplicates in one clean run", len(ids), len(seen))
	}
	c := committed(t, addr, "term", "images", 3)
	var total int64
	for _, off := range c {
		total += max(0, off)
	}
	if total != int64(len(ids)) {
		t.Errorf("committed %d messages (%v), wrote %d rows", total, c, len(ids))
	}
	if len(ids) == len(keys) {
		t.Log("note: the whole topic was processed before SIGTERM arrived")
	}
	if !strings.Contains(w.logs.String(), "left group") {
		t.Errorf("no 'left group' in logs")
	}
}

// Two workers share a group; one is killed with SIGKILL mid-stream. The
// survivor takes its partitions over after the session timeout: every id
// is in the output at least once and no visible file is corrupt.
//
// With shared set, both workers write into one directory (as every worker
// of a Kafka Connect sink does on shared storage): the survivor's start-up
// and its part numbering must leave the other's files alone.
func TestStreamKillWorker(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "own directories", true: "one shared directory"}[shared], func(t *testing.T) {
			killWorker(t, shared)
		})
	}
}

func killWorker(t *testing.T, shared bool) {
	addr := broker(t, 0, 4)
	imgs := fixtureImages(t)
	keys := manyKeys("k", 1500)
	outA, outB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	if shared {
		outB = outA
	}
	common := []string{"-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr, "--topic", "images", "--group", "kill",
		// Parts publish every second while commits run every 100 ms: a
		// worker that committed before publishing would lose rows here.
		"--flush-interval", "1s", "--max-in-flight", "4096", "--session-timeout", "6s", "--commit-interval", "100ms"}
	a := startWorker(t, append(common, "-o", outA)...)
	b := startWorker(t, append(common, "-o", outB)...)
	// Produce at a steady rate so the kill lands mid-stream.
	cl := producer(t, addr)
	pick := pickImage(imgs)
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for i, k := range keys {
			cl.Produce(context.Background(), &franz.Record{Key: []byte(k), Value: imgs[pick(i)]}, nil)
			if i%50 == 49 {
				time.Sleep(100 * time.Millisecond)
			}
		}
		cl.Flush(context.Background())
	}()
	waitFor(t, "both workers publishing", 30*time.Second, func() bool {
		ma, _ := filepath.Glob(filepath.Join(outA, "part-*.parquet"))
		mb, _ := filepath.Glob(filepath.Join(outB, "part-*.parquet"))
		return len(ma) > 0 && len(mb) > 0
	})
	// Kill once the group has committed what was published so far: A then
	// holds rows past its last commit, while the producer still produces
	// (a fixed sleep here placed the kill by the clock, not by the state).
	var atKill int64
	waitFor(t, "committed offsets", 30*time.Second, func() bool {
		atKill = 0
		for _, o := range committed(t, addr, "kill", "images", 4) {
			atKill += max(o, 0) // -1: nothing committed on that partition
		}
		return atKill > 0
	})
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
	<-prodDone
	// Wait for the survivor to catch up (missing ids are reported below).
	poll(45*time.Second, 100*time.Millisecond, func() bool {
		ids, _ := parquetRowsQuiet(outA, outB)
		return len(ids) >= len(keys)
	})
	if code, _ := b.stop(t, 20*time.Second); code != 0 {
		t.Errorf("survivor exit %d", code)
	}
	var all []string
	for _, d := range slices.Compact([]string{outA, outB}) {
		ids, _ := parquetRows(t, d)
		all = append(all, ids...)
	}
	seen := map[string]int{}
	for _, id := range all {
		seen[id]++
	}
	var missing []string
	for _, k := range keys {
		if seen[k] == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d ids missing from the output, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	t.Logf("kill test: %d inputs, %d committed at the kill, %d rows, %d duplicates", len(keys), atKill, len(all), len(all)-len(seen))
	if tmp, _ := filepath.Glob(filepath.Join(outA, "part-*")); len(tmp) == 0 {
		t.Error("killed worker published nothing before the kill")
	}
}

// parquetRowsQuiet counts distinct ids without failing on a file being
// published concurrently.
func parquetRowsQuiet(dirs ...string) (map[string]bool, error) {
	ids := map[string]bool{}
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "part-*.parquet"))
		for _, f := range files {
			tbl, _, err := sinks.ReadParquet(f)
			if err != nil {
				return ids, err
			}
			for c := 0; c < len(tbl.Column(0).Data().Chunks()); c++ {
				col := tbl.Column(0).Data().Chunk(c).(*array.String)
				for i := 0; i < col.Len(); i++ {
					ids[col.Value(i)] = true
				}
			}
			tbl.Release()
		}
	}
	return ids, nil
}

// A worker started before the broker logs that it is retrying and is not
// ready, then connects and catches up once the broker appears; when the
// broker goes away and comes back (same data directory), it logs the
// outage, reconnects and processes what was produced meanwhile.
func TestStreamBrokerLaterAndOutage(t *testing.T) {
	addr := freeAddr(t)
	metrics := freeAddr(t)
	out, data := t.TempDir(), t.TempDir()
	w := startWorker(t, "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr, "--topic", "images", "--group", "late",
		"-o", out, "--flush-interval", "200ms", "--metrics-addr", metrics, "--session-timeout", "6s")
	waitFor(t, "a retry log line", 20*time.Second, func() bool { return strings.Contains(w.logs.String(), "brokers unreachable") })
	if code := httpStatus(metrics, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d without a broker, want 503", code)
	}
	if code := httpStatus(metrics, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d, want 200", code)
	}
	// The broker appears after more than one failed attempt.
	waitFor(t, "a second retry", 20*time.Second, func() bool { return strings.Count(w.logs.String(), "brokers unreachable") >= 2 })
	start := func() *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.Ports(portOf(addr)), kfake.DataDir(data), kfake.SeedTopics(3, "images"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := start()
	imgs := fixtureImages(t)
	keys := manyKeys("late", 30)
	produceImages(t, producer(t, addr), keys, imgs, pickImage(imgs))
	waitFor(t, "all images written", 40*time.Second, func() bool {
		ids, _ := parquetRowsQuiet(out)
		return len(ids) == len(keys)
	})
	waitFor(t, "ready", 15*time.Second, func() bool { return httpStatus(metrics, "/readyz") == http.StatusOK })
	// A part is visible (renamed) just before its rows are acked and
	// counted: on a loaded machine a scrape can fall in between.
	waitFor(t, "the written count", 15*time.Second, func() bool {
		return scrape(t, metrics)["maeembed_images_written_total"] == float64(len(keys))
	})
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"maeembed_images_written_total 30", `maeembed_kafka_consumer_lag{partition="0",topic="images"}`,
		`maeembed_stage_busy_seconds_total{stage="model"}`, "maeembed_kafka_end_to_end_seconds_bucket", "maeembed_kafka_up 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Outage: the broker goes away, then comes back with its data.
	// Let the commit of all of them land (a fixed sleep could end before
	// it on a loaded machine, and the outage would then redeliver them).
	waitFor(t, "the offsets committed", 20*time.Second, func() bool {
		var n int64
		for _, o := range committed(t, addr, "late", "images", 3) {
			n += max(o, 0) // -1: nothing committed on that partition
		}
		return n == int64(len(keys))
	})
	before := strings.Count(w.logs.String(), "brokers unreachable")
	c.Close()
	waitFor(t, "the outage logged", 20*time.Second, func() bool { return strings.Count(w.logs.String(), "brokers unreachable") > before })
	waitFor(t, "not ready during the outage", 10*time.Second, func() bool { return httpStatus(metrics, "/readyz") == http.StatusServiceUnavailable })
	c = start()
	defer c.Close()
	more := manyKeys("after", 30)
	produceImages(t, producer(t, addr), more, imgs, pickImage(imgs))
	waitFor(t, "the images produced after the outage", 45*time.Second, func() bool {
		ids, _ := parquetRowsQuiet(out)
		return len(ids) == len(keys)+len(more)
	})
	if code, _ := w.stop(t, 20*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{"brokers reachable", "brokers reachable again"} {
		if !strings.Contains(w.logs.String(), want) {
			t.Errorf("no %q log line", want)
		}
	}
}

func httpStatus(addr, path string) int {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Bad stream flags are usage errors with one clear line.
func TestStreamUsageErrors(t *testing.T) {
	x := filepath.Join(t.TempDir(), "out") // never in the source tree
	file := filepath.Join(t.TempDir(), "emb.parquet")
	if err := os.WriteFile(file, []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--topic", "t", "-o", x}, "--brokers"},
		{[]string{"--brokers", "b", "-o", x}, "--topic"},
		{[]string{"--brokers", "b", "--topic", "t"}, "--output"},
		{[]string{"--brokers", "b", "--topic", "t", "-o", x, "extra"}, "no INPUT"},
		{[]string{"--brokers", "b", "--topic", "t", "-o", x, "--max-in-flight", "2"}, "max-in-flight"},
		{[]string{"--brokers", "b", "--topic", "t", "-o", x, "--start-offset", "middle", "-m", filepath.Join(tiny, "hf")}, "start offset"},
		// Refused before the model is loaded (it was only when connecting).
		{[]string{"--brokers", "b", "--topic", "t", "-o", x, "--sasl-mechanism", "foo", "-m", filepath.Join(tiny, "hf")}, "--sasl-mechanism"},
		{[]string{"--brokers", "b", "--topic", "t", "-o", x, "--tls-ca", filepath.Join(x, "missing.pem"), "-m", filepath.Join(tiny, "hf")}, "--tls-ca"},
		{[]string{"--brokers", "b", "--topic", "t", "-o", x, "--tls-cert", filepath.Join(x, "missing.pem"), "-m", filepath.Join(tiny, "hf")}, "--tls-key"},
		// An existing file as the output directory.
		{[]string{"--brokers", "b", "--topic", "t", "-o", file, "-m", filepath.Join(tiny, "hf")}, "--output " + file},
		{[]string{"--brokers", "b", "--topic", "t", "-o", filepath.Join(file, "sub"), "-m", filepath.Join(tiny, "hf")}, file + " is a file"},
		// The help promises 1-64 characters; the default is the flag left out
		// (the bad --start-offset: without the check, a quick error all the same).
		{[]string{"--brokers", "b", "--topic", "t", "-o", x, "--start-offset", "middle", "--worker-id", ""}, "--worker-id"},
		{[]string{"--brokers", "b", "--topic", "t", "-o", x, "--start-offset", "middle", "--worker-id="}, "--worker-id"},
	} {
		code, _, stderr := maeembed(t, append([]string{"stream"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", c.args, code, stderr, c.want)
		}
		// Said once, as embed says it.
		if n := strings.Count(stderr, "usage:"); n != 1 {
			t.Errorf("%v: \"usage:\" %d times in %q, want once", c.args, n, stderr)
		}
	}
}

// The byte-count options take sizes as --memory-budget does, from flags
// and the config file: parsing gets past them to the next check (here a
// too-small --max-in-flight); a bad size is a usage error naming the flag.
func TestStreamSizeOptions(t *testing.T) {
	dir := t.TempDir()
	x := filepath.Join(dir, "out")
	cfg := filepath.Join(dir, "stream.yaml")
	os.WriteFile(cfg, []byte("fetch_max_bytes: 16 MiB\nfetch_min_bytes: 1KiB\nmax_file_bytes: 256MiB\n"), 0o644)
	base := []string{"stream", "--brokers", "b", "--topic", "t", "-o", x}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--fetch-max-bytes", "1MiB", "--max-file-bytes", "16 MiB", "--fetch-min-bytes", "1", "--max-in-flight", "2"}, "--max-in-flight 2"},
		{[]string{"--fetch-max-bytes", "16777216", "--max-in-flight", "2"}, "--max-in-flight 2"},
		{[]string{"--config-file", cfg, "--max-in-flight", "2"}, "--max-in-flight 2"},
		{[]string{"--fetch-max-bytes", "1MX"}, `"--fetch-max-bytes"`},
		{[]string{"--max-file-bytes", "lots"}, `"--max-file-bytes"`},
	} {
		code, _, stderr := maeembed(t, append(base, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "strconv") {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

// Two runs of the same shard into one directory would write the same ids
// twice: the second is refused and says why; another shard is not.
func TestOutputLockedPerShard(t *testing.T) {
	dir := t.TempDir()
	release, err := sinks.LockOutput(dir, "shard-0-of-1", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	imgs := filepath.Join(tiny, "images")
	code, _, stderr := maeembed(t, "embed", "-m", filepath.Join(tiny, "hf"), "--resize", "none", "-o", dir, imgs)
	if code != 1 || !strings.Contains(stderr, "another running process") || !strings.Contains(stderr, "same ids") {
		t.Errorf("second run of one shard: exit %d, %s", code, stderr)
	}
	if code, _, stderr := maeembed(t, "embed", "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--shard", "1/2", "-o", dir, imgs); code != 0 {
		t.Errorf("another shard: exit %d, %s", code, stderr)
	}
}

// streamConfigCheck runs a configs/stream*.yaml end to end against a
// loopback broker (called by TestConfigs).
func streamConfigCheck(t *testing.T, file string) {
	addr := broker(t, 0, 3)
	imgs := fixtureImages(t)
	keys := manyKeys("cfg", 6)
	produceImages(t, producer(t, addr), keys, imgs, pickImage(imgs))
	out := t.TempDir()
	stop, logs := streamInProcess(t, "--config-file", file, "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr,
		"-o", out, "--metrics-addr", "")
	consumeAll(t, addr, "embeddings", len(keys), 30*time.Second)
	if code := stop(); code != 0 {
		t.Fatalf("exit %d\n%s", code, logs.String())
	}
	if ids, _ := parquetRows(t, out); len(ids) != len(keys) {
		t.Errorf("%d rows, want %d", len(ids), len(keys))
	}
}

// TestStreamMeasure measures what docs/streaming.md reports; it runs only
// with MAEEMBED_STREAM_BENCH=MODEL and MAEEMBED_STREAM_IMAGES=DIR (JPEGs),
// e.g. a ViT-B checkpoint and 64 photos:
//
//	MAEEMBED_STREAM_BENCH=/path/mae_pretrain_vit_base.pth MAEEMBED_STREAM_IMAGES=imgs \
//	  go test ./cmd/maeembed -run TestStreamMeasure -v -timeout 30m
func TestStreamMeasure(t *testing.T) {
	model, dir := os.Getenv("MAEEMBED_STREAM_BENCH"), os.Getenv("MAEEMBED_STREAM_IMAGES")
	if model == "" || dir == "" {
		t.Skip("set MAEEMBED_STREAM_BENCH=MODEL and MAEEMBED_STREAM_IMAGES=DIR to measure")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.jpg"))
	if len(files) == 0 {
		t.Fatal("no .jpg in", dir)
	}
	imgs := map[string][]byte{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		imgs[filepath.Base(f)] = b
	}
	pick := pickImage(imgs)
	bs := "8"
	if v := os.Getenv("MAEEMBED_STREAM_BATCH"); v != "" {
		bs = v
	}
	parts := os.Getenv("MAEEMBED_STREAM_PARTS") // throughput,latency,memory (default all)
	want := func(p string) bool { return parts == "" || strings.Contains(parts, p) }
	var every []time.Duration // input periods of the latency runs
	for _, s := range strings.Split(cmp.Or(os.Getenv("MAEEMBED_STREAM_EVERY"), "100ms"), ",") {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		every = append(every, d)
	}
	if want("throughput") {
		measureThroughput(t, model, dir, bs, imgs, pick, len(files))
	}
	if want("latency") {
		for _, e := range every {
			for _, bl := range []string{"50ms", "10ms"} {
				measureLatency(t, model, bs, bl, e, imgs, pick)
			}
		}
	}
	if want("memory") {
		measureMemory(t, model, bs, imgs, pick)
	}
}

func measureThroughput(t *testing.T, model, dir, bs string, imgs map[string][]byte, pick func(int) string, n int) {
	// 1. File mode throughput (from its own summary line, model load excluded).
	fout := t.TempDir()
	fcmd := exec.Command(binary(t), "embed", "-m", model, "--batch-size", bs, "-o", fout, dir)
	flog, err := fcmd.CombinedOutput()
	if err != nil {
		t.Fatalf("file mode: %v\n%s", err, flog)
	}
	fileRate := 0.0
	for _, l := range strings.Split(string(flog), "\n") {
		if i := strings.Index(l, "images_per_s="); i >= 0 && strings.Contains(l, "msg=done") {
			fileRate, _ = strconv.ParseFloat(strings.Fields(l[i+len("images_per_s="):])[0], 64)
		}
	}

	// 2. Stream throughput on the same images, preloaded in the topic.
	addr := broker(t, 0, 3)
	produceImages(t, producer(t, addr), manyKeys("thr", n), imgs, pick)
	metrics := freeAddr(t)
	w := startWorker(t, "-m", model, "--batch-size", bs, "--brokers", addr, "--topic", "images", "--group", "thr",
		"-o", t.TempDir(), "--output-topic", "embeddings", "--metrics-addr", metrics, "--flush-interval", "1s")
	var tFirst, tAll time.Time
	for tAll.IsZero() {
		m := scrape(t, metrics)
		if tFirst.IsZero() && m["maeembed_kafka_fetched_total"] >= 1 {
			tFirst = time.Now()
		}
		if m["maeembed_images_written_total"] >= float64(n) {
			tAll = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := scrape(t, metrics)
	streamRate := float64(n) / tAll.Sub(tFirst).Seconds()
	w.stop(t, time.Minute)
	t.Logf("throughput: file %.2f images/s, stream %.2f images/s (%.0f%%), %d images, batch %s, %.0f forward passes",
		fileRate, streamRate, 100*streamRate/fileRate, n, bs, m["maeembed_model_batch_seconds_count"])
}

// measureLatency produces one image every period and reports produce →
// output-topic latency percentiles.
func measureLatency(t *testing.T, model, bs, batchLatency string, period time.Duration, imgs map[string][]byte, pick func(int) string) {
	group := fmt.Sprintf("lat-%v-%s", period, batchLatency)
	addr := broker(t, 0, 3)
	w := startWorker(t, "-m", model, "--batch-size", bs, "--brokers", addr, "--topic", "images", "--group", group,
		"--output-topic", "embeddings", "--batch-latency", batchLatency, "--metrics-addr", "")
	cl := producer(t, addr)
	// Warm up: the first message also waits for the group join.
	produceImages(t, cl, []string{"warm"}, imgs, pick)
	consumeAll(t, addr, "embeddings", 1, time.Minute)
	const count = 100
	sent := map[string]time.Time{}
	for i := 0; i < count; i++ {
		k := fmt.Sprintf("lat-%03d", i)
		sent[k] = time.Now()
		cl.Produce(context.Background(), &franz.Record{Key: []byte(k), Value: imgs[pick(i)], Timestamp: sent[k]}, nil)
		time.Sleep(period)
	}
	recs := consumeAll(t, addr, "embeddings", count+1, 2*time.Minute)
	var lat []float64
	for _, r := range recs {
		if s, ok := sent[string(r.Key)]; ok {
			lat = append(lat, r.Timestamp.Sub(s).Seconds())
		}
	}
	sort.Float64s(lat)
	t.Logf("latency, one image every %v, batch-latency %s, batch %s: p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d images)",
		period, batchLatency, bs, 1000*lat[len(lat)/2], 1000*lat[len(lat)*99/100], 1000*lat[len(lat)-1], len(lat))
	w.stop(t, time.Minute)
}

// measureMemory reports the worker's peak RSS with a small and a 10x
// larger backlog: bounded by max-in-flight, not by the backlog.
func measureMemory(t *testing.T, model, bs string, imgs map[string][]byte, pick func(int) string) {
	for _, backlog := range []int{150, 1500} {
		addr := broker(t, 0, 3)
		produceImages(t, producer(t, addr), manyKeys("mem", backlog), imgs, pick)
		metrics := freeAddr(t)
		w := startWorker(t, "-m", model, "--batch-size", bs, "--brokers", addr, "--topic", "images", "--group", "mem",
			"-o", t.TempDir(), "--output-topic", "embeddings", "--metrics-addr", metrics, "--max-in-flight", "256")
		target := 150.0 // same work done in both runs
		for scrape(t, metrics)["maeembed_images_written_total"] < target {
			time.Sleep(200 * time.Millisecond)
		}
		hwm := vmHWM(w.cmd.Process.Pid)
		lag := scrape(t, metrics)
		w.stop(t, time.Minute)
		t.Logf("memory: backlog %d images, peak RSS %d MiB after %.0f written (max-in-flight 256, in flight %.0f)", backlog, hwm>>20, target, lag["maeembed_kafka_in_flight"])
	}
}

// scrape reads the unlabelled samples of /metrics.
func scrape(t *testing.T, addr string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
		}
	}
	return out
}

// vmHWM is the peak resident set of a process, in bytes.
func vmHWM(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// adminClient is a client of the broker at addr for admin requests; the
// caller closes it.
func adminClient(t *testing.T, addr string) *franz.Client {
	t.Helper()
	cl, err := franz.NewClient(franz.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// createTopic makes a topic with configs through the admin API.
func createTopic(t *testing.T, addr, topic string, partitions int32, configs map[string]string) {
	t.Helper()
	cl := adminClient(t, addr)
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if ec := resp.Topics[0].ErrorCode; ec != 0 {
		t.Fatalf("create topic %s: error code %d", topic, ec)
	}
}

// A poison message larger than the dead-letter topic accepts is
// dead-lettered without its bytes (and says why), so its partition keeps
// committing; without a DLQ, failures land in OUT/errors as Parquet rows.
func TestStreamDeadLetterFallbacks(t *testing.T) {
	addr := broker(t, 0, 1)
	createTopic(t, addr, "small-dlq", 1, map[string]string{"max.message.bytes": "1000"})
	imgs := fixtureImages(t)
	cl := producer(t, addr)
	big := bytes.Repeat([]byte("not an image "), 1000)
	if err := cl.ProduceSync(context.Background(), &franz.Record{Key: []byte("big-poison"), Value: big}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	keys := manyKeys("ok", 3)
	produceImages(t, cl, keys, imgs, pickImage(imgs))

	out := t.TempDir()
	stop, logs := streamInProcess(t, "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr, "--topic", "images",
		"--group", "fallback", "-o", out, "--dlq-topic", "small-dlq", "--flush-interval", "100ms")
	dl := consumeAll(t, addr, "small-dlq", 1, 30*time.Second)[0]
	if string(dl.Key) != "big-poison" || len(dl.Value) != 0 || recHeader(dl, "maeembed-error-dlq") == "" || recHeader(dl, "maeembed-stage") != "decode" {
		t.Errorf("dead letter %q (%d bytes) %v", dl.Key, len(dl.Value), dl.Headers)
	}
	waitFor(t, "the images after the poison", 20*time.Second, func() bool { ids, _ := parquetRowsQuiet(out); return len(ids) == len(keys) })
	if code := stop(); code != 0 {
		t.Fatalf("exit %d\n%s", code, logs.String())
	}
	if c := committed(t, addr, "fallback", "images", 1); c[0] != int64(1+len(keys)) {
		t.Errorf("committed %v, want %d", c, 1+len(keys))
	}

	// No DLQ: the failure becomes an error row, and is committed too.
	out2 := t.TempDir()
	stop, logs = streamInProcess(t, "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr, "--topic", "images",
		"--group", "errfiles", "-o", out2, "--flush-interval", "100ms")
	waitFor(t, "the images", 20*time.Second, func() bool { ids, _ := parquetRowsQuiet(out2); return len(ids) == len(keys) })
	if code := stop(); code != 0 {
		t.Fatalf("exit %d\n%s", code, logs.String())
	}
	errFiles, _ := filepath.Glob(filepath.Join(out2, "errors", "part-*.parquet"))
	if len(errFiles) != 1 {
		t.Fatalf("error parts %v", errFiles)
	}
	tbl, _, err := sinks.ReadParquet(errFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if tbl.NumRows() != 1 || tbl.Column(0).Data().Chunk(0).(*array.String).Value(0) != "big-poison" ||
		tbl.Column(1).Data().Chunk(0).(*array.String).Value(0) != "decode" {
		t.Errorf("error rows: %d, first %v", tbl.NumRows(), tbl.Column(0).Data().Chunk(0))
	}
	if c := committed(t, addr, "errfiles", "images", 1); c[0] != int64(1+len(keys)) {
		t.Errorf("committed %v, want %d", c, 1+len(keys))
	}
}

// SIGTERM while the broker is down, with an output topic: the produce
// retry loop sees the abort, so the worker ends after the shutdown timeout
// instead of retrying for ever (its uncommitted messages are redelivered).
func TestStreamShutdownBoundedWithBrokerDown(t *testing.T) {
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(2, "images", "embeddings"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	imgs := fixtureImages(t)
	produceImages(t, producer(t, addr), manyKeys("down", 400), imgs, pickImage(imgs))
	w := startWorker(t, "-m", filepath.Join(tiny, "hf"), "--resize", "none", "--brokers", addr, "--topic", "images", "--group", "down",
		"--output-topic", "embeddings", "--batch-size", "4", "--shutdown-timeout", "2s")
	consumeAll(t, addr, "embeddings", 1, 60*time.Second) // it is producing
	c.Close()                                            // the broker goes away mid-stream
	waitFor(t, "a produce retrying", 60*time.Second, func() bool {
		return strings.Contains(w.logs.String(), "produce failed; retrying")
	})
	code, took := w.stop(t, 60*time.Second)
	t.Logf("exit %d, %v after SIGTERM", code, took)
	timedOut := strings.Contains(w.logs.String(), "shutdown timeout")
	if !timedOut && code != 0 {
		t.Errorf("exit %d without a shutdown timeout\n%s", code, w.logs.String())
	}
	// An abort is an interrupted run: exit 1, as the exit table says.
	if timedOut && code != 1 {
		t.Errorf("exit %d after a shutdown timeout, want 1\n%s", code, w.logs.String())
	}
}
