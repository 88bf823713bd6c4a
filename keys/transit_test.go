package keys_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/api"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/internal/vaulttest"
	"github.com/cqgate/cqgate/keys"
)

// transitFixture is a fake Vault with one transit key and a certificate
// for it in KV.
type transitFixture struct {
	srv    *vaulttest.Server
	client *vault.Client
	ca     *testCA
	src    *keys.VaultTransit
}

func newTransitFixture(t *testing.T, key crypto.Signer) *transitFixture {
	t.Helper()
	srv := vaulttest.New(t, vaultToken)
	srv.ImportTransitKey("transit", "cqgate", key)
	ca := newTestCA(t)
	srv.Put("secret", "cqgate/cert", map[string]any{"certificate": string(ca.certify(t, key.Public(), "cqgate transit"))})
	client := vaultClient(t, srv, vaultToken)
	return &transitFixture{
		srv: srv, client: client, ca: ca,
		src: &keys.VaultTransit{Client: client, Key: "cqgate", CertPath: "cqgate/cert"},
	}
}

func TestVaultTransitSigning(t *testing.T) {
	tests := []struct {
		name       string
		key        crypto.Signer
		algs       []jose.SignatureAlgorithm
		wantHashes map[jose.SignatureAlgorithm]string
		refused    jose.SignatureAlgorithm
	}{
		{name: "RSA", key: rsaKey2048(), algs: []jose.SignatureAlgorithm{jose.RS384, jose.RS256}, refused: jose.ES256,
			wantHashes: map[jose.SignatureAlgorithm]string{jose.RS256: "sha2-256", jose.RS384: "sha2-384"}},
		{name: "P-256", key: ecKeyP256(), algs: []jose.SignatureAlgorithm{jose.ES256}, refused: jose.ES384,
			wantHashes: map[jose.SignatureAlgorithm]string{jose.ES256: "sha2-256"}},
		{name: "P-384", key: ecKeyP384(), algs: []jose.SignatureAlgorithm{jose.ES384}, refused: jose.RS384,
			wantHashes: map[jose.SignatureAlgorithm]string{jose.ES384: "sha2-384"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newTransitFixture(t, tc.key)
			loadedAt := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
			f.src.Clock = func() time.Time { return loadedAt }
			m, err := f.src.Load(context.Background())
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			wantKID, _ := keys.KeyIDFor(tc.key.Public())
			if m.Signer != nil || m.Opaque == nil || len(m.Chain) != 2 || m.KeyID != wantKID ||
				m.Version != "transit:v1+kv:v1" || !m.LoadedAt.Equal(loadedAt) {
				t.Fatalf("material = %v (signer %v, opaque %v), want an opaque signer, a chain of 2, kid %s, transit:v1+kv:v1", m, m.Signer, m.Opaque, wantKID)
			}
			if got := m.JOSESigner().Algs(); !slices.Equal(got, tc.algs) {
				t.Errorf("Algs = %v, want %v", got, tc.algs)
			}
			if pub := m.Public(); !publicEqual(pub, tc.key.Public()) {
				t.Errorf("Public = %T, want the transit key's", pub)
			}
			if _, err := keys.NewHolder(keys.NewStatic(m), keys.HolderOptions{}).Reload(context.Background()); err != nil {
				t.Errorf("Holder refuses transit material: %v", err)
			}

			for _, alg := range tc.algs {
				before := len(f.srv.LogFor("transit/sign/cqgate"))
				if err := signAndVerifyJWT(m, alg, m.Chain[0].PublicKey); err != nil {
					t.Fatalf("%s: %v", alg, err)
				}
				reqs := f.srv.LogFor("transit/sign/cqgate")[before:]
				if len(reqs) != 1 {
					t.Fatalf("%s: %d sign requests, want 1", alg, len(reqs))
				}
				body := reqs[0].Body
				if body["hash_algorithm"] != tc.wantHashes[alg] || fmt.Sprint(body["key_version"]) != "1" {
					t.Errorf("%s: sign request %v, want hash_algorithm %s and key_version 1", alg, body, tc.wantHashes[alg])
				}
				if tc.name == "RSA" {
					if body["signature_algorithm"] != "pkcs1v15" || body["marshaling_algorithm"] != nil {
						t.Errorf("%s: RSA sign request %v, want signature_algorithm pkcs1v15 and no marshaling", alg, body)
					}
				} else if body["marshaling_algorithm"] != "jws" || body["signature_algorithm"] != nil {
					t.Errorf("%s: ECDSA sign request %v, want marshaling_algorithm jws", alg, body)
				}
				if in, _ := body["input"].(string); !isStdBase64(in) {
					t.Errorf("%s: input %q is not standard base64", alg, in)
				}
				if reqs[0].Accessor != f.srv.Accessor(vaultToken) {
					t.Errorf("%s: signed with accessor %q, want the client's token", alg, reqs[0].Accessor)
				}
			}

			// go-jose refuses an algorithm the key cannot sign before any call.
			before := len(f.srv.LogFor("transit/sign/cqgate"))
			_, err = jose.NewSigner(jose.SigningKey{Algorithm: tc.refused, Key: m.JOSESigner()}, nil)
			if !errors.Is(err, jose.ErrUnsupportedAlgorithm) {
				t.Errorf("NewSigner(%s) err = %v, want ErrUnsupportedAlgorithm", tc.refused, err)
			}
			if _, err := m.JOSESigner().SignPayload([]byte("x"), tc.refused); !errors.Is(err, jose.ErrUnsupportedAlgorithm) {
				t.Errorf("SignPayload(%s) err = %v, want ErrUnsupportedAlgorithm", tc.refused, err)
			}
			if n := len(f.srv.LogFor("transit/sign/cqgate")); n != before {
				t.Errorf("an unsupported algorithm reached Vault (%d requests)", n-before)
			}
		})
	}
}

