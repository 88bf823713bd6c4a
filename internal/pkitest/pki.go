package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Mode is how an endpoint of the PKI's server answers.
type Mode int

const (
	// Normal answers correctly.
	Normal Mode = iota
	// Down answers 503 Service Unavailable.
	Down
	// Garbage answers 200 with bytes that are no CRL, OCSP response or
	// certificate.
	Garbage
	// Huge answers 200 with Options.HugeSize bytes of garbage.
	Huge
	// Slow answers nothing until the request is canceled (or a minute
	// passes).
	Slow
	// WrongSigner answers a well-formed CRL or OCSP response signed by a
	// key that is not the issuing CA's.
	WrongSigner
	// Stale answers a CRL or OCSP response whose nextUpdate has passed.
	Stale
	// UnknownStatus (OCSP only) answers that the responder does not know
	// the certificate.
	UnknownStatus
	// Delegated (OCSP only) answers with a response signed by a delegated
	// responder certificate that the CA issued with the OCSP-signing
	// extended key usage, embedded in the response.
	Delegated
	// DelegatedNoEKU (OCSP only) is Delegated with a responder
	// certificate lacking the OCSP-signing extended key usage, which a
	// client must refuse.
	DelegatedNoEKU
)

// Options configures a PKI. The zero value is usable.
type Options struct {
	// Clock tells the time for certificate validity, CRL and OCSP
	// thisUpdate/nextUpdate; time.Now if nil.
	Clock func() time.Time
	// CRLValidity is nextUpdate − thisUpdate of CRLs; 1 hour if zero.
	CRLValidity time.Duration
	// OCSPValidity is nextUpdate − thisUpdate of OCSP responses; 1 hour
	// if zero.
	OCSPValidity time.Duration
	// HugeSize is how many bytes a Huge endpoint sends; 8 MiB if zero.
	HugeSize int
}

// CA is a certificate authority of the PKI.
type CA struct {
	Name string
	Cert *x509.Certificate
	Key  crypto.Signer
	// Parent is the issuing CA; nil for the root.
	Parent *CA
}

// Leaf is an end-entity certificate and its private key.
type Leaf struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// CertOptions describes a certificate to issue.
type CertOptions struct {
	// CommonName of the subject; a default is made up if empty.
	CommonName string
	// URIs are URI subject alternative names (UDAP: the iss / FHIR base).
	URIs []string
	// Key is the public half to certify (its signer is returned in Leaf);
	// a fresh ECDSA P-256 key if nil.
	Key crypto.Signer
	// NotBefore and NotAfter default to an hour ago and a year ahead of
	// the PKI's clock.
	NotBefore, NotAfter time.Time
	// NoCRL, NoOCSP and NoAIA leave out the CRL Distribution Point, the
	// OCSP server and the issuing-certificate URL.
	NoCRL, NoOCSP, NoAIA bool
	// ExtKeyUsage overrides the default (client and server auth).
	ExtKeyUsage []x509.ExtKeyUsage
}

type revocation struct {
	at     time.Time
	reason int
}

// PKI is a root CA, an intermediate CA it issued, and an httptest server
// publishing their CRLs, OCSP answers and certificates.
type PKI struct {
	Root         *CA
	Intermediate *CA
	// URL is the base URL of the revocation server.
	URL string

	opts  Options
	srv   *httptest.Server
	cas   map[string]*CA
	rogue crypto.Signer // signs WrongSigner answers

	mu       sync.Mutex
	serial   int64
	revoked  map[string]revocation // ca name + "/" + serial
	crlMode  map[string]Mode
	ocspMode map[string]Mode
	aiaMode  map[string]Mode
	hits     map[string]int // kind + "/" + ca name
}

