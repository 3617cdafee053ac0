package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	kgo "github.com/segmentio/kafka-go"
)

// ErrTopicMissing: a broker answered a metadata request without a topic
// asked for (or with no partitions of it).
var ErrTopicMissing = errors.New("topic missing")

// BrokerError is a failure at one broker.
type BrokerError struct {
	Broker string
	Err    error
}

func (e *BrokerError) Error() string { return e.Broker + ": " + e.Err.Error() }
func (e *BrokerError) Unwrap() error { return e.Err }

// Probe asks the brokers in turn for the partitions of topics (a
// metadata request), each within 5 s: nil once one answers with all of
// them. With create it asks for the topics by name, which brokers that
// create topics on demand take as a request to create them (as the
// consumer group's join does for its input topics anyway); without, it
// asks for every topic and looks for these, which creates none. A broker
// that answers without one gives an error wrapping ErrTopicMissing; one
// that refuses the client's credentials or rights (AuthFailed) ends the
// probe with that error, as a *BrokerError, since another broker would
// refuse them alike. The other failures (unreachable brokers) are
// joined, each a *BrokerError. The consumer's health probe and a
// worker's start-up check share it.
func Probe(ctx context.Context, d *kgo.Dialer, brokers, topics []string, create bool) error {
	var errs []error
	for _, b := range brokers {
		err := probeOne(ctx, d, b, topics, create)
		if err == nil {
			return nil
		}
		be := &BrokerError{Broker: b, Err: err}
		if AuthFailed(err) {
			return be
		}
		errs = append(errs, be)
	}
	return errors.Join(errs...)
}

func probeOne(ctx context.Context, d *kgo.Dialer, broker string, topics []string, create bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", broker)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if !create {
		ps, err := conn.ReadPartitions() // every topic: names none to create
		if err != nil {
			return err
		}
		var missing []string
		for _, t := range topics {
			if !slices.ContainsFunc(ps, func(p kgo.Partition) bool { return p.Topic == t }) {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: %s not among the brokers' topics", ErrTopicMissing, strings.Join(missing, ","))
		}
		return nil
	}
	ps, err := conn.ReadPartitions(topics...)
	switch {
	case errors.Is(err, kgo.UnknownTopicOrPartition):
		return fmt.Errorf("%w: %w", ErrTopicMissing, err)
	case err == nil && len(ps) == 0:
		return fmt.Errorf("%w: topics %s have no partitions", ErrTopicMissing, strings.Join(topics, ","))
	}
	return err
}

// AuthFailed reports a failure no retry fixes: the brokers refused the
// client's credentials (a wrong SASL password or user, a mechanism they
// do not offer) or its rights (ACLs on a topic, the group or the
// cluster).
func AuthFailed(err error) bool {
	return saslRefused(err) || isAny(err, kgo.TopicAuthorizationFailed, kgo.GroupAuthorizationFailed, kgo.ClusterAuthorizationFailed)
}

// saslRefused reports the failures of AuthFailed that are the
// credentials', not the rights'.
func saslRefused(err error) bool {
	return isAny(err, kgo.SASLAuthenticationFailed, kgo.UnsupportedSASLMechanism, kgo.IllegalSASLState)
}

func isAny(err error, codes ...kgo.Error) bool {
	for _, c := range codes {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

// AuthError is the error of a failure AuthFailed reports: it says that
// authentication (or authorization) failed, naming the broker (that of a
// *BrokerError in err, else those of brokers), the SASL mechanism and
// the user, never the password, and what to check.
func (s Security) AuthError(brokers []string, err error) error {
	where := "brokers " + strings.Join(brokers, ",")
	if be := (*BrokerError)(nil); errors.As(err, &be) {
		where = "broker " + be.Broker
	}
	as := "without SASL (no --sasl-mechanism)"
	if s.SASLMechanism != "" {
		as = fmt.Sprintf("with SASL mechanism %s as user %q", strings.ToUpper(s.SASLMechanism), s.SASLUsername)
	}
	what, check := "authentication failed", "check --sasl-mechanism, --sasl-username and the password, --sasl-password or $MAEEMBED_SASL_PASSWORD"
	if !saslRefused(err) {
		what, check = "not authorized", "grant the user access to the topics and the group, or check --sasl-username"
	}
	return fmt.Errorf("kafka: %s at %s %s (a retry cannot fix it; %s): %w", what, where, as, check, err)
}

// Principal names whom the brokers authenticate the client as, for
// errors: the SASL user, or the TLS client certificate's holder; "" when
// they know it by neither.
func (s Security) Principal() string {
	switch {
	case s.SASLMechanism != "":
		return fmt.Sprintf("user %q", s.SASLUsername)
	case s.CertFile != "":
		return "the holder of --tls-cert " + s.CertFile
	}
	return ""
}
