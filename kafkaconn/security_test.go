package kafkaconn

import (
	"path/filepath"
	"strings"
	"testing"
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
