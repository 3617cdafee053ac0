package kafkaconn

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	kgo "github.com/segmentio/kafka-go"
)

// Validate refuses, before any connection, what the clients would refuse
// when they connect, naming the flag or key.
func TestSecurityValidate(t *testing.T) {
	for _, tc := range []struct {
		s    Security
		want string // "" = valid
	}{
		{Security{}, ""},
		{Security{SASLMechanism: "SCRAM-SHA-512", SASLUsername: "u", SASLPassword: "p", DialTimeout: "3s"}, ""},
		{Security{SASLMechanism: "foo"}, "--sasl-mechanism"},
		{Security{SASLMechanism: "plain"}, "--sasl-username"},
		{Security{SASLUsername: "u", SASLPassword: "p"}, "--sasl-mechanism"},
		{Security{SASLPassword: "p"}, "--sasl-password without --sasl-mechanism"},
		{Security{InsecureSkipVerify: true}, "--tls-insecure without --tls"},
		{Security{TLS: true, InsecureSkipVerify: true}, ""},
		{Security{DialTimeout: "bogus"}, "dial_timeout"},
		{Security{TLS: true, CAFile: filepath.Join(t.TempDir(), "missing.pem")}, "--tls-ca"},
		{Security{TLS: true, CertFile: "c.pem"}, "--tls-key"},
		{Security{TLS: true, KeyFile: "k.pem"}, "--tls-cert"},
		{Security{KeyFile: "k.pem"}, "--tls-cert"}, // a key alone, without --tls: not silently plain text
		{Security{TLS: true, CertFile: filepath.Join(t.TempDir(), "c.pem"), KeyFile: "k.pem"}, "--tls-cert"},
	} {
		err := tc.s.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: err %v, want %q", tc.s, err, tc.want)
		}
	}
}

// AuthError names the broker that refused, the mechanism and the user,
// tells authentication from authorization, and never shows the password.
func TestAuthError(t *testing.T) {
	s := Security{SASLMechanism: "scram-sha-512", SASLUsername: "worker", SASLPassword: "hunter2"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&BrokerError{Broker: "b2:9092", Err: kgo.SASLAuthenticationFailed}, `authentication failed at broker b2:9092 with SASL mechanism SCRAM-SHA-512 as user "worker"`},
		{fmt.Errorf("join: %w", kgo.UnsupportedSASLMechanism), `authentication failed at brokers b1:9092,b2:9092 with SASL mechanism SCRAM-SHA-512`},
		{kgo.GroupAuthorizationFailed, `not authorized at brokers b1:9092,b2:9092`},
	} {
		if !AuthFailed(tc.err) {
			t.Errorf("AuthFailed(%v) = false", tc.err)
		}
		msg := s.AuthError([]string{"b1:9092", "b2:9092"}, tc.err).Error()
		if !strings.Contains(msg, tc.want) || strings.Contains(msg, "hunter2") {
			t.Errorf("%q: want %q, without the password", msg, tc.want)
		}
	}
	if AuthFailed(errors.New("EOF")) || AuthFailed(kgo.UnknownTopicOrPartition) {
		t.Error("AuthFailed holds for an outage or a missing topic")
	}
}

// Principal names the user the brokers know the client as, for errors:
// the SASL user (never the password) or the client certificate.
func TestPrincipal(t *testing.T) {
	for _, c := range []struct {
		s    Security
		want string
	}{
		{Security{}, ""},
		{Security{TLS: true}, ""},
		{Security{SASLMechanism: "plain", SASLUsername: "u", SASLPassword: "secret"}, `user "u"`},
		{Security{CertFile: "c.pem", KeyFile: "k.pem"}, "the holder of --tls-cert c.pem"},
	} {
		if got := c.s.Principal(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.s, got, c.want)
		}
	}
}
