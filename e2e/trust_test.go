package e2e

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jwtv3 "github.com/go-jose/go-jose/v3/jwt"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/config"
	"github.com/cqgate/cqgate/gateway"
	"github.com/cqgate/cqgate/internal/pkitest"
)

// This file is issue 16 end to end: UDAP trust communities and revocation
// through discovery, TEFCA exchange purposes, and a client assertion
// carrying jku verified by an independent verifier that fetched cqgate's
// JWK Set over HTTP from the running gateway.

// trustPartner is a partner: a FHIR server whose .well-known/udap
// answers per community, a token endpoint that verifies each assertion
// with verify (independently of cqgate's code) and a FHIR API that wants
// the token it issued.
type trustPartner struct {
	*httptest.Server
	t *testing.T

	mu      sync.Mutex
	udap    map[string]string // community query value -> body
	queries []string          // community values asked for
	claims  []map[string]any  // verified assertion claims
	headers []map[string]any  // their JOSE headers
	forms   []url.Values
	fhirHdr []http.Header
	verify  func(tok string) (map[string]any, error)
}

func newTrustPartner(t *testing.T) *trustPartner {
	p := &trustPartner{t: t, udap: map[string]string{}}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

func (p *trustPartner) base() string { return p.URL + "/r4" }

func (p *trustPartner) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/r4/.well-known/udap":
		c := r.URL.Query().Get("community")
		p.mu.Lock()
		p.queries = append(p.queries, c)
		body, ok := p.udap[c]
		p.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	case "/token":
		_ = r.ParseForm()
		tok := r.PostForm.Get("client_assertion")
		claims, err := p.verify(tok)
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": err.Error()})
			return
		}
		p.mu.Lock()
		p.claims = append(p.claims, claims)
		p.forms = append(p.forms, r.PostForm)
		p.headers = append(p.headers, joseHeader(p.t, tok))
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "partner-token-" + fmt.Sprint(claims["jti"]), "token_type": "Bearer",
			"expires_in": 300, "scope": r.PostForm.Get("scope")})
	default:
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer partner-token-") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		p.mu.Lock()
		p.fhirHdr = append(p.fhirHdr, r.Header.Clone())
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.WriteString(w, patientJSON)
	}
}

func (p *trustPartner) set(community, body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.udap[community] = body
}

func (p *trustPartner) lastClaims() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.claims) == 0 {
		return nil
	}
	return p.claims[len(p.claims)-1]
}

// joseHeader decodes a compact JWS's protected header.
func joseHeader(t *testing.T, tok string) map[string]any {
	h, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Errorf("assertion header: %v", err)
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

// verifyX5C verifies an assertion with the public key of its x5c leaf,
// which must chain to roots, and returns its claims.
func verifyX5C(roots *x509.CertPool) func(string) (map[string]any, error) {
	return func(tok string) (map[string]any, error) {
		parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.ES256, jose.ES384})
		if err != nil {
			return nil, err
		}
		chains, err := parsed.Headers[0].Certificates(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return nil, fmt.Errorf("x5c: %w", err)
		}
		var claims map[string]any
		if err := parsed.Claims(chains[0][0].PublicKey, &claims); err != nil {
			return nil, err
		}
		claims["x5c_san"] = uriSANs(chains[0][0])
		return claims, nil
	}
}

