package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	kgo "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	franz "github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/maeembed/maeembed/internal/logtest"
	"github.com/maeembed/maeembed/kafkaconn"
	"github.com/maeembed/maeembed/sources"
	"github.com/maeembed/maeembed/stages"
)

func cluster(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.Ports(0), kfake.SeedTopics(3, "in")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

// produce writes n records to "in" with franz-go (an independent client);
// record i has key k<i> unless i%5 == 4 (no key).
func produce(t *testing.T, addr string, n int, opts ...franz.Opt) {
	t.Helper()
	cl, err := franz.NewClient(append([]franz.Opt{franz.SeedBrokers(addr), franz.DefaultProduceTopic("in"), franz.RecordPartitioner(franz.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 0; i < n; i++ {
		r := &franz.Record{Value: []byte(fmt.Sprint("v", i)), Partition: int32(i % 3)}
		if i%5 != 4 {
			r.Key = []byte(fmt.Sprint("k", i))
		}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func open(t *testing.T, addr string, sec kafkaconn.Security) *Source {
	t.Helper()
	s, err := Open(Config{Brokers: []string{addr}, Topics: []string{"in"}, Group: "g", Security: sec,
		SessionTimeout: 6 * time.Second, CommitInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func next(t *testing.T, s *Source, n int) []sources.Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []sources.Item
	for len(out) < n {
		it, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("after %d items: %v", len(out), err)
		}
		out = append(out, it)
	}
	return out
}

// Offsets are committed only up to the first unacked message of each
// partition: a new consumer in the group gets exactly the messages at and
// after it again (at-least-once), nothing acked before it.
func TestCommitsOnlyDurablePrefix(t *testing.T) {
	_, addr := cluster(t)
	produce(t, addr, 30)
	s := open(t, addr, kafkaconn.Security{})
	items := next(t, s, 30)
	var held sources.Item
	for i := len(items) - 1; i >= 0; i-- { // ack newest first: order must not matter
		it := items[i]
		if _, part, off, _ := Where(it.Pos); part == 1 && off == 4 {
			held = it
			continue
		}
		it.Ack(nil)
	}
	if held.ID == "" {
		t.Fatal("no item at 1/4")
	}
	for _, it := range items {
		_, part, off, ok := Where(it.Pos)
		if !ok {
			t.Fatalf("position %q does not parse", it.Pos.Path)
		}
		want := fmt.Sprintf("in/%d/%d", part, off)
		if it.Pos.String() != want {
			t.Errorf("pos %s, want %s", it.Pos.String(), want)
		}
		if !strings.HasPrefix(it.ID, "k") && it.ID != want {
			t.Errorf("id %q of a keyless record, want %s", it.ID, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Acked != 29 || st.Fetched != 30 || st.InFlight != 1 {
		t.Errorf("stats %+v", st)
	}
	for _, p := range st.Partitions {
		want := int64(10)
		if p.Partition == 1 {
			want = 4
		}
		if p.Committed != want {
			t.Errorf("partition %d committed %d, want %d", p.Partition, p.Committed, want)
		}
	}

	s2 := open(t, addr, kafkaconn.Security{})
	defer s2.Close()
	again := next(t, s2, 6) // 1/4 .. 1/9
	for i, it := range again {
		if _, part, off, _ := Where(it.Pos); part != 1 || off != int64(4+i) {
			t.Errorf("redelivered %s, want in/1/%d", it.Pos.String(), 4+i)
		}
		it.Ack(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if it, err := s2.Next(ctx); err == nil {
		t.Errorf("extra message %s after the held one was redelivered", it.Pos.String())
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

// An ack with an error (output not durable) keeps the commit below it.
func TestFailedAckBlocksCommit(t *testing.T) {
	p := &partState{outstanding: map[int64]int{}, maxSeen: -1, committed: -1}
	for off := int64(0); off < 5; off++ {
		p.outstanding[off]++
		p.maxSeen = off
	}
	if p.commitPoint() != 0 {
		t.Fatal(p.commitPoint())
	}
	delete(p.outstanding, 0)
	delete(p.outstanding, 1)
	delete(p.outstanding, 3)
	if p.commitPoint() != 2 {
		t.Errorf("commit point %d, want 2", p.commitPoint())
	}
	// Redelivery of 1 after a rebalance: outstanding again.
	p.outstanding[1]++
	if p.commitPoint() != 1 {
		t.Errorf("commit point %d, want 1", p.commitPoint())
	}
	delete(p.outstanding, 1)
	delete(p.outstanding, 2)
	delete(p.outstanding, 4)
	if p.commitPoint() != 5 {
		t.Errorf("commit point %d, want 5", p.commitPoint())
	}
}

// MaxInFlight bounds unacked messages: Next blocks until an ack.
func TestMaxInFlight(t *testing.T) {
	_, addr := cluster(t)
	produce(t, addr, 10)
	s, err := Open(Config{Brokers: []string{addr}, Topics: []string{"in"}, Group: "g", MaxInFlight: 4, SessionTimeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items := next(t, s, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); err == nil {
		t.Fatal("Next returned a 5th item with 4 unacked")
	}
	items[0].Ack(nil)
	items[0].Ack(nil) // extra acks are ignored
	next(t, s, 1)
	if st := s.Stats(); st.InFlight != 4 {
		t.Errorf("in flight %d, want 4", st.InFlight)
	}
}

// A consumer started before its broker connects when it appears, and Ready
// follows the broker.
func TestBrokerLaterAndSASL(t *testing.T) {
	ln, addr := freePort(t)
	ln()
	sec := kafkaconn.Security{SASLMechanism: "plain", SASLUsername: "u", SASLPassword: "p"}
	s := open(t, addr, sec)
	time.Sleep(700 * time.Millisecond)
	if s.Ready() {
		t.Fatal("ready without a broker")
	}
	c, err := kfake.NewCluster(kfake.Ports(portOf(addr)), kfake.SeedTopics(3, "in"), kfake.EnableSASL(), kfake.Superuser("PLAIN", "u", "p"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer s.Close()
	produce(t, addr, 6, franz.SASL(plainAuth("u", "p")))
	items := next(t, s, 6)
	for _, it := range items {
		if !bytes.HasPrefix(it.Data, []byte("v")) {
			t.Errorf("data %q", it.Data)
		}
		it.Ack(nil)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !s.Ready() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !s.Ready() {
		t.Error("not ready with the broker up")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	// (The text format orders labels by name: partition before topic.)
	for _, want := range []string{"maeembed_kafka_acked_total 6", "maeembed_kafka_up 1", `maeembed_kafka_consumer_lag{partition="0",topic="in"} 0`, "maeembed_kafka_end_to_end_seconds_count 6"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

// Credentials the brokers refuse (a wrong password, a mechanism the user
// has no credentials for) are no outage: Next ends the run at the first
// refused join with an error that says authentication failed, naming the
// broker and the mechanism but not the password, and the health probe
// logs that rather than "brokers unreachable".
func TestSASLRejected(t *testing.T) {
	_, addr := cluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "u", "secret-pw"))
	for _, sec := range []kafkaconn.Security{
		{SASLMechanism: "plain", SASLUsername: "u", SASLPassword: "wrong-pw"},
		{SASLMechanism: "scram-sha-512", SASLUsername: "u", SASLPassword: "secret-pw"},
	} {
		t.Run(sec.SASLMechanism, func(t *testing.T) {
			var logs logtest.Buffer
			prev := slog.Default()
			slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
			defer slog.SetDefault(prev)
			s := open(t, addr, sec)
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := s.Next(ctx)
			if err == nil || ctx.Err() != nil {
				t.Fatalf("Next: %v (context %v), want the authentication error before the timeout", err, ctx.Err())
			}
			mech := strings.ToUpper(sec.SASLMechanism)
			if msg := err.Error(); !strings.Contains(msg, "authentication failed at broker "+addr) || !strings.Contains(msg, mech) ||
				!strings.Contains(msg, `user "u"`) || strings.Contains(msg, "pw") {
				t.Errorf("error %q: want authentication failed, the broker %s, %s and the user, never the password", msg, addr, mech)
			}
			out := logs.String()
			if strings.Contains(out, "unreachable") || strings.Contains(out, "pw") {
				t.Errorf("logs call it an outage or show the password:\n%s", out)
			}
		})
	}
}

// Rights the brokers refuse (ACLs that let the user read the input topic
// but not join the group, or join the group but not read the topic) end
// the run too, at the first refused join, with an error that says the
// user is not authorized.
func TestNotAuthorized(t *testing.T) {
	acl := func(res kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	for _, c := range []struct {
		name string
		acls []kfake.ACL
		want kgo.Error
	}{
		{"group", []kfake.ACL{acl(kmsg.ACLResourceTypeTopic, "in", kmsg.ACLOperationRead)}, kgo.GroupAuthorizationFailed},
		{"topic", []kfake.ACL{acl(kmsg.ACLResourceTypeGroup, "g", kmsg.ACLOperationRead)}, kgo.TopicAuthorizationFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, addr := cluster(t, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin"), kfake.User("PLAIN", "u", "p", c.acls...))
			s := open(t, addr, kafkaconn.Security{SASLMechanism: "plain", SASLUsername: "u", SASLPassword: "p"})
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := s.Next(ctx)
			if err == nil || ctx.Err() != nil || !errors.Is(err, c.want) || !strings.Contains(err.Error(), "not authorized at broker") ||
				!strings.Contains(err.Error(), `user "u"`) {
				t.Fatalf("Next: %v (context %v), want %v, not authorized, naming the user", err, ctx.Err(), c.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Topics: []string{"t"}, Group: "g"},
		{Brokers: []string{"b"}, Group: "g"},
		{Brokers: []string{"b"}, Topics: []string{"t"}},
		{Brokers: []string{"b"}, Topics: []string{"t"}, Group: "g", StartOffset: "middle"},
		{Brokers: []string{"b"}, Topics: []string{"t"}, Group: "g", Security: kafkaconn.Security{SASLMechanism: "gssapi"}},
		{Brokers: []string{"b"}, Topics: []string{"t"}, Group: "g", Security: kafkaconn.Security{CAFile: "/nonexistent"}},
		// kafka-go panicked on these / truncated the size to int32.
		{Brokers: []string{"b"}, Topics: []string{"t"}, Group: "g", MinBytes: 32 << 20},
		{Brokers: []string{"b"}, Topics: []string{"t"}, Group: "g", MinBytes: 2 << 20, MaxBytes: 1 << 20},
		{Brokers: []string{"b"}, Topics: []string{"t"}, Group: "g", MaxBytes: 4 << 30},
	} {
		if s, err := Open(c); err == nil {
			s.Close()
			t.Errorf("%+v accepted", c)
		}
	}
}

// Histogram quantiles interpolate inside buckets like Prometheus.
func TestHistogram(t *testing.T) {
	h := NewHistogram([]float64{1, 2, 4})
	for _, v := range []float64{0.5, 1.5, 1.5, 3} {
		h.Observe(v)
	}
	if q := h.Quantile(0.5); q != 1.5 {
		t.Errorf("p50 %g, want 1.5", q)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(histCollector{h, prometheus.NewDesc("x", "help", nil, prometheus.Labels{"a": "b"})})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b := rec.Body
	for _, want := range []string{`x_bucket{a="b",le="2"} 3`, `x_bucket{a="b",le="+Inf"} 4`, `x_sum{a="b"} 6.5`, `x_count{a="b"} 4`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}

type histCollector struct {
	h *Histogram
	d *prometheus.Desc
}

func (c histCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.d }
func (c histCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.h.metric(c.d) }

// freePort reserves a loopback port; call the returned func to free it.
func freePort(t *testing.T) (func(), string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return func() { ln.Close() }, ln.Addr().String()
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

func plainAuth(u, p string) sasl.Mechanism { return plain.Auth{User: u, Pass: p}.AsMechanism() }

// Binary keys that differ only in bytes that are not UTF-8 get different,
// valid UTF-8 ids that give the key back.
func TestBinaryKeysGetReversibleIDs(t *testing.T) {
	_, addr := cluster(t)
	cl, err := franz.NewClient(franz.SeedBrokers(addr), franz.DefaultProduceTopic("in"), franz.RecordPartitioner(franz.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	keys := [][]byte{[]byte("caf\xe9"), []byte("caf\xe8"), {0xff, 0x00, '\\'}}
	for _, k := range keys {
		if err := cl.ProduceSync(context.Background(), &franz.Record{Key: k, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	s := open(t, addr, kafkaconn.Security{})
	defer s.Close()
	seen := map[string]bool{}
	for i, it := range next(t, s, len(keys)) {
		if !utf8.ValidString(it.ID) || seen[it.ID] || sources.UnescapeID(it.ID) != string(keys[i]) {
			t.Fatalf("key %q: id %q (seen before: %v)", keys[i], it.ID, seen[it.ID])
		}
		seen[it.ID] = true
		it.Ack(nil)
	}
}

// Under a memory budget, Next counts each value before handing it on and
// waits while the budget cannot hold the next one (fetching pauses): the
// release of an earlier message lets it through. A wait that ends with its
// context leaves that message uncommitted (a new consumer gets it), and a
// value larger than the whole budget is an error item without its bytes.
func TestBudgetPausesFetching(t *testing.T) {
	_, addr := cluster(t, kfake.SeedTopics(1, "big"))
	cl, err := franz.NewClient(franz.SeedBrokers(addr), franz.DefaultProduceTopic("big"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sizes := []int{300 << 10, 300 << 10, 900 << 10, 300 << 10}
	for i, n := range sizes {
		r := &franz.Record{Key: []byte(fmt.Sprint("m", i)), Value: bytes.Repeat([]byte{byte(i)}, n)}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	b := stages.NewBudget(800 << 10) // 200 KiB for inputs: one message at a time
	s, err := Open(Config{Brokers: []string{addr}, Topics: []string{"big"}, Group: "g", SessionTimeout: 6 * time.Second, CommitInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.SetBudget(b)
	first := next(t, s, 1)[0]
	if first.Release == nil || b.InUse() != int64(len(first.Data)) || len(first.Data) != sizes[0] {
		t.Fatalf("first: %d bytes, budget holds %d, release %v", len(first.Data), b.InUse(), first.Release != nil)
	}
	// The second waits for the first's bytes.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if it, err := s.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next while the budget holds the first: item %q, err %v; want it to wait", it.ID, err)
	}
	first.Ack(nil)
	first.Release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A new consumer of the group starts at the message whose wait ended.
	s2, err := Open(Config{Brokers: []string{addr}, Topics: []string{"big"}, Group: "g", SessionTimeout: 6 * time.Second, CommitInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s2.SetBudget(b)
	items := next(t, s2, 1)
	if items[0].ID != "m1" {
		t.Fatalf("after the abort: %q, want m1 again", items[0].ID)
	}
	items[0].Release()
	items = append(items, next(t, s2, 2)...)
	if huge := items[1]; huge.ID != "m2" || huge.Data != nil || !errors.Is(huge.Err, stages.ErrOverBudget) || huge.Release != nil {
		t.Errorf("m2 (900 KiB): id %q, %d bytes, err %v; want the budget's refusal without its bytes", huge.ID, len(huge.Data), huge.Err)
	}
	if it := items[2]; it.ID != "m3" || len(it.Data) != sizes[3] || it.Release == nil {
		t.Errorf("m3: id %q, %d bytes", it.ID, len(it.Data))
	}
	items[2].Release()
	for _, it := range items {
		it.Ack(nil)
	}
	if b.InUse() != 0 || b.Peak() > b.Size() {
		t.Errorf("budget: %d in use, peak %d of %d", b.InUse(), b.Peak(), b.Size())
	}
}

// Against a broker host that does not resolve, each retry is one log
// line (the probe's, with its backoff), not one more per failed fetch;
// and closing a consumer that never joined its group does not say it left
// it.
func TestUnreachableBrokerLogsOncePerAttempt(t *testing.T) {
	var logs logtest.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	defer slog.SetDefault(prev)
	s, err := Open(Config{Brokers: []string{"no-such-broker.invalid:9092"}, Topics: []string{"in"}, Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Next(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for (s.fetchErrors.Load() < 2 || strings.Count(logs.String(), "brokers unreachable") < 2) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	s.Close()
	out := logs.String()
	if s.fetchErrors.Load() < 2 || strings.Count(out, "brokers unreachable") < 2 {
		t.Fatalf("%d fetch errors, logs:\n%s", s.fetchErrors.Load(), out)
	}
	if strings.Contains(out, "fetch failed") {
		t.Errorf("a fetch failure logged beside the probe's line:\n%s", out)
	}
	if strings.Contains(out, "left group") || !strings.Contains(out, "closed before joining") {
		t.Errorf("closing a consumer that never joined:\n%s", out)
	}
}

// An abort acks everything in flight with its cause: that logs one error
// line per partition (its first such offset), not one per message, and
// Close sums up the rest per partition.
func TestFailedAcksLogOncePerPartition(t *testing.T) {
	_, addr := cluster(t)
	produce(t, addr, 12)
	var logs logtest.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	defer slog.SetDefault(prev)
	s := open(t, addr, kafkaconn.Security{})
	items := next(t, s, 12)
	abort := errors.New("run aborted")
	for _, it := range items {
		it.Ack(abort)
	}
	st := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if n := strings.Count(out, `level=ERROR msg="kafka: output not durable`); n != 3 {
		t.Errorf("%d error lines for 12 failed acks on 3 partitions, want 3:\n%s", n, out)
	}
	failed := 0
	for _, p := range st.Partitions {
		failed += p.Failed
		if p.Failed > 0 && !strings.Contains(out, fmt.Sprintf("partition=%d failed=%d", p.Partition, p.Failed)) {
			t.Errorf("no close summary for partition %d (%d failed):\n%s", p.Partition, p.Failed, out)
		}
	}
	if failed != 12 || st.Failed != 12 {
		t.Errorf("partitions count %d failed, the consumer %d; want 12", failed, st.Failed)
	}
}

// An abort fails every message in flight (up to --max-in-flight): each
// partition logs its first failure, not one error line per message; a
// failure after a durable ack on the partition is logged again.
func TestFailedAcksLogOncePerRun(t *testing.T) {
	var logs logtest.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	defer slog.SetDefault(prev)
	s := &Source{sem: make(chan struct{}, 100), parts: map[partKey]*partState{}, E2E: NewHistogram(LatencyBuckets), Process: NewHistogram(LatencyBuckets)}
	var items []func(error)
	for off := int64(0); off < 20; off++ {
		for part := 0; part < 2; part++ {
			s.sem <- struct{}{}
			it := s.item(kgo.Message{Topic: "in", Partition: part, Offset: off, Value: []byte{1}})
			items = append(items, it.Ack)
		}
	}
	abort := errors.New("interrupted twice")
	items[0](nil) // partition 0, offset 0: durable
	for _, a := range items[1:38] {
		a(abort)
	}
	if n := strings.Count(logs.String(), "output not durable"); n != 2 {
		t.Errorf("37 failed acks on 2 partitions logged %d error lines, want 2:\n%s", n, logs.String())
	}
	items[38](nil) // partition 0, offset 19: durable again
	items[39](abort)
	if n := strings.Count(logs.String(), "output not durable"); n != 2 {
		t.Errorf("partition 1 still failing: %d error lines, want 2", n)
	}
	if s.failed.Load() != 38 || s.acked.Load() != 2 {
		t.Errorf("failed %d, acked %d; want 38, 2", s.failed.Load(), s.acked.Load())
	}
}

// A broker that answers but has no such input topic (a typo in --topic,
// no auto-creation) is not reported as unreachable: the log line and the
// readiness reason say the topics are missing.
func TestMissingTopicIsNotAnUnreachableBroker(t *testing.T) {
	_, addr := cluster(t)
	var logs logtest.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	defer slog.SetDefault(prev)
	s, err := Open(Config{Brokers: []string{addr}, Topics: []string{"no-such-topic"}, Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Next(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "input topics missing") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	missing, ready := s.TopicsMissing(), s.Ready()
	cancel()
	<-done
	s.Close()
	out := logs.String()
	if !strings.Contains(out, "input topics missing on the brokers") || strings.Contains(out, "brokers unreachable") {
		t.Errorf("logs:\n%s", out)
	}
	if !missing || ready {
		t.Errorf("TopicsMissing %v, Ready %v: want true, false", missing, ready)
	}
}

// Every metric the consumer exports is named in the streaming guide's
// metrics table.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/streaming.md")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 64)
	sourceCollector{}.Describe(ch)
	close(ch)
	n := 0
	for d := range ch {
		m := regexp.MustCompile(`fqName: "([a-z_]+)"`).FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		n++
		if !strings.Contains(string(doc), "`"+m[1]) {
			t.Errorf("%s is not in docs/streaming.md", m[1])
		}
	}
	if n < 10 {
		t.Errorf("only %d metrics described", n)
	}
}
