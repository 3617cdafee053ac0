package kafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	franz "github.com/twmb/franz-go/pkg/kgo"

	"github.com/maeembed/maeembed/kafkaconn"
)

// selfSigned makes a certificate for 127.0.0.1 and writes its PEM to a file.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, path
}

// The consumer talks TLS, verifying the broker against --tls-ca; without
// the CA it refuses the broker.
func TestTLS(t *testing.T) {
	cert, pool, caFile := selfSigned(t)
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