// New builds a root and an intermediate CA (ECDSA P-256) and starts the
// revocation server; both stop when the test ends.
func New(t testing.TB, opts Options) *PKI {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.CRLValidity == 0 {
		opts.CRLValidity = time.Hour
	}
	if opts.OCSPValidity == 0 {
		opts.OCSPValidity = time.Hour
	}
	if opts.HugeSize == 0 {
		opts.HugeSize = 8 << 20
	}
	p := &PKI{
		opts:     opts,
		cas:      map[string]*CA{},
		revoked:  map[string]revocation{},
		crlMode:  map[string]Mode{},
		ocspMode: map[string]Mode{},
		aiaMode:  map[string]Mode{},
		hits:     map[string]int{},
		rogue:    newKey(t),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.URL = p.srv.URL

	rootKey := newKey(t)
	now := opts.Clock()
	tmpl := &x509.Certificate{
		SerialNumber:          p.nextSerial(),
		Subject:               pkix.Name{CommonName: "pkitest root", Organization: []string{"cqgate tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatalf("pkitest: root certificate: %v", err)
	}
	p.Root = &CA{Name: "root", Cert: mustParse(t, der), Key: rootKey}
	p.cas["root"] = p.Root
	p.Intermediate = p.NewCA(t, p.Root, "intermediate", CertOptions{})
	return p
}

// NewCA issues a subordinate CA named name (a URL path segment) under
// parent.
func (p *PKI) NewCA(t testing.TB, parent *CA, name string, co CertOptions) *CA {
	t.Helper()
	if co.CommonName == "" {
		co.CommonName = "pkitest " + name
	}
	key := co.Key
	if key == nil {
		key = newKey(t)
	}
	tmpl := p.template(co, parent)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = nil
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.Cert, key.Public(), parent.Key)
	if err != nil {
		t.Fatalf("pkitest: CA certificate %s: %v", name, err)
	}
	ca := &CA{Name: name, Cert: mustParse(t, der), Key: key, Parent: parent}
	p.mu.Lock()
	p.cas[name] = ca
	p.mu.Unlock()
	return ca
}

// Issue issues an end-entity certificate under ca (the intermediate, say).
func (p *PKI) Issue(t testing.TB, ca *CA, co CertOptions) *Leaf {
	t.Helper()
	if co.CommonName == "" {
		co.CommonName = "pkitest leaf"
	}
	key := co.Key
	if key == nil {
		key = newKey(t)
	}
	tmpl := p.template(co, ca)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	for _, u := range co.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatalf("pkitest: URI SAN %q: %v", u, err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("pkitest: leaf certificate: %v", err)
	}
	return &Leaf{Cert: mustParse(t, der), Key: key}
}

func (p *PKI) template(co CertOptions, issuer *CA) *x509.Certificate {
	now := p.opts.Clock()
	tmpl := &x509.Certificate{
		SerialNumber: p.nextSerial(),
		Subject:      pkix.Name{CommonName: co.CommonName, Organization: []string{"cqgate tests"}},
		NotBefore:    co.NotBefore,
		NotAfter:     co.NotAfter,
		ExtKeyUsage:  co.ExtKeyUsage,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.AddDate(1, 0, 0)
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	}
	if !co.NoCRL {
		tmpl.CRLDistributionPoints = []string{p.CRLURL(issuer)}
	}
	if !co.NoOCSP {
		tmpl.OCSPServer = []string{p.OCSPURL(issuer)}
	}
	if !co.NoAIA {
		tmpl.IssuingCertificateURL = []string{p.CertURL(issuer)}
	}
	return tmpl
}

// CRLURL, OCSPURL and CertURL are where ca's CRL, OCSP responder and
// certificate are served.
func (p *PKI) CRLURL(ca *CA) string  { return p.URL + "/crl/" + ca.Name + ".crl" }
func (p *PKI) OCSPURL(ca *CA) string { return p.URL + "/ocsp/" + ca.Name }
func (p *PKI) CertURL(ca *CA) string { return p.URL + "/ca/" + ca.Name + ".cer" }

// Roots returns a pool holding the root certificate.
func (p *PKI) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Root.Cert)
	return pool
}

// Chain returns leaf, the intermediate and the root, leaf first.
func (p *PKI) Chain(leaf *Leaf) []*x509.Certificate {
	return []*x509.Certificate{leaf.Cert, p.Intermediate.Cert, p.Root.Cert}
}

// Revoke marks cert revoked by its issuer (one of the PKI's CAs) with an
// RFC 5280 reason code, from now on.
func (p *PKI) Revoke(cert *x509.Certificate, reason int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ca := p.issuerLocked(cert)
	if ca == nil {
		panic("pkitest: Revoke: certificate not issued by this PKI")
	}
	p.revoked[ca.Name+"/"+cert.SerialNumber.String()] = revocation{at: p.opts.Clock().Add(-time.Second), reason: reason}
}

// Unrevoke takes a revocation back (certificateHold released).
func (p *PKI) Unrevoke(cert *x509.Certificate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ca := p.issuerLocked(cert); ca != nil {
		delete(p.revoked, ca.Name+"/"+cert.SerialNumber.String())
	}
}

func (p *PKI) issuerLocked(cert *x509.Certificate) *CA {
	for _, ca := range p.cas {
		if cert.CheckSignatureFrom(ca.Cert) == nil {
			return ca
		}
	}
	return nil
}

// SetCRL, SetOCSP and SetCert choose how ca's CRL, OCSP responder and
// certificate endpoints answer.
func (p *PKI) SetCRL(ca *CA, m Mode)  { p.setMode(p.crlMode, ca, m) }
func (p *PKI) SetOCSP(ca *CA, m Mode) { p.setMode(p.ocspMode, ca, m) }
func (p *PKI) SetCert(ca *CA, m Mode) { p.setMode(p.aiaMode, ca, m) }

func (p *PKI) setMode(modes map[string]Mode, ca *CA, m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	modes[ca.Name] = m
}

// Hits returns how many requests the endpoint of kind "crl", "ocsp" or
// "ca" for ca has received.
func (p *PKI) Hits(kind string, ca *CA) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[kind+"/"+ca.Name]
}

func (p *PKI) nextSerial() *big.Int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serial++
	// Large, certificate-like serials; still unique.
	return new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 64), big.NewInt(p.serial))
}

