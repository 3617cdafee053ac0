package kafka

import (
	"errors"
	"strings"
	"testing"

	kgo "github.com/segmentio/kafka-go"
)

// A topic's missing-topic error is reported once (fail's first), also when
// other failures of the topic came before it; repeats are not.
func TestFailReportsAMissingTopicOnce(t *testing.T) {
	p, err := NewProducer(Config{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	other := errors.New("connection reset")
	for i, c := range []struct {
		err   error
		first bool
	}{
		{other, true}, {other, false},
		{kgo.UnknownTopicOrPartition, true}, {kgo.UnknownTopicOrPartition, false},
	} {
		if got := p.fail([]string{"t"}, c.err); got != c.first {
			t.Errorf("attempt %d (%v): first %v, want %v", i+1, c.err, got, c.first)
		}
	}
	if err := p.Failing(); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Failing() = %v, want the missing topic", err)
	}
}
