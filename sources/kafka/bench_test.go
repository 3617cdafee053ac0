package kafka

import (
	"testing"

	kgo "github.com/segmentio/kafka-go"
)

// BenchmarkItemAck is the per-message cost of the consumer's bookkeeping:
// turning a fetched message into an Item and acking it (no broker).
func BenchmarkItemAck(b *testing.B) {
	s := &Source{sem: make(chan struct{}, 1), parts: map[partKey]*partState{}, E2E: NewHistogram(LatencyBuckets), Process: NewHistogram(LatencyBuckets)}
	m := kgo.Message{Topic: "in", Partition: 0, Key: []byte("img-000001.jpg"), Value: make([]byte, 100)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m.Offset = int64(i)
		s.sem <- struct{}{}
		it := s.item(m)
		it.Ack(nil)
	}
}