func (p *PKI) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 3)
	if len(parts) < 2 {
		http.NotFound(w, r)
		return
	}
	kind, name := parts[0], parts[1]
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".crl"), ".cer")
	p.mu.Lock()
	ca := p.cas[name]
	var mode Mode
	switch kind {
	case "crl":
		mode = p.crlMode[name]
	case "ocsp":
		mode = p.ocspMode[name]
	case "ca":
		mode = p.aiaMode[name]
	}
	p.hits[kind+"/"+name]++
	p.mu.Unlock()
	if ca == nil {
		http.NotFound(w, r)
		return
	}
	switch mode {
	case Down:
		http.Error(w, "down for the test", http.StatusServiceUnavailable)
		return
	case Garbage:
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("\x30\x82\xff\xffthis is not DER at all"))
		return
	case Huge:
		p.writeHuge(w)
		return
	case Slow:
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
		return
	}
	switch kind {
	case "crl":
		p.serveCRL(w, ca, mode)
	case "ocsp":
		p.serveOCSP(w, r, ca, mode)
	case "ca":
		w.Header().Set("Content-Type", "application/pkix-cert")
		_, _ = w.Write(ca.Cert.Raw)
	default:
		http.NotFound(w, r)
	}
}

func (p *PKI) writeHuge(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < p.opts.HugeSize; sent += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

func (p *PKI) serveCRL(w http.ResponseWriter, ca *CA, mode Mode) {
	now := p.opts.Clock()
	this, next := now, now.Add(p.opts.CRLValidity)
	if mode == Stale {
		this, next = now.Add(-2*p.opts.CRLValidity), now.Add(-p.opts.CRLValidity)
	}
	p.mu.Lock()
	var entries []x509.RevocationListEntry
	for key, rv := range p.revoked {
		caName, serial, _ := strings.Cut(key, "/")
		if caName != ca.Name {
			continue
		}
		n, _ := new(big.Int).SetString(serial, 10)
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: rv.at, ReasonCode: rv.reason})
	}
	p.serial++
	number := big.NewInt(p.serial)
	p.mu.Unlock()
	issuer, key := ca.Cert, ca.Key
	if mode == WrongSigner {
		var err error
		if issuer, err = p.impostor(ca); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		key = p.rogue
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                this,
		NextUpdate:                next,
		RevokedCertificateEntries: entries,
	}, issuer, key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	_, _ = w.Write(der)
}

// impostor is a self-signed CA certificate with ca's subject but the
// rogue key: what it signs names ca as issuer and does not verify.
func (p *PKI) impostor(ca *CA) (*x509.Certificate, error) {
	now := p.opts.Clock()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               ca.Cert.Subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, p.rogue.Public(), p.rogue)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func (p *PKI) serveOCSP(w http.ResponseWriter, r *http.Request, ca *CA, mode Mode) {
	var raw []byte
	var err error
	switch r.Method {
	case http.MethodPost:
		raw, err = io.ReadAll(io.LimitReader(r.Body, 64<<10))
	case http.MethodGet:
		_, enc, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/ocsp/"), "/")
		enc, _ = url.PathUnescape(enc)
		raw, err = base64.StdEncoding.DecodeString(enc)
	default:
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	if err != nil {
		_, _ = w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	req, err := ocsp.ParseRequest(raw)
	if err != nil {
		_, _ = w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	now := p.opts.Clock()
	tmpl := ocsp.Response{
		Status:       ocsp.Good,
		SerialNumber: req.SerialNumber,
		ThisUpdate:   now,
		NextUpdate:   now.Add(p.opts.OCSPValidity),
		IssuerHash:   req.HashAlgorithm,
	}
	if mode == Stale {
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(-2*p.opts.OCSPValidity), now.Add(-p.opts.OCSPValidity)
	}
	p.mu.Lock()
	rv, revoked := p.revoked[ca.Name+"/"+req.SerialNumber.String()]
	p.mu.Unlock()
	if revoked {
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, rv.at, rv.reason
	}
	if mode == UnknownStatus {
		tmpl.Status = ocsp.Unknown
	}
	responder, key := ca.Cert, ca.Key
	switch mode {
	case WrongSigner:
		key = p.rogue
	case Delegated, DelegatedNoEKU:
		responder, key, err = p.delegate(ca, mode == Delegated)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		tmpl.Certificate = responder
	}
	der, err := ocsp.CreateResponse(ca.Cert, responder, tmpl, key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(der)
}

// delegate issues a short-lived OCSP responder certificate under ca.
func (p *PKI) delegate(ca *CA, withEKU bool) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := p.opts.Clock()
	tmpl := &x509.Certificate{
		SerialNumber: p.nextSerial(),
		Subject:      pkix.Name{CommonName: "pkitest OCSP responder for " + ca.Name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if withEKU {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("pkitest: key: %v", err)
	}
	return k
}

func mustParse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("pkitest: parsing certificate: %v", err)
	}
	return c
}

// String names the PKI for test logs.
func (p *PKI) String() string { return fmt.Sprintf("pkitest.PKI(%s)", p.URL) }
