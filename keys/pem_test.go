package keys_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cqgate/cqgate/keys"
)

func TestParsePEM(t *testing.T) {
	_, rsaCertPEM := makeCert(t, rsaKey2048(), certOpts{cn: "rsa leaf"})
	_, p256CertPEM := makeCert(t, ecKeyP256(), certOpts{cn: "p256 leaf"})
	_, p384CertPEM := makeCert(t, ecKeyP384(), certOpts{cn: "p384 leaf"})
	_, rsa1024CertPEM := makeCert(t, rsaKey1024(), certOpts{})
	_, p521CertPEM := makeCert(t, ecKeyP521(), certOpts{})
	_, edCertPEM := makeCert(t, edKey(), certOpts{})

	// A two-level chain: CA (P-384) -> leaf (P-256 "b").
	caCert, caCertPEM := makeCert(t, ecKeyP384(), certOpts{cn: "test CA", isCA: true})
	leafCert, leafCertPEM := makeCert(t, ecKeyP256b(), certOpts{cn: "chained leaf", parent: caCert, parentKey: ecKeyP384()})
	chainLeafFirst := concat(leafCertPEM, caCertPEM)
	chainRootFirst := concat(caCertPEM, leafCertPEM)
	// A three-level chain: root (P-384) -> intermediate (P-256) -> leaf
	// (RSA), and a CA that certified none of them.
	rootCert, rootPEM := makeCert(t, ecKeyP384(), certOpts{cn: "root CA", isCA: true})
	interCert, interPEM := makeCert(t, ecKeyP256(), certOpts{cn: "intermediate CA", isCA: true, parent: rootCert, parentKey: ecKeyP384()})
	_, deepLeafPEM := makeCert(t, rsaKey2048(), certOpts{cn: "deep leaf", parent: interCert, parentKey: ecKeyP256()})
	_, strangerPEM := makeCert(t, ecKeyP256b(), certOpts{cn: "unrelated CA", isCA: true})

	p256Key := sec1PEM(t, ecKeyP256())
	ecParams := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")

	encryptedLegacy := pem.EncodeToMemory(&pem.Block{
		Type:    "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   bytes.Repeat([]byte{0x5a}, 1200),
	})
	encryptedPKCS8 := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: bytes.Repeat([]byte{0x42}, 300)})
	truncatedKey := truncatePEM(t, pkcs8PEM(t, rsaKey2048()))
	garbage := []byte("this is not PEM at all; garbage-0xDEADBEEF-s3cr3t")

	tests := []struct {
		name      string
		cert, key []byte
		wantErr   error  // errors.Is target; nil with wantMsg "" means success
		wantMsg   string // substring of the error
		wantType  any    // the Signer's dynamic type on success
		wantChain []string
		wantPub   crypto.PublicKey
	}{
		{name: "RSA PKCS#1", cert: rsaCertPEM, key: pkcs1PEM(rsaKey2048()), wantType: &rsa.PrivateKey{}, wantChain: []string{"rsa leaf"}, wantPub: rsaKey2048().Public()},
		{name: "RSA PKCS#8", cert: rsaCertPEM, key: pkcs8PEM(t, rsaKey2048()), wantType: &rsa.PrivateKey{}, wantChain: []string{"rsa leaf"}, wantPub: rsaKey2048().Public()},
		{name: "EC P-256 SEC1", cert: p256CertPEM, key: p256Key, wantType: &ecdsa.PrivateKey{}, wantChain: []string{"p256 leaf"}, wantPub: ecKeyP256().Public()},
		{name: "EC P-256 PKCS#8", cert: p256CertPEM, key: pkcs8PEM(t, ecKeyP256()), wantType: &ecdsa.PrivateKey{}, wantChain: []string{"p256 leaf"}, wantPub: ecKeyP256().Public()},
		{name: "EC P-256 SEC1 after EC PARAMETERS", cert: p256CertPEM, key: concat(ecParams, p256Key), wantType: &ecdsa.PrivateKey{}, wantChain: []string{"p256 leaf"}, wantPub: ecKeyP256().Public()},
		{name: "EC P-384 SEC1", cert: p384CertPEM, key: sec1PEM(t, ecKeyP384()), wantType: &ecdsa.PrivateKey{}, wantChain: []string{"p384 leaf"}, wantPub: ecKeyP384().Public()},
		{name: "chain of 2 leaf first", cert: chainLeafFirst, key: pkcs8PEM(t, ecKeyP256b()), wantType: &ecdsa.PrivateKey{}, wantChain: []string{"chained leaf", "test CA"}, wantPub: ecKeyP256b().Public()},
		// x5c must be in certification order (RFC 7515 §4.1.6): a chain
		// file listing the root before the intermediate is put in order.
		{name: "chain of 3 in order", cert: concat(deepLeafPEM, interPEM, rootPEM), key: pkcs8PEM(t, rsaKey2048()), wantType: &rsa.PrivateKey{},
			wantChain: []string{"deep leaf", "intermediate CA", "root CA"}, wantPub: rsaKey2048().Public()},
		{name: "chain of 3 out of order is ordered", cert: concat(deepLeafPEM, rootPEM, interPEM), key: pkcs8PEM(t, rsaKey2048()), wantType: &rsa.PrivateKey{},
			wantChain: []string{"deep leaf", "intermediate CA", "root CA"}, wantPub: rsaKey2048().Public()},
		{name: "combined cert and key file", cert: concat(p256CertPEM, p256Key), key: concat(p256CertPEM, p256Key), wantType: &ecdsa.PrivateKey{}, wantChain: []string{"p256 leaf"}, wantPub: ecKeyP256().Public()},

		{name: "chain root first", cert: chainRootFirst, key: pkcs8PEM(t, ecKeyP256b()), wantErr: keys.ErrKeyMismatch, wantMsg: "leaf certificate first"},
		{name: "chain with a gap", cert: concat(deepLeafPEM, rootPEM), key: pkcs8PEM(t, rsaKey2048()), wantErr: keys.ErrChainOrder,
			wantMsg: `(subject "CN=deep leaf,O=cqgate tests", serial `},
		{name: "chain with an unrelated certificate", cert: concat(deepLeafPEM, interPEM, strangerPEM, rootPEM), key: pkcs8PEM(t, rsaKey2048()),
			wantErr: keys.ErrChainOrder, wantMsg: `#3 (subject "CN=unrelated CA,O=cqgate tests", serial `},
		{name: "mismatched key", cert: p256CertPEM, key: sec1PEM(t, ecKeyP256b()), wantErr: keys.ErrKeyMismatch, wantMsg: `leaf subject "CN=p256 leaf,O=cqgate tests"`},
		{name: "mismatched algorithm", cert: rsaCertPEM, key: p256Key, wantErr: keys.ErrKeyMismatch},
		{name: "RSA 1024 refused", cert: rsa1024CertPEM, key: pkcs1PEM(rsaKey1024()), wantErr: keys.ErrUnsupportedKey, wantMsg: "RSA key has 1024 bits, want at least 2048"},
		{name: "P-521 refused", cert: p521CertPEM, key: sec1PEM(t, ecKeyP521()), wantErr: keys.ErrUnsupportedKey, wantMsg: "ECDSA curve P-521"},
		{name: "Ed25519 refused", cert: edCertPEM, key: pkcs8PEM(t, edKey()), wantErr: keys.ErrUnsupportedKey, wantMsg: "ed25519"},
		{name: "encrypted legacy PEM", cert: rsaCertPEM, key: encryptedLegacy, wantErr: keys.ErrEncryptedKey},
		{name: "encrypted PKCS#8", cert: rsaCertPEM, key: encryptedPKCS8, wantErr: keys.ErrEncryptedKey},
		{name: "garbage key", cert: rsaCertPEM, key: garbage, wantErr: keys.ErrNoPrivateKey},
		{name: "garbage cert", cert: garbage, key: pkcs1PEM(rsaKey2048()), wantErr: keys.ErrNoCertificate},
		{name: "truncated key DER", cert: rsaCertPEM, key: truncatedKey, wantMsg: `parsing "PRIVATE KEY" block of the private key PEM`},
		{name: "corrupt certificate DER", cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 0x01}}), key: p256Key, wantMsg: "parsing certificate #1"},
		{name: "key given as certificate", cert: p256Key, key: p256Key, wantErr: keys.ErrNoCertificate},
		{name: "two keys", cert: p256CertPEM, key: concat(p256Key, sec1PEM(t, ecKeyP256b())), wantMsg: "holds 2 private keys"},
		{name: "empty key", cert: rsaCertPEM, key: nil, wantErr: keys.ErrNoPrivateKey},
		{name: "empty cert", cert: nil, key: p256Key, wantErr: keys.ErrNoCertificate},
		{name: "both empty", cert: []byte{}, key: []byte{}, wantErr: keys.ErrNoCertificate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := keys.ParsePEM(tc.cert, tc.key)
			if tc.wantErr != nil || tc.wantMsg != "" {
				if err == nil {
					t.Fatalf("ParsePEM succeeded, want error %v %q", tc.wantErr, tc.wantMsg)
				}
				if m != nil {
					t.Errorf("ParsePEM returned material with an error")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("err = %v, want errors.Is %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) || !strings.HasPrefix(err.Error(), "keys: ") {
					t.Errorf("err = %q, want prefix \"keys: \" and %q", err, tc.wantMsg)
				}
				// Never echo the input, whatever it was.
				leaks := []string{string(garbage), "s3cr3t", "-----BEGIN"}
				if b, _ := pem.Decode(tc.key); b != nil {
					leaks = append(leaks, secretsOf(t, tc.key)...)
				}
				assertNoSecrets(t, "error", err.Error(), leaks...)
				return
			}
			if err != nil {
				t.Fatalf("ParsePEM: %v", err)
			}
			if reflect.TypeOf(m.Signer) != reflect.TypeOf(tc.wantType) {
				t.Errorf("Signer is %T, want %T", m.Signer, tc.wantType)
			}
			var cns []string
			for _, c := range m.Chain {
				cns = append(cns, c.Subject.CommonName)
			}
			if !reflect.DeepEqual(cns, tc.wantChain) {
				t.Errorf("chain = %q, want %q", cns, tc.wantChain)
			}
			if want := rfc7638(t, tc.wantPub); m.KeyID != want {
				t.Errorf("KeyID = %q, want RFC 7638 thumbprint %q", m.KeyID, want)
			}
			if strings.ContainsAny(m.KeyID, "+/=") || len(m.KeyID) != 43 {
				t.Errorf("KeyID %q is not unpadded base64url of 32 bytes", m.KeyID)
			}
			if m.Version != "" || !m.LoadedAt.IsZero() {
				t.Errorf("ParsePEM set Version %q / LoadedAt %v; sources do that", m.Version, m.LoadedAt)
			}
			mustSignAndVerify(t, m)
		})
	}

	// The chain test used the real CA, so the result verifies.
	t.Run("chain verifies", func(t *testing.T) {
		m, err := keys.ParsePEM(chainLeafFirst, pkcs8PEM(t, ecKeyP256b()))
		if err != nil {
			t.Fatal(err)
		}
		if !m.Chain[0].Equal(leafCert) || !m.Chain[1].Equal(caCert) {
			t.Fatal("chain is not [leaf, CA]")
		}
		if err := m.Chain[0].CheckSignatureFrom(m.Chain[1]); err != nil {
			t.Errorf("leaf is not signed by chain[1]: %v", err)
		}
	})
}

