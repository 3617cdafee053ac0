package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	kgo "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/maeembed/maeembed/kafkaconn"
)

// A produce the brokers refuse for the client's rights (no write ACL on
// the topic) is not retried: it fails at once with an error that says
// the user is not authorized, naming the mechanism and the user, never
// the password. (Refused credentials are the consumer's to report: the
// producer's transport sees only a closed connection.)
func TestProduceNotAuthorized(t *testing.T) {
	describe := func(topic string) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: topic, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true}
	}
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(1, "out"), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("PLAIN", "admin", "admin"), kfake.User("PLAIN", "u", "secret-pw", describe("out")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	p, err := NewProducer(Config{Brokers: []string{addr}, Security: kafkaconn.Security{SASLMechanism: "plain", SASLUsername: "u", SASLPassword: "secret-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = p.Produce(ctx, kgo.Message{Topic: "out", Value: []byte("v")})
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "not authorized") || !strings.Contains(err.Error(), `PLAIN as user "u"`) ||
		strings.Contains(err.Error(), "pw") || p.Retries() != 0 {
		t.Errorf("Produce: %v (context %v, %d retries), want at once not authorized, naming PLAIN and the user, not the password", err, ctx.Err(), p.Retries())
	}
}
