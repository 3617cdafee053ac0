package kafka

import (
	"crypto/tls"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	franz "github.com/twmb/franz-go/pkg/kgo"

	"github.com/maeembed/maeembed/internal/testtls"
	"github.com/maeembed/maeembed/kafkaconn"
)

// The consumer talks TLS, verifying the broker against --tls-ca; without
// the CA it refuses the broker.
func TestTLS(t *testing.T) {
	cert, pool, caFile := testtls.SelfSigned(t)
	_, addr := cluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	produce(t, addr, 3, franz.DialTLSConfig(&tls.Config{RootCAs: pool}))

	s := open(t, addr, kafkaconn.Security{TLS: true, CAFile: caFile})
	defer s.Close()
	for _, it := range next(t, s, 3) {
		it.Ack(nil)
	}

	untrusted := open(t, addr, kafkaconn.Security{TLS: true})
	defer untrusted.Close()
	if err := untrusted.probe(t.Context()); err == nil {
		t.Error("broker with an unknown CA accepted")
	}
}
