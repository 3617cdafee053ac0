package kafkaconn

import "github.com/spf13/pflag"

// AddFlags adds the TLS and SASL flags (--tls, --tls-ca, --tls-cert,
// --tls-key, --tls-insecure, --sasl-mechanism, --sasl-username,
// --sasl-password) and --client-id; their config-file keys are s's yaml
// tags. DialTimeout has a key and no flag.
func (s *Security) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&s.TLS, "tls", s.TLS, "connect to the brokers with TLS")
	fs.StringVar(&s.CAFile, "tls-ca", s.CAFile, "PEM file of the CA certificates")
	fs.StringVar(&s.CertFile, "tls-cert", s.CertFile, "client certificate (PEM)")
	fs.StringVar(&s.KeyFile, "tls-key", s.KeyFile, "client key (PEM)")
	fs.BoolVar(&s.InsecureSkipVerify, "tls-insecure", s.InsecureSkipVerify, "do not verify the broker certificate")
	fs.StringVar(&s.SASLMechanism, "sasl-mechanism", s.SASLMechanism, "plain | scram-sha-256 | scram-sha-512")
	fs.StringVar(&s.SASLUsername, "sasl-username", s.SASLUsername, "SASL user")
	fs.StringVar(&s.SASLPassword, "sasl-password", s.SASLPassword, "SASL password (better: $MAEEMBED_SASL_PASSWORD)")
	fs.StringVar(&s.ClientID, "client-id", s.ClientID, "Kafka client id (default maeembed)")
}