func TestKeyIDForMatchesGoJoseAndRFC7638(t *testing.T) {
	for _, pub := range []crypto.PublicKey{rsaKey2048().Public(), ecKeyP256().Public(), ecKeyP384().Public()} {
		got, err := keys.KeyIDFor(pub)
		if err != nil {
			t.Fatal(err)
		}
		if want := rfc7638(t, pub); got != want {
			t.Errorf("KeyIDFor(%T) = %s, want %s", pub, got, want)
		}
	}
}

func TestGenerateSelfSigned(t *testing.T) {
	start := time.Now()
	tests := []struct {
		name     string
		opts     keys.SelfSignedOptions
		wantType any
		wantBits int
		wantErr  string
	}{
		{name: "default RSA", opts: keys.SelfSignedOptions{}, wantType: &rsa.PrivateKey{}, wantBits: 2048},
		{name: "RSA", opts: keys.SelfSignedOptions{KeyType: keys.KeyTypeRSA, CommonName: "rsa", DNSNames: []string{"gw.example.org"}}, wantType: &rsa.PrivateKey{}, wantBits: 2048},
		{name: "EC-P256", opts: keys.SelfSignedOptions{KeyType: keys.KeyTypeECP256, CommonName: "p256", URIs: []string{"urn:oid:2.16.840.1.113883.3.7204"}}, wantType: &ecdsa.PrivateKey{}, wantBits: 256},
		{name: "EC-P384 with validity", opts: keys.SelfSignedOptions{
			KeyType: keys.KeyTypeECP384, CommonName: "p384",
			NotBefore: start.Add(-48 * time.Hour).Truncate(time.Second), NotAfter: start.Add(48 * time.Hour).Truncate(time.Second),
		}, wantType: &ecdsa.PrivateKey{}, wantBits: 384},
		{name: "unknown key type", opts: keys.SelfSignedOptions{KeyType: "DSA"}, wantErr: `unknown key type "DSA"`},
		{name: "NotAfter before NotBefore", opts: keys.SelfSignedOptions{KeyType: keys.KeyTypeECP256, NotBefore: start, NotAfter: start.Add(-time.Hour)}, wantErr: "is not after NotBefore"},
		{name: "relative URI", opts: keys.SelfSignedOptions{KeyType: keys.KeyTypeECP256, URIs: []string{"just-a-path"}}, wantErr: "is not absolute"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			certPEM, keyPEM, err := keys.GenerateSelfSigned(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
				t.Fatalf("key is not a PKCS#8 PEM block")
			}
			m, err := keys.ParsePEM(certPEM, keyPEM)
			if err != nil {
				t.Fatalf("ParsePEM(GenerateSelfSigned()): %v", err)
			}
			if reflect.TypeOf(m.Signer) != reflect.TypeOf(tc.wantType) {
				t.Errorf("Signer = %T, want %T", m.Signer, tc.wantType)
			}
			switch k := m.Signer.(type) {
			case *rsa.PrivateKey:
				if k.N.BitLen() != tc.wantBits {
					t.Errorf("RSA bits = %d, want %d", k.N.BitLen(), tc.wantBits)
				}
			case *ecdsa.PrivateKey:
				if k.Curve.Params().BitSize != tc.wantBits {
					t.Errorf("curve bits = %d, want %d", k.Curve.Params().BitSize, tc.wantBits)
				}
			}
			leaf := m.Chain[0]
			wantCN := tc.opts.CommonName
			if wantCN == "" {
				wantCN = keys.DefaultSelfSignedCommonName
			}
			if leaf.Subject.CommonName != wantCN || leaf.Issuer.String() != leaf.Subject.String() {
				t.Errorf("subject %q issuer %q, want self-signed %q", leaf.Subject, leaf.Issuer, wantCN)
			}
			if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
				t.Errorf("self signature: %v", err)
			}
			if !reflect.DeepEqual(leaf.DNSNames, tc.opts.DNSNames) {
				t.Errorf("DNSNames = %v, want %v", leaf.DNSNames, tc.opts.DNSNames)
			}
			var uris []string
			for _, u := range leaf.URIs {
				uris = append(uris, u.String())
			}
			if !reflect.DeepEqual(uris, tc.opts.URIs) {
				t.Errorf("URIs = %v, want %v", uris, tc.opts.URIs)
			}
			if tc.opts.NotBefore.IsZero() {
				if d := start.Add(-time.Minute).Sub(leaf.NotBefore); d < -2*time.Second || d > 2*time.Second {
					t.Errorf("NotBefore = %v, want about now-1m", leaf.NotBefore)
				}
				if d := start.AddDate(1, 0, 0).Sub(leaf.NotAfter); d < -time.Minute || d > time.Minute {
					t.Errorf("NotAfter = %v, want about now+1y", leaf.NotAfter)
				}
			} else if !leaf.NotBefore.Equal(tc.opts.NotBefore) || !leaf.NotAfter.Equal(tc.opts.NotAfter) {
				t.Errorf("validity = %v..%v, want %v..%v", leaf.NotBefore, leaf.NotAfter, tc.opts.NotBefore, tc.opts.NotAfter)
			}
			mustSignAndVerify(t, m)
		})
	}
}

