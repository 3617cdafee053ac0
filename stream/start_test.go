package stream

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/maeembed/maeembed/engine"
	"github.com/maeembed/maeembed/kafkaconn"
	srckafka "github.com/maeembed/maeembed/sources/kafka"
)

// Brokers with ACLs list only the topics a user may describe: a
// dead-letter topic that exists but that the worker's user may not write
// to looks missing to the start-up check, so its error says that ACLs
// may hide it, naming the user, besides the missing topic and its flag.
// A worker the brokers do not know as a user gets no such guess.
func TestCheckBrokersDLQHiddenByACLs(t *testing.T) {
	read := kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "images", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationRead, Allow: true}
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(1, "images", "dlq"), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("PLAIN", "admin", "admin-pw"), kfake.User("PLAIN", "u", "u-pw", read))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := Config{Consumer: srckafka.Config{Brokers: c.ListenAddrs(), Topics: []string{"images"}, Group: "g",
		Security: kafkaconn.Security{SASLMechanism: "plain", SASLUsername: "u", SASLPassword: "u-pw"}}, DLQTopic: "dlq"}
	err = checkBrokers(context.Background(), cfg)
	for _, want := range []string{`topic "dlq" (--dlq-topic) does not exist`, `hide it from user "u" (ACLs): the worker needs Write on it`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a dead-letter topic the user may not see: %v, want %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "u-pw") {
		t.Errorf("the error shows the password: %v", err)
	}

	// The superuser sees it: no error.
	cfg.Consumer.Security.SASLUsername, cfg.Consumer.Security.SASLPassword = "admin", "admin-pw"
	if err := checkBrokers(context.Background(), cfg); err != nil {
		t.Errorf("the superuser: %v", err)
	}
	// A topic missing for everyone, for the superuser: still the guess
	// (the check cannot tell), still the missing topic first.
	cfg.DLQTopic = "dlq-typo"
	if err := checkBrokers(context.Background(), cfg); err == nil || !strings.HasPrefix(err.Error(), `kafka: topic "dlq-typo" (--dlq-topic) does not exist`) {
		t.Errorf("a missing dead-letter topic: %v", err)
	}
}

// A worker that wrote nothing — drained before any message came, or with
// brokers it never reached — leaves no directory it made behind, as embed
// does; a directory that existed before stays.
func TestWorkerThatWroteNothingLeavesNoDir(t *testing.T) {
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(1, "images"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, brokers := range [][]string{c.ListenAddrs(), {"127.0.0.1:1"}} {
		root := t.TempDir()
		out := filepath.Join(root, "s4", "a", "b")
		cfg := Config{
			Consumer:        srckafka.Config{Brokers: brokers, Topics: []string{"images"}, Group: "g", MaxInFlight: 8},
			Output:          out,
			ShutdownTimeout: 10 * time.Second,
			Engine:          engine.Config{BatchSize: 4, Workers: 1, BatchLatency: 20 * time.Millisecond, FlushInterval: 50 * time.Millisecond},
		}
		parent, drain := context.WithCancel(context.Background())
		stop := engine.OnSignals(parent, 10*time.Second)
		done := make(chan error, 1)
		go func() { _, err := Run(stop, cfg, Loader{Open: openTiny}); done <- err }()
		// Drain once the worker holds its output (its directory made).
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(out); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the worker made no output directory")
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		drain()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("brokers %v: %v", brokers, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the worker did not stop after a drain")
		}
		stop.Release()
		if left, _ := os.ReadDir(root); len(left) != 0 {
			t.Errorf("brokers %v: a worker that wrote nothing left %s in the directory holding its -o", brokers, left[0].Name())
		}
	}
}
