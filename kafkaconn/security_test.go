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
		{Security{DialTimeout: "bogus"}, "dial_timeout"},
		{Security{TLS: true, CAFile: filepath.Join(t.TempDir(), "missing.pem")}, "kafka tls ca"},
	} {
		err := tc.s.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: err %v, want %q", tc.s, err, tc.want)
		}
	}
}
