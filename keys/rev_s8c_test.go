package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// rev-s8c: x5c must be the chain in certification order, leaf first,
// "each subsequent certificate ... the one used to certify the previous
// one" (RFC 7515 §4.1.6; UDAP general.md §7.1). ParsePEM checks only that
// the leaf comes first: a chain file holding leaf, root, intermediate is
// accepted and sent in that order as x5c.
func TestRevS8CChainIsInCertificationOrder(t *testing.T) {
	now := time.Now()
	mk := func(cn string, ca bool, pub, signKey any, parent *x509.Certificate, serial int64) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), BasicConstraintsValid: true, IsCA: ca,
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := mk("root", true, &rootKey.PublicKey, rootKey, nil, 1)
	inter := mk("intermediate", true, &interKey.PublicKey, rootKey, root, 2)
	leaf := mk("leaf", false, &leafKey.PublicKey, interKey, inter, 3)

	var certPEM []byte
	for _, c := range []*x509.Certificate{leaf, root, inter} {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(leafKey)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	m, err := ParsePEM(certPEM, keyPEM)
	if err != nil {
		return // refused: fine
	}
	for i := 0; i+1 < len(m.Chain); i++ {
		if err := m.Chain[i].CheckSignatureFrom(m.Chain[i+1]); err != nil {
			t.Errorf("x5c[%d] (%s) is not certified by x5c[%d] (%s): the chain goes out as x5c out of order", i, m.Chain[i].Subject.CommonName, i+1, m.Chain[i+1].Subject.CommonName)
		}
	}
}
