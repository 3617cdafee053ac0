// Package kafkaconn holds how maeembed's Kafka clients reach the brokers:
// TLS, SASL and client settings shared by the consumer (sources/kafka) and
// the producers (sinks/kafka), so one set of flags configures both; the
// metadata probe of the consumer's health and of a worker's start-up
// check (Probe); and which failures are refused credentials or rights,
// which no retry fixes (AuthFailed, Security.AuthError).
package kafkaconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	kgo "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Security is how clients authenticate to the brokers. It is shared by the
// consumer (sources/kafka) and the producers (sinks/kafka), so one set of
// flags configures both.
type Security struct {
	TLS                bool   `yaml:"tls"`                    // connect with TLS
	CAFile             string `yaml:"tls_ca" config:"path"`   // PEM roots; default the system pool
	CertFile           string `yaml:"tls_cert" config:"path"` // client certificate (mTLS)
	KeyFile            string `yaml:"tls_key" config:"path"`  // its key
	InsecureSkipVerify bool   `yaml:"tls_insecure"`           // do not verify the broker certificate (tests only)
	SASLMechanism      string `yaml:"sasl_mechanism"`         // "", plain, scram-sha-256, scram-sha-512
	SASLUsername       string `yaml:"sasl_username"`          //
	SASLPassword       string `yaml:"sasl_password"`          // prefer the MAEEMBED_SASL_PASSWORD environment variable
	ClientID           string `yaml:"client_id"`              // default "maeembed"
	DialTimeout        string `yaml:"dial_timeout"`           // e.g. "10s"
}

// tlsOn reports whether TLS is on: --tls, or a CA or client certificate
// file given.
func (s Security) tlsOn() bool {
	return s.TLS || s.CAFile != "" || s.CertFile != "" || s.KeyFile != ""
}

// TLSConfig builds the tls.Config, or nil when TLS is off.
func (s Security) TLSConfig() (*tls.Config, error) {
	if !s.tlsOn() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.InsecureSkipVerify}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: kafka tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: kafka tls ca: no PEM certificate found", s.CAFile)
		}
		c.RootCAs = pool
	}
	if s.CertFile != "" || s.KeyFile != "" {
		if s.CertFile == "" || s.KeyFile == "" {
			return nil, errors.New("--tls-cert and --tls-key go together: a client certificate and its key (PEM files)")
		}
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: kafka tls client certificate: %w", s.CertFile, s.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Validate reports what the clients would refuse only when they connect,
// so that a worker fails on it at start, before loading its model: an
// unknown SASL mechanism, a dial timeout that is not a duration, TLS files
// that cannot be read, a client certificate without its key (or the
// reverse), a SASL mechanism without a user, a user or password without a
// mechanism (SASL would be off), --tls-insecure without TLS (it would do
// nothing). Errors name the flag or key. The password checked is the
// flag's (or config key's): a $MAEEMBED_SASL_PASSWORD meant for brokers
// with SASL is merged in after Validate, so it is no error without one.
func (s Security) Validate() error {
	if _, err := s.Mechanism(); err != nil {
		return fmt.Errorf("--sasl-mechanism: %w", err)
	}
	switch {
	case s.SASLMechanism != "" && s.SASLUsername == "":
		return fmt.Errorf("--sasl-mechanism %s needs --sasl-username", s.SASLMechanism)
	case s.SASLMechanism == "" && s.SASLUsername != "":
		return errors.New("--sasl-username without --sasl-mechanism: SASL would be off; give --sasl-mechanism plain, scram-sha-256 or scram-sha-512")
	case s.SASLMechanism == "" && s.SASLPassword != "":
		return errors.New("--sasl-password without --sasl-mechanism: SASL would be off; give --sasl-mechanism plain, scram-sha-256 or scram-sha-512 and --sasl-username")
	case s.InsecureSkipVerify && !s.tlsOn():
		return errors.New("--tls-insecure without --tls: TLS would be off and the flag would do nothing; add --tls (or leave --tls-insecure out)")
	}
	if _, err := s.dialTimeout(); err != nil {
		return fmt.Errorf("dial_timeout: %w", err)
	}
	_, err := s.TLSConfig()
	return err
}

// Mechanism builds the SASL mechanism, or nil when SASL is off.
func (s Security) Mechanism() (sasl.Mechanism, error) {
	switch strings.ToLower(s.SASLMechanism) {
	case "":
		return nil, nil
	case "plain":
		return plain.Mechanism{Username: s.SASLUsername, Password: s.SASLPassword}, nil
	case "scram-sha-256":
		return scram.Mechanism(scram.SHA256, s.SASLUsername, s.SASLPassword)
	case "scram-sha-512":
		return scram.Mechanism(scram.SHA512, s.SASLUsername, s.SASLPassword)
	}
	return nil, fmt.Errorf("kafka sasl mechanism %q: want plain, scram-sha-256 or scram-sha-512", s.SASLMechanism)
}

func (s Security) dialTimeout() (time.Duration, error) {
	if s.DialTimeout == "" {
		return 10 * time.Second, nil
	}
	d, err := time.ParseDuration(s.DialTimeout)
	if err != nil {
		return 0, fmt.Errorf("kafka dial timeout: %w", err)
	}
	return d, nil
}

func (s Security) clientID() string {
	if s.ClientID == "" {
		return "maeembed"
	}
	return s.ClientID
}

// clientParts builds what the consumer's Dialer and the producers'
// Transport share, so both validate the same flags the same way.
func (s Security) clientParts() (*tls.Config, sasl.Mechanism, time.Duration, error) {
	t, err := s.TLSConfig()
	if err != nil {
		return nil, nil, 0, err
	}
	m, err := s.Mechanism()
	if err != nil {
		return nil, nil, 0, err
	}
	to, err := s.dialTimeout()
	if err != nil {
		return nil, nil, 0, err
	}
	return t, m, to, nil
}

// Dialer is the kafka-go Dialer of the consumer.
func (s Security) Dialer() (*kgo.Dialer, error) {
	t, m, to, err := s.clientParts()
	if err != nil {
		return nil, err
	}
	return &kgo.Dialer{ClientID: s.clientID(), Timeout: to, DualStack: true, TLS: t, SASLMechanism: m}, nil
}

// Transport is the kafka-go Transport of the producers.
func (s Security) Transport() (*kgo.Transport, error) {
	t, m, to, err := s.clientParts()
	if err != nil {
		return nil, err
	}
	return &kgo.Transport{ClientID: s.clientID(), DialTimeout: to, TLS: t, SASL: m}, nil
}