func isStdBase64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return s != "" && err == nil
}

func publicEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func TestVaultTransitLoadErrors(t *testing.T) {
	srv := vaulttest.New(t, vaultToken)
	ca := newTestCA(t)
	srv.ImportTransitKey("transit", "ec", ecKeyP256())
	srv.ImportTransitKey("transit", "other", ecKeyP256b())
	srv.AddTransitKey("transit", "aes", vaulttest.KeyTypeAES256)
	srv.AddTransitKey("transit", "ed", vaulttest.KeyTypeEd25519)
	srv.AddTransitKey("transit", "p521", vaulttest.KeyTypeECDSAP521)
	srv.ImportTransitKey("pki-transit", "ec", ecKeyP256())
	srv.Put("secret", "cert/ec", map[string]any{"certificate": string(ca.certify(t, ecKeyP256().Public(), "ec"))})
	srv.Put("secret", "cert/other", map[string]any{"certificate": string(ca.certify(t, ecKeyP256b().Public(), "other"))})
	srv.Put("secret", "cert/custom", map[string]any{"chain": string(ca.certify(t, ecKeyP256().Public(), "ec"))})
	srv.Put("secret", "cert/garbage", map[string]any{"certificate": "garbage-XYZZY"})
	srv.Put("secret", "cert/number", map[string]any{"certificate": 7})
	expiredCert := ca.certifyValid(t, ecKeyP256().Public(), "expired", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	srv.Put("secret", "cert/expired", map[string]any{"certificate": string(expiredCert)})

	client := vaultClient(t, srv, vaultToken)
	wrong := vaultClient(t, srv, "hvs.wrong-token-XYZZY")
	sealed := vaulttest.New(t, vaultToken)
	sealed.ImportTransitKey("transit", "ec", ecKeyP256())
	sealed.SetDown(true)
	denied := vaulttest.New(t, vaultToken)
	denied.ImportTransitKey("transit", "ec", ecKeyP256())
	denied.Put("secret", "cert/ec", map[string]any{"certificate": string(ca.certify(t, ecKeyP256().Public(), "ec"))})
	denied.SetDenied("transit/keys/", true)

	src := func(key, certPath string) keys.VaultTransit {
		return keys.VaultTransit{Client: client, Key: key, CertPath: certPath}
	}
	tests := []struct {
		name       string
		src        keys.VaultTransit
		wantErrIs  error
		wantStatus int
		wantInErr  []string
	}{
		{name: "happy", src: src("ec", "cert/ec")},
		{name: "explicit defaults", src: keys.VaultTransit{Client: client, Mount: "/transit/", Key: "ec", CertMount: "secret/", CertPath: "/cert/ec/", CertificateField: "certificate"}},
		{name: "custom mount and field", src: keys.VaultTransit{Client: client, Mount: "pki-transit", Key: "ec", CertPath: "cert/custom", CertificateField: "chain"}},
		{name: "certificate of another key", src: src("ec", "cert/other"), wantErrIs: keys.ErrKeyMismatch,
			wantInErr: []string{"transit key transit/keys/ec version 1", "secret/data/cert/other (version 1", `"CN=other,O=cqgate tests"`, "rotated without storing a certificate"}},
		{name: "missing key", src: src("nope", "cert/ec"), wantErrIs: api.ErrSecretNotFound,
			wantInErr: []string{"keys: reading transit key at transit/keys/nope", "is the transit engine mounted at transit/"}},
		{name: "no transit mount", src: keys.VaultTransit{Client: client, Mount: "nomount", Key: "ec", CertPath: "cert/ec"}, wantErrIs: api.ErrSecretNotFound,
			wantInErr: []string{"nomount/keys/ec"}},
		{name: "symmetric key", src: src("aes", "cert/ec"), wantErrIs: keys.ErrUnsupportedKey, wantInErr: []string{`key type "aes256-gcm96" cannot sign`}},
		{name: "ed25519 key", src: src("ed", "cert/ec"), wantErrIs: keys.ErrUnsupportedKey, wantInErr: []string{`key type "ed25519", want rsa-2048`}},
		{name: "P-521 key", src: src("p521", "cert/ec"), wantErrIs: keys.ErrUnsupportedKey, wantInErr: []string{`key type "ecdsa-p521"`}},
		{name: "missing certificate secret", src: src("ec", "cert/nope"), wantErrIs: vault.ErrSecretNotFound,
			wantInErr: []string{"reading the certificate for transit key transit/keys/ec", "secret/data/cert/nope"}},
		{name: "missing certificate field", src: src("ec", "cert/custom"), wantInErr: []string{"secret/data/cert/custom", `field "certificate" is missing`}},
		{name: "certificate not PEM", src: src("ec", "cert/garbage"), wantErrIs: keys.ErrNoCertificate, wantInErr: []string{"secret/data/cert/garbage"}},
		{name: "certificate a number", src: src("ec", "cert/number"), wantInErr: []string{`field "certificate" is a number`}},
		{name: "wrong token", src: keys.VaultTransit{Client: wrong, Key: "ec", CertPath: "cert/ec"}, wantStatus: 403, wantInErr: []string{"transit/keys/ec", "permission denied"}},
		{name: "sealed", src: keys.VaultTransit{Client: vaultClient(t, sealed, vaultToken), Key: "ec", CertPath: "cert/ec"}, wantStatus: 503, wantInErr: []string{"Vault is sealed"}},
		{name: "policy denies keys", src: keys.VaultTransit{Client: vaultClient(t, denied, vaultToken), Key: "ec", CertPath: "cert/ec"}, wantStatus: 403},
		{name: "nothing configured", src: keys.VaultTransit{}, wantInErr: []string{"no Vault client configured", `transit key name "" is empty`, "certificate secret path is empty"}},
		{name: "nil vault.Client", src: keys.VaultTransit{Client: (*vault.Client)(nil), Key: "ec", CertPath: "cert/ec"}, wantInErr: []string{"no Vault client configured"}},
		{name: "key name with a slash", src: src("a/b", "cert/ec"), wantInErr: []string{`transit key name "a/b"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.src
			m, err := s.Load(context.Background())
			if tc.wantErrIs == nil && tc.wantStatus == 0 && tc.wantInErr == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if err := signAndVerifyJWT(m, jose.ES256, ecKeyP256().Public()); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if tc.wantErrIs != nil && !errors.Is(err, tc.wantErrIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.wantErrIs)
			}
			var re *api.ResponseError
			if tc.wantStatus != 0 && (!errors.As(err, &re) || re.StatusCode != tc.wantStatus) {
				t.Errorf("err = %v, want *api.ResponseError %d", err, tc.wantStatus)
			}
			for _, want := range tc.wantInErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %q\nwant it to contain %q", err, want)
				}
			}
			assertNoSecrets(t, "error", err.Error(), vaultToken, "hvs.wrong-token-XYZZY", "XYZZY")
		})
	}

	t.Run("expired certificate refused by the Holder", func(t *testing.T) {
		h := keys.NewHolder(&keys.VaultTransit{Client: client, Key: "ec", CertPath: "cert/expired"}, keys.HolderOptions{Logger: testLogger(t)})
		if _, err := h.Reload(context.Background()); !errors.Is(err, keys.ErrCertificateExpired) {
			t.Errorf("Reload err = %v, want ErrCertificateExpired", err)
		}
		if h.Current() != nil || h.Status().Failures != 1 {
			t.Errorf("Current %v, Status %+v", h.Current(), h.Status())
		}
	})

	t.Run("String", func(t *testing.T) {
		s := keys.VaultTransit{Client: client, Key: "ec", CertPath: "cert/ec"}
		if got := s.String(); got != "vault-transit:transit/keys/ec+secret/data/cert/ec" {
			t.Errorf("String = %q", got)
		}
		for _, f := range []string{"%v", "%+v", "%#v"} {
			assertNoSecrets(t, "fmt "+f, fmt.Sprintf(f, s), vaultToken)
		}
		m, err := s.Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"%v", "%+v", "%#v"} {
			out := fmt.Sprintf(f, m) + fmt.Sprintf(f, m.Opaque)
			assertNoSecrets(t, "fmt "+f, out, vaultToken)
		}
		if !strings.Contains(fmt.Sprint(m.Opaque), "transit/keys/ec v1") {
			t.Errorf("signer String = %q", fmt.Sprint(m.Opaque))
		}
	})
}

// vaultProxy forwards to a fake Vault and can be told to misbehave on the
// sign endpoint, or to go away.
type vaultProxy struct {
	*httptest.Server
	rewrite atomic.Pointer[func(map[string]any)] // edits the sign answer's data
	delay   atomic.Int64                         // nanoseconds to hold the sign answer
}

func newVaultProxy(t *testing.T, target string) *vaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &vaultProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.Contains(resp.Request.URL.Path, "/sign/") || resp.StatusCode != http.StatusOK {
			return nil
		}
		f := p.rewrite.Load()
		if f == nil {
			return nil
		}
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return err
		}
		resp.Body.Close()
		data, _ := body["data"].(map[string]any)
		(*f)(data)
		b, _ := json.Marshal(body)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return nil
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(p.delay.Load()); d > 0 && strings.Contains(r.URL.Path, "/sign/") {
			// Reading the body first lets the server notice the client
			// hanging up, which cancels r.Context().
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *vaultProxy) setRewrite(f func(map[string]any)) { p.rewrite.Store(&f) }

func TestVaultTransitSignFailures(t *testing.T) {
	f := newTransitFixture(t, ecKeyP256())
	proxy := newVaultProxy(t, f.srv.URL)
	client, err := vault.New(vault.Config{Address: proxy.URL, Auth: vault.AuthConfig{Token: vaultToken}}, vault.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	src := &keys.VaultTransit{Client: client, Key: "cqgate", CertPath: "cqgate/cert", SignTimeout: 200 * time.Millisecond}
	m, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sign := func() error { return signAndVerifyJWT(m, jose.ES256, m.Chain[0].PublicKey) }
	if err := sign(); err != nil {
		t.Fatalf("signing through the proxy: %v", err)
	}
	zeroSig := func(data map[string]any) {
		// Well formed, but r = s = 0 verifies with no key.
		data["signature"] = "vault:v1:" + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	}

	tests := []struct {
		name       string
		setup      func()
		wantStatus int
		wantInErr  []string
		wantIs     error
	}{
		{name: "sealed", setup: func() { f.srv.SetDown(true) }, wantStatus: 503, wantInErr: []string{"Vault is sealed", "transit/keys/cqgate v1"}},
		{name: "permission denied", setup: func() { f.srv.SetDenied("transit/sign/", true) }, wantStatus: 403, wantInErr: []string{"permission denied"}},
		{name: "recovers", setup: func() {}},
		{name: "other key version", setup: func() {
			proxy.setRewrite(func(d map[string]any) {
				d["signature"] = strings.Replace(d["signature"].(string), "vault:v1:", "vault:v2:", 1)
			})
		}, wantInErr: []string{"signed with key version 2, not the loaded version 1"}},
		{name: "no prefix", setup: func() {
			proxy.setRewrite(func(d map[string]any) { d["signature"] = strings.TrimPrefix(d["signature"].(string), "vault:v1:") })
		}, wantInErr: []string{`lacks the "vault:v<N>:" prefix`}},
		{name: "standard base64 for jws", setup: func() {
			proxy.setRewrite(func(d map[string]any) { d["signature"] = "vault:v1:+/+/" })
		}, wantInErr: []string{"not base64"}},
		{name: "wrong length", setup: func() {
			proxy.setRewrite(func(d map[string]any) { d["signature"] = "vault:v1:AAAA" })
		}, wantInErr: []string{"signature is 3 bytes, want 64 (r||s) for P-256"}},
		{name: "signature that does not verify", setup: func() { proxy.setRewrite(zeroSig) }, wantInErr: []string{"does not verify with the loaded public key"}},
		{name: "no signature", setup: func() {
			proxy.setRewrite(func(d map[string]any) { delete(d, "signature") })
		}, wantInErr: []string{"the answer holds no signature"}},
		{name: "timeout", setup: func() { proxy.delay.Store(int64(5 * time.Second)) }, wantIs: context.DeadlineExceeded},
		{name: "connection refused", setup: func() { proxy.Close() }, wantInErr: []string{"connection refused"}},
	}
	for _, tc := range tests { // sequential: each case builds on the proxy's state
		t.Run(tc.name, func(t *testing.T) {
			f.srv.SetDown(false)
			f.srv.SetDenied("transit/sign/", false)
			proxy.rewrite.Store(nil)
			proxy.delay.Store(0)
			tc.setup()
			if tc.wantStatus == 0 && tc.wantInErr == nil && tc.wantIs == nil {
				if err := sign(); err != nil {
					t.Fatalf("sign: %v", err)
				}
				return
			}
			_, err := m.JOSESigner().SignPayload([]byte("header.payload"), jose.ES256)
			var se *keys.SignError
			if !errors.As(err, &se) || !se.Upstream() || !errors.Is(err, keys.ErrSigner) {
				t.Fatalf("err = %v (%T), want a *keys.SignError that is Upstream and ErrSigner", err, err)
			}
			if se.StatusCode != tc.wantStatus {
				t.Errorf("StatusCode = %d, want %d", se.StatusCode, tc.wantStatus)
			}
			if want := fmt.Sprintf("Vault answered HTTP %d: ", tc.wantStatus); tc.wantStatus != 0 &&
				(!strings.Contains(err.Error(), want) || strings.ContainsAny(err.Error(), "\n") || strings.Contains(err.Error(), "URL:")) {
				t.Errorf("err = %q, want Vault's answer on one line (%q...)", err, want)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.wantIs)
			}
			for _, want := range append(tc.wantInErr, "keys: signing with Vault transit key transit/keys/cqgate v1") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %q\nwant it to contain %q", err, want)
				}
			}
			assertNoSecrets(t, "error", err.Error(), vaultToken, "header.payload", base64.StdEncoding.EncodeToString([]byte("header.payload")))

			// Through go-jose, as the assertion package signs: the same error.
			if err := sign(); !errors.As(err, &se) {
				t.Errorf("go-jose Sign err = %v, want the *keys.SignError", err)
			}
		})
	}
}

func TestVaultTransitRotation(t *testing.T) {
	f := newTransitFixture(t, ecKeyP256())
	logger, hook := logtest.NewNullLogger()
	h := keys.NewHolder(f.src, keys.HolderOptions{Logger: logger})
	ctx := context.Background()
	if err := h.Poll(ctx); err != nil {
		t.Fatalf("first Poll: %v", err)
	}
	m1 := h.Current()
	if m1 == nil || m1.Version != "transit:v1+kv:v1" {
		t.Fatalf("after the first Poll Current = %v", m1)
	}

	// An unchanged source costs a version check only.
	dataReads, signs := f.srv.RequestsFor("secret/data/cqgate/cert"), f.srv.RequestsFor("transit/sign/cqgate")
	if err := h.Poll(ctx); err != nil || h.Current() != m1 {
		t.Fatalf("Poll without change = %v, Current %v", err, h.Current())
	}
	if f.srv.RequestsFor("secret/data/cqgate/cert") != dataReads || f.srv.RequestsFor("transit/sign/cqgate") != signs {
		t.Error("Poll without change read the certificate or signed")
	}

	// Transit rotated, no new certificate yet: the old material stays and
	// keeps signing with version 1.
	if v := f.srv.RotateTransitKey("transit", "cqgate", ecKeyP256b()); v != 2 {
		t.Fatalf("rotated to version %d", v)
	}
	err := h.Poll(ctx)
	if !errors.Is(err, keys.ErrKeyMismatch) {
		t.Fatalf("Poll after rotation without a certificate: %v, want ErrKeyMismatch", err)
	}
	st := h.Status()
	if h.Current() != m1 || st.Failures != 1 || st.LastError != err.Error() || st.LastErrorAt.IsZero() || st.Version != m1.Version || st.Reloads != 1 {
		t.Errorf("after the failed Poll: Current %v, Status %+v", h.Current(), st)
	}
	if e := hook.LastEntry(); e == nil || e.Data["kept_version"] != "transit:v1+kv:v1" {
		t.Errorf("want a warn entry keeping v1, got %+v", e)
	}
	if err := signAndVerifyJWT(m1, jose.ES256, ecKeyP256().Public()); err != nil {
		t.Fatalf("the old material after rotation: %v", err)
	}
	if reqs := f.srv.LogFor("transit/sign/cqgate"); fmt.Sprint(reqs[len(reqs)-1].Body["key_version"]) != "1" {
		t.Errorf("signed with key_version %v, want 1", reqs[len(reqs)-1].Body["key_version"])
	}
	// The same broken version is tried again at the next Poll.
	if err := h.Poll(ctx); !errors.Is(err, keys.ErrKeyMismatch) || h.Status().Failures != 2 {
		t.Errorf("second Poll = %v, Failures %d; want another mismatch", err, h.Status().Failures)
	}

	// The certificate for version 2 arrives.
	f.srv.Put("secret", "cqgate/cert", map[string]any{"certificate": string(f.ca.certify(t, ecKeyP256b().Public(), "cqgate transit v2"))})
	if err := h.Poll(ctx); err != nil {
		t.Fatalf("Poll after the new certificate: %v", err)
	}
	m2 := h.Current()
	st = h.Status()
	if m2 == m1 || m2.Version != "transit:v2+kv:v2" || st.Failures != 0 || st.Reloads != 2 || st.Version != m2.Version {
		t.Fatalf("after rotation: Current %v, Status %+v", m2, st)
	}
	if err := signAndVerifyJWT(m2, jose.ES256, ecKeyP256b().Public()); err != nil {
		t.Fatal(err)
	}
	if reqs := f.srv.LogFor("transit/sign/cqgate"); fmt.Sprint(reqs[len(reqs)-1].Body["key_version"]) != "2" {
		t.Errorf("signed with key_version %v, want 2", reqs[len(reqs)-1].Body["key_version"])
	}

	// An expired certificate for a new version is refused; v2 stays.
	expired := f.ca.certifyValid(t, ecKeyP256b().Public(), "expired", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	f.srv.Put("secret", "cqgate/cert", map[string]any{"certificate": string(expired)})
	if err := h.Poll(ctx); !errors.Is(err, keys.ErrCertificateExpired) || h.Current() != m2 {
		t.Errorf("Poll of an expired certificate = %v, Current %v", err, h.Current())
	}
	for _, e := range hook.AllEntries() {
		assertNoSecrets(t, "log entry", entryText(e), vaultToken)
	}
}
