package kafka

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// exported lists the partitions (of "in") for which s exports
// maeembed_kafka_consumer_lag and maeembed_kafka_committed_offset; the two
// must list the same ones.
func exported(t *testing.T, s *Source) []string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	per := map[string][]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "partition" {
					per[mf.GetName()] = append(per[mf.GetName()], l.GetValue())
				}
			}
		}
	}
	lag, com := per["maeembed_kafka_consumer_lag"], per["maeembed_kafka_committed_offset"]
	slices.Sort(lag)
	slices.Sort(com)
	if !slices.Equal(lag, com) {
		t.Fatalf("lag for partitions %v, committed offset for %v", lag, com)
	}
	return lag
}

// A worker that loses partitions to a rebalance stops exporting their lag
// and committed offset: the worker that now owns them reports them, and
// a frozen copy would keep lag alerts firing and double-count sums.
func TestRevokedPartitionsLeaveMetrics(t *testing.T) {
	_, addr := cluster(t)
	produce(t, addr, 30)
	cfg := Config{Brokers: []string{addr}, Topics: []string{"in"}, Group: "g", SessionTimeout: 6 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond, CommitInterval: 50 * time.Millisecond}
	s1, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	for _, it := range next(t, s1, 30) {
		it.Ack(nil)
	}
	if got := exported(t, s1); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("alone in the group, partitions %v exported, want all three", got)
	}

	// Both workers consume (and ack) whatever they are given from here on.
	s2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for _, s := range []*Source{s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				it, err := s.Next(ctx)
				if err != nil {
					return
				}
				it.Ack(nil)
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for len(exported(t, s1)) == 3 {
		if time.Now().After(deadline) {
			t.Fatal("after a second worker joined, the first still exports all three partitions")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// New messages on every partition: each is fetched by its new owner,
	// and between them the workers export each partition once.
	produce(t, addr, 30)
	deadline = time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := got
		mu.Unlock()
		a, b := exported(t, s1), exported(t, s2)
		all := slices.Sorted(slices.Values(append(slices.Clone(a), b...)))
		if n >= 30 && slices.Equal(all, []string{"0", "1", "2"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 30 new messages consumed; partitions exported by the first worker %v, by the second %v: want each of 0, 1, 2 once", n, a, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The assignment is read from kafka-go's log line; another shape of it is
// no assignment (and no panic).
func TestAssignmentShapes(t *testing.T) {
	if _, ok := assignment([]any{map[string]int64{"in": 1}}); ok {
		t.Error("a map keyed by strings read as an assignment")
	}
	if _, ok := assignment(nil); ok {
		t.Error("no argument read as an assignment")
	}
	type tp struct {
		topic     string
		partition int32
	}
	set, ok := assignment([]any{map[tp]int64{{"in", 2}: 5, {"in", 0}: 1}})
	if !ok || len(set) != 2 || !set[partKey{"in", 2}] || !set[partKey{"in", 0}] {
		t.Errorf("assignment %v, %v", set, ok)
	}
}