func TestMaterialStringHidesKey(t *testing.T) {
	certPEM, keyPEM, err := keys.GenerateSelfSigned(keys.SelfSignedOptions{KeyType: keys.KeyTypeECP256, CommonName: "printable"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := keys.ParsePEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	m.Version = "kv:v9"
	secrets := secretsOf(t, keyPEM)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{m, *m} {
			out := fmt.Sprintf(format, v)
			assertNoSecrets(t, "fmt "+format, out, secrets...)
			if !strings.Contains(out, m.KeyID) || !strings.Contains(out, "kv:v9") || !strings.Contains(out, "CN=printable") {
				t.Errorf("fmt %s = %s, want key ID, version and subject", format, out)
			}
		}
	}
	var nilM *keys.Material
	if s := fmt.Sprint(nilM); s != "<nil>" {
		t.Errorf("nil Material prints %q", s)
	}
}

func mustSignAndVerify(t *testing.T, m *keys.Material) {
	t.Helper()
	digest := sha256.Sum256([]byte("cqgate"))
	var opts crypto.SignerOpts = crypto.SHA256
	sig, err := m.Signer.Sign(rand.Reader, digest[:], opts)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	switch pub := m.Chain[0].PublicKey.(type) {
	case *rsa.PublicKey:
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			err = errors.New("bad ECDSA signature")
		}
	}
	if err != nil {
		t.Fatalf("verify with leaf public key: %v", err)
	}
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// truncatePEM keeps PEM framing but cuts the DER short.
func truncatePEM(t testing.TB, in []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(in)
	b.Bytes = b.Bytes[:len(b.Bytes)/2]
	return pem.EncodeToMemory(b)
}