func uriSANs(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

// signedUDAP is .well-known/udap for base, its signed_metadata signed by
// leaf with x5c, naming the partner's token endpoint.
func signedUDAP(t *testing.T, base, tokenURL string, leaf *pkitest.Leaf, x5c ...*x509.Certificate) string {
	t.Helper()
	enc := make([]string, len(x5c))
	for i, c := range x5c {
		enc[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: leaf.Key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("x5c", enc))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	signed, err := jwt.Signed(sig).Claims(map[string]any{"iss": base, "sub": base, "iat": now.Add(-time.Minute).Unix(),
		"exp": now.Add(24 * time.Hour).Unix(), "jti": fmt.Sprint(now.UnixNano()), "token_endpoint": tokenURL}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{
		"udap_versions_supported": []string{"1"}, "udap_profiles_supported": []string{"udap_authn", "udap_authz"},
		"grant_types_supported": []string{"client_credentials"}, "token_endpoint": tokenURL,
		"token_endpoint_auth_methods_supported":            []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"ES256", "RS384"},
		"signed_metadata": signed,
	})
	return string(b)
}

// writePEM writes PEM blocks to a file in dir and returns its path.
func writePEM(t *testing.T, dir, name string, blocks ...*pem.Block) string {
	t.Helper()
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func certBlock(c *x509.Certificate) *pem.Block { return &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw} }

// pemIdentity writes leaf's chain and key to files for a keys block.
func pemIdentity(t *testing.T, dir, name string, leaf *pkitest.Leaf, chain ...*x509.Certificate) config.Keys {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	blocks := []*pem.Block{certBlock(leaf.Cert)}
	for _, c := range chain {
		blocks = append(blocks, certBlock(c))
	}
	return config.Keys{Source: "pem", PEM: config.PEMKeys{
		CertificateFile: writePEM(t, dir, name+".crt", blocks...),
		PrivateKeyFile:  writePEM(t, dir, name+".key", &pem.Block{Type: "PRIVATE KEY", Bytes: der}),
	}}
}

// trustGateway runs a gateway for cfg on ln (a fresh loopback listener
// when nil) and returns its URL.
func trustGateway(t *testing.T, cfg *config.Config, ln net.Listener) (string, *gateway.Gateway, *syncBuffer) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := logrus.New()
	log.SetOutput(logs)
	log.SetFormatter(&logrus.JSONFormatter{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g, err := gateway.New(ctx, cfg, gateway.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := g.WaitReady(wctx); err != nil {
		t.Fatalf("keys not loaded: %v\n%s", err, logs)
	}
	srv := httptest.NewUnstartedServer(g.Handler)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, g, logs
}

func trustGet(t *testing.T, u string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// trustConfig is a configuration with the default identity in the
// community "cq" (client.community) and a static organization per oid.
func trustConfig(t *testing.T, pki *pkitest.PKI, dir string, policy string) *config.Config {
	cfg := config.Default()
	cfg.Audit.Destination = "none"
	cfg.Directory.URL = ""
	cfg.Client.ClientID = "https://gw.example.org"
	cfg.Client.Scope = "system/Patient.read"
	cfg.Client.Community = "cq"
	own := pki.Issue(t, pki.Intermediate, pkitest.CertOptions{URIs: []string{"https://gw.example.org"}})
	k := pemIdentity(t, dir, "default", own, pki.Intermediate.Cert)
	cfg.Keys.Source, cfg.Keys.PEM = k.Source, k.PEM
	cfg.Keys.RevocationCheckInterval = 0
	cfg.UDAP.Communities = map[string]config.Community{
		"cq": {URI: "urn:oid:2.16.840.1.113883.3.7204.1.1", Revocation: policy,
			TrustAnchors: []string{writePEM(t, dir, "cq-roots.pem", certBlock(pki.Root.Cert))}},
	}
	return cfg
}

// TestTrustRevocationThroughDiscovery: the signed_metadata chain of a
// partner is checked against the CA's CRL and OCSP responder (the
// intermediate fetched through AIA) under the community's policy.
func TestTrustRevocationThroughDiscovery(t *testing.T) {
	const oid = "2.16.840.1.113883.3.16.1"
	tests := []struct {
		name, policy string
		fault        func(pki *pkitest.PKI, leaf *pkitest.Leaf)
		want         int
		has          []string
	}{
		{name: "good chain", policy: "hard", fault: func(*pkitest.PKI, *pkitest.Leaf) {}, want: http.StatusOK},
		{name: "revoked leaf", policy: "soft", want: http.StatusBadGateway,
			fault: func(pki *pkitest.PKI, leaf *pkitest.Leaf) { pki.Revoke(leaf.Cert, 1) },
			has:   []string{"was revoked", "keyCompromise", "CN=partner fhir", "according to ocsp http://127.0.0.1", `\"cq\"`}},
		{name: "revoked intermediate", policy: "hard", want: http.StatusBadGateway,
			fault: func(pki *pkitest.PKI, _ *pkitest.Leaf) { pki.Revoke(pki.Intermediate.Cert, 2) },
			has:   []string{"was revoked", "cACompromise", pkitestIntermediateName}},
		{name: "CRL and OCSP unreachable, hard", policy: "hard", want: http.StatusBadGateway,
			fault: func(pki *pkitest.PKI, _ *pkitest.Leaf) {
				pki.SetCRL(pki.Intermediate, pkitest.Down)
				pki.SetOCSP(pki.Intermediate, pkitest.Down)
			},
			has: []string{"cannot tell whether certificate", "CN=partner fhir", "/crl/"}},
		{name: "CRL and OCSP unreachable, soft", policy: "soft", want: http.StatusOK,
			fault: func(pki *pkitest.PKI, _ *pkitest.Leaf) {
				pki.SetCRL(pki.Intermediate, pkitest.Down)
				pki.SetOCSP(pki.Intermediate, pkitest.Down)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pki := pkitest.New(t, pkitest.Options{})
			partner := newTrustPartner(t)
			partner.verify = verifyX5C(pki.Roots())
			leaf := pki.Issue(t, pki.Intermediate, pkitest.CertOptions{CommonName: "partner fhir", URIs: []string{partner.base()}})
			// Only the leaf: the intermediate is fetched through AIA.
			partner.set("urn:oid:2.16.840.1.113883.3.7204.1.1", signedUDAP(t, partner.base(), partner.URL+"/token", leaf, leaf.Cert))
			tt.fault(pki, leaf)

			cfg := trustConfig(t, pki, dir, tt.policy)
			cfg.Organizations = map[string]config.Organization{oid: {FHIRBase: partner.base(), Community: "cq",
				DiscoveryOrder: []string{"udap", "smart-configuration"}, AllowPrivateAddresses: true}}
			gw, _, logs := trustGateway(t, cfg, nil)
			status, body := trustGet(t, gw+"/fhir/"+oid+"/Patient/1", nil)
			t.Logf("%d %s", status, body)
			if status != tt.want {
				t.Fatalf("status %d, want %d: %s\nlogs:\n%s", status, tt.want, body, logs)
			}
			for _, h := range tt.has {
				if !strings.Contains(body, h) {
					t.Errorf("the answer does not name %q: %s", h, body)
				}
			}
			if tt.want != http.StatusOK {
				if !strings.Contains(body, "OperationOutcome") {
					t.Errorf("not an OperationOutcome: %s", body)
				}
				if len(partner.claims) != 0 {
					t.Errorf("an assertion was sent to a partner whose metadata was refused")
				}
			}
		})
	}
}

// pkitestIntermediateName is the subject of pkitest's intermediate CA.
const pkitestIntermediateName = "CN=pkitest intermediate"

// TestTrustTwoCommunities: each organization's metadata is read with its
// community's ?community= and verified under its anchors, and the
// assertion is signed by the identity issued in that community; metadata
// signed under the other community is refused naming it.
func TestTrustTwoCommunities(t *testing.T) {
	const oidA, oidB = "2.16.840.1.113883.3.16.2", "2.16.840.1.113883.3.16.3"
	const uriA, uriB = "urn:oid:2.16.840.1.113883.3.7204.1.1", "urn:oid:2.16.840.1.113883.3.7204.1.9"
	dir := t.TempDir()
	pkiA, pkiB := pkitest.New(t, pkitest.Options{}), pkitest.New(t, pkitest.Options{})
	partnerA, partnerB := newTrustPartner(t), newTrustPartner(t)
	both := x509.NewCertPool()
	both.AddCert(pkiA.Root.Cert)
	both.AddCert(pkiB.Root.Cert)
	partnerA.verify, partnerB.verify = verifyX5C(both), verifyX5C(both)
	leafA := pkiA.Issue(t, pkiA.Intermediate, pkitest.CertOptions{URIs: []string{partnerA.base()}})
	leafB := pkiB.Issue(t, pkiB.Intermediate, pkitest.CertOptions{URIs: []string{partnerB.base()}})
	partnerA.set(uriA, signedUDAP(t, partnerA.base(), partnerA.URL+"/token", leafA, leafA.Cert, pkiA.Intermediate.Cert))
	partnerB.set(uriB, signedUDAP(t, partnerB.base(), partnerB.URL+"/token", leafB, leafB.Cert, pkiB.Intermediate.Cert))

	cfg := trustConfig(t, pkiA, dir, "hard")
	cfg.UDAP.Communities["other"] = config.Community{URI: uriB, Revocation: "hard",
		TrustAnchors: []string{writePEM(t, dir, "other-roots.pem", certBlock(pkiB.Root.Cert))}}
	ownB := pkiB.Issue(t, pkiB.Intermediate, pkitest.CertOptions{URIs: []string{"https://gw-other.example.org"}})
	cfg.Identities = map[string]config.Identity{"other": {ClientID: "https://gw-other.example.org", Community: "other",
		Keys: pemIdentity(t, dir, "other", ownB, pkiB.Intermediate.Cert)}}
	org := func(p *trustPartner, community string) config.Organization {
		return config.Organization{FHIRBase: p.base(), Community: community, DiscoveryOrder: []string{"udap"}, AllowPrivateAddresses: true}
	}
	cfg.Organizations = map[string]config.Organization{oidA: org(partnerA, "cq"), oidB: org(partnerB, "other")}
	gw, _, logs := trustGateway(t, cfg, nil)

	for _, c := range []struct {
		oid      string
		p        *trustPartner
		uri, iss string
	}{{oidA, partnerA, uriA, "https://gw.example.org"}, {oidB, partnerB, uriB, "https://gw-other.example.org"}} {
		if status, body := trustGet(t, gw+"/fhir/"+c.oid+"/Patient/1", nil); status != http.StatusOK {
			t.Fatalf("%s: %d %s\nlogs:\n%s", c.oid, status, body, logs)
		}
		if got := c.p.lastClaims(); got == nil || got["iss"] != c.iss {
			t.Errorf("%s: the assertion's iss = %v, want the identity of its community %s", c.oid, got["iss"], c.iss)
		}
		c.p.mu.Lock()
		for _, q := range c.p.queries {
			if q != c.uri {
				t.Errorf("%s: .well-known/udap asked with community %q, want %q", c.oid, q, c.uri)
			}
		}
		c.p.mu.Unlock()
	}

	// Organization A's server now answers with metadata signed under
	// the other community.
	const oidC = "2.16.840.1.113883.3.16.4"
	partnerC := newTrustPartner(t)
	partnerC.verify = verifyX5C(both)
	leafC := pkiB.Issue(t, pkiB.Intermediate, pkitest.CertOptions{URIs: []string{partnerC.base()}})
	partnerC.set(uriA, signedUDAP(t, partnerC.base(), partnerC.URL+"/token", leafC, leafC.Cert, pkiB.Intermediate.Cert))
	cfg2 := trustConfig(t, pkiA, t.TempDir(), "hard")
	cfg2.UDAP.Communities["other"] = cfg.UDAP.Communities["other"]
	cfg2.Organizations = map[string]config.Organization{oidC: org(partnerC, "cq")}
	gw2, _, _ := trustGateway(t, cfg2, nil)
	status, body := trustGet(t, gw2+"/fhir/"+oidC+"/Patient/1", nil)
	if status != http.StatusBadGateway || !strings.Contains(body, `signed under trust community \"other\", not under \"cq\"`) {
		t.Fatalf("metadata under the other community: %d %s", status, body)
	}
	if len(partnerC.claims) != 0 {
		t.Error("an assertion went to a partner whose metadata is signed under another community")
	}
}

// TestTrustTEFCAExchangePurpose: a caller chooses the XP with
// X-Cqgate-Exchange-Purpose; the assertion is signed by the identity
// whose SAN is urn:oid:<HCID>#<XP>, and a verifier checking what TEFCA
// asks of hl7-b2b accepts it.
func TestTrustTEFCAExchangePurpose(t *testing.T) {
	const oid = "2.16.840.1.113883.3.16.5"
	const hcid = "urn:oid:2.16.840.1.113883.3.9999"
	dir := t.TempDir()
	pki := pkitest.New(t, pkitest.Options{})
	partner := newTrustPartner(t)
	x5c := verifyX5C(pki.Roots())
	partner.verify = func(tok string) (map[string]any, error) {
		c, err := x5c(tok)
		if err != nil {
			return nil, err
		}
		// What a TEFCA token validator checks (udap-dotnet
		// TefcaTokenValidator; Facilitated FHIR SOP v2.0): one
		// purpose_of_use, an XP code, equal to the SAN's XP.
		ext, _ := c["extensions"].(map[string]any)
		b2b, _ := ext["hl7-b2b"].(map[string]any)
		pou, _ := b2b["purpose_of_use"].([]any)
		sans, _ := c["x5c_san"].([]string)
		switch {
		case b2b == nil:
			return nil, fmt.Errorf("no hl7-b2b")
		case b2b["organization_id"] != "urn:oid:2.16.840.1.113883.3.9999.1" || b2b["organization_name"] != "Example Clinic NPI 1234567890":
			return nil, fmt.Errorf("organization = %v %v", b2b["organization_id"], b2b["organization_name"])
		case len(pou) != 1:
			return nil, fmt.Errorf("purpose_of_use has %d entries", len(pou))
		case len(sans) != 1 || !strings.HasPrefix(sans[0], hcid+"#"):
			return nil, fmt.Errorf("SAN %v", sans)
		case pou[0] != assertion.XPSystem+"#"+strings.TrimPrefix(sans[0], hcid+"#"):
			return nil, fmt.Errorf("purpose_of_use %v does not match the SAN %s", pou[0], sans[0])
		case c["iss"] != sans[0]:
			return nil, fmt.Errorf("iss %v is not the SAN %s", c["iss"], sans[0])
		}
		return c, nil
	}

	cfg := trustConfig(t, pki, dir, "hard")
	cfg.UDAP.Communities["tefca"] = config.Community{URI: config.TEFCAURI, HomeCommunityID: hcid,
		TrustAnchors: []string{writePEM(t, dir, "tefca-roots.pem", certBlock(pki.Root.Cert))}}
	cfg.Identities = map[string]config.Identity{}
	for _, xp := range []string{"T-TREAT", "T-PYMNT"} {
		san := hcid + "#" + xp
		leaf := pki.Issue(t, pki.Intermediate, pkitest.CertOptions{URIs: []string{san}})
		cfg.Identities["tefca-"+strings.ToLower(xp)] = config.Identity{ClientID: san, Community: "tefca", ExchangePurpose: xp, Issuer: san,
			Keys: pemIdentity(t, dir, xp, leaf, pki.Intermediate.Cert)}
	}
	cfg.Organizations = map[string]config.Organization{oid: {FHIRBase: partner.base(), TokenURL: partner.URL + "/token",
		Community: "tefca", AllowPrivateAddresses: true,
		UDAP: config.OrgUDAP{Enabled: true, OrganizationID: "urn:oid:2.16.840.1.113883.3.9999.1", OrganizationName: "Example Clinic NPI 1234567890",
			PurposeOfUse:    []string{assertion.XPSystem + "#T-TREAT"},
			AllowedPurposes: []string{assertion.XPSystem + "#T-TREAT", assertion.XPSystem + "#T-PYMNT"}}}}
	cfg.Inbound.Callers = map[string]config.Caller{"anonymous": {Organizations: []string{"*"}, ExchangePurposes: []string{"T-TREAT", "T-PYMNT"},
		PurposesOfUse: []string{assertion.XPSystem + "#T-TREAT", assertion.XPSystem + "#T-PYMNT"}}}
	gw, _, logs := trustGateway(t, cfg, nil)

	for _, xp := range []string{"T-TREAT", "T-PYMNT"} {
		status, body := trustGet(t, gw+"/fhir/"+oid+"/Patient/1", map[string]string{"X-Cqgate-Exchange-Purpose": xp,
			"X-Purpose-Of-Use": assertion.XPSystem + "#" + xp})
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s\nlogs:\n%s", xp, status, body, logs)
		}
		c := partner.lastClaims()
		if c["iss"] != hcid+"#"+xp {
			t.Errorf("%s: signed as %v", xp, c["iss"])
		}
		if f := partner.forms[len(partner.forms)-1]; f.Get("udap") != "1" {
			t.Errorf("%s: udap = %q", xp, f.Get("udap"))
		}
	}
	for _, h := range partner.fhirHdr {
		if h.Get("X-Cqgate-Exchange-Purpose") != "" {
			t.Error("the exchange purpose header reached the partner")
		}
	}
	exchanges := len(partner.claims)
	if status, body := trustGet(t, gw+"/fhir/"+oid+"/Patient/1", map[string]string{"X-Cqgate-Exchange-Purpose": "T-HCO"}); status != http.StatusForbidden ||
		!strings.Contains(body, "callers.anonymous.exchange_purposes") {
		t.Errorf("an XP the caller may not choose: %d %s", status, body)
	}
	// X-Purpose-Of-Use alone would assert T-PYMNT under the T-TREAT
	// certificate; with another XP chosen, two purposes at once.
	for _, h := range []map[string]string{
		{"X-Purpose-Of-Use": assertion.XPSystem + "#T-PYMNT"},
		{"X-Purpose-Of-Use": assertion.XPSystem + "#T-TREAT", "X-Cqgate-Exchange-Purpose": "T-PYMNT"},
	} {
		if status, body := trustGet(t, gw+"/fhir/"+oid+"/Patient/1", h); status != http.StatusBadRequest ||
			!strings.Contains(body, "OperationOutcome") || !strings.Contains(body, "the one the signing certificate was issued for") {
			t.Errorf("%v: %d %s", h, status, body)
		}
	}
	if len(partner.claims) != exchanges {
		t.Error("a refused exchange purpose caused a token exchange")
	}
}

// TestTrustJKUVerifiedFromPublishedSet: the default identity sends jku;
// the partner's verifier fetches the JWK Set from that URL (the running
// gateway, with fosite's JWKS fetcher and go-jose v3, none of cqgate's
// code), finds the key by kid and verifies the assertion.
func TestTrustJKUVerifiedFromPublishedSet(t *testing.T) {
	const oid = "2.16.840.1.113883.3.16.6"
	dir := t.TempDir()
	pki := pkitest.New(t, pkitest.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	jku := "http://" + ln.Addr().String() + "/.well-known/jwks.json"

	partner := newTrustPartner(t)
	fetcher := fosite.NewDefaultJWKSFetcherStrategy()
	partner.verify = func(tok string) (map[string]any, error) {
		parsed, err := jwtv3.ParseSigned(tok)
		if err != nil {
			return nil, err
		}
		h := parsed.Headers[0]
		if got := h.ExtraHeaders["jku"]; got != jku {
			return nil, fmt.Errorf("jku %v is not the registered JWK Set URL %s", got, jku)
		}
		set, err := fetcher.Resolve(context.Background(), jku, true)
		if err != nil {
			return nil, fmt.Errorf("fetching the JWK Set: %w", err)
		}
		keys := set.Key(h.KeyID)
		if len(keys) != 1 {
			return nil, fmt.Errorf("kid %q: %d keys in the set", h.KeyID, len(keys))
		}
		if keys[0].Algorithm != h.Algorithm {
			return nil, fmt.Errorf("alg %s, the set says %s", h.Algorithm, keys[0].Algorithm)
		}
		var claims map[string]any
		if err := parsed.Claims(keys[0].Key, &claims); err != nil {
			return nil, err
		}
		return claims, nil
	}

	cfg := trustConfig(t, pki, dir, "hard")
	cfg.Client.JKU = jku
	cfg.Organizations = map[string]config.Organization{oid: {FHIRBase: partner.base(), TokenURL: partner.URL + "/token", AllowPrivateAddresses: true}}
	gw, _, logs := trustGateway(t, cfg, ln)

	status, body := trustGet(t, gw+"/fhir/"+oid+"/Patient/1", nil)
	if status != http.StatusOK {
		t.Fatalf("%d %s\nlogs:\n%s", status, body, logs)
	}
	if partner.headers[0]["jku"] != jku {
		t.Errorf("jku header = %v", partner.headers[0]["jku"])
	}
	// The set is public: no caller authentication, no private parameters.
	status, set := trustGet(t, jku, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", jku, status, set)
	}
	for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`} {
		if strings.Contains(set, private) {
			t.Errorf("the JWK Set has a private parameter %s", private)
		}
	}
}
