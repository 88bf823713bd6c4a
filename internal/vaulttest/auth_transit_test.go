package vaulttest_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cqgate/cqgate/internal/vaulttest"
)

var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// call makes one raw request and decodes the JSON answer.
func call(t *testing.T, srv *vaulttest.Server, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, srv.URL+"/v1/"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNoContent {
		return resp.StatusCode, nil
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: body %q: %v", method, path, raw, err)
	}
	return resp.StatusCode, out
}

func errorsOf(body map[string]any) []string {
	var out []string
	for _, e := range body["errors"].([]any) {
		out = append(out, e.(string))
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestAppRoleLogin(t *testing.T) {
	srv := vaulttest.New(t, token)
	srv.AddAppRole("", "cqgate", vaulttest.AppRole{RoleID: "rid", SecretID: "sid", Token: vaulttest.TokenOptions{TTL: time.Minute, MaxTTL: time.Hour, Renewable: true, Policies: []string{"cqgate"}}})

	code, body := call(t, srv, "POST", "auth/approle/login", "", map[string]any{"role_id": "rid", "secret_id": "sid"})
	if code != 200 {
		t.Fatalf("login = %d %v", code, body)
	}
	if got := sortedKeys(body); !reflect.DeepEqual(got, []string{"auth", "data", "lease_duration", "lease_id", "renewable", "request_id", "warnings", "wrap_info"}) {
		t.Errorf("envelope keys = %v", got)
	}
	auth := body["auth"].(map[string]any)
	wantKeys(t, auth, "accessor", "client_token", "entity_id", "lease_duration", "metadata", "mfa_requirement", "num_uses", "orphan", "policies", "renewable", "token_policies", "token_type")
	if auth["lease_duration"] != float64(60) || auth["renewable"] != true || auth["token_type"] != "service" ||
		auth["metadata"].(map[string]any)["role_name"] != "cqgate" || !strings.HasPrefix(auth["client_token"].(string), "hvs.") {
		t.Errorf("auth = %v", auth)
	}
	issued := auth["client_token"].(string)
	if !srv.TokenValid(issued) || srv.Accessor(issued) != auth["accessor"] {
		t.Error("the issued token is not valid or its accessor differs")
	}

	for _, tc := range []struct {
		body any
		code int
		errs []string
	}{
		{map[string]any{"role_id": "rid", "secret_id": "wrong"}, 400, []string{"invalid role or secret ID"}},
		{map[string]any{"role_id": "nope", "secret_id": "sid"}, 400, []string{"invalid role or secret ID"}},
		{map[string]any{"secret_id": "sid"}, 400, []string{"missing role_id"}},
	} {
		code, body := call(t, srv, "POST", "auth/approle/login", "", tc.body)
		if code != tc.code || !reflect.DeepEqual(errorsOf(body), tc.errs) {
			t.Errorf("login %v = %d %v, want %d %v", tc.body, code, body, tc.code, tc.errs)
		}
	}
	// An unknown auth mount needs a token, like any path Vault does not know.
	if code, body := call(t, srv, "POST", "auth/nope/login", "", map[string]any{}); code != 403 || !reflect.DeepEqual(errorsOf(body), []string{"permission denied"}) {
		t.Errorf("unknown mount login = %d %v", code, body)
	}

	// Through the approle package, as cqgate logs in.
	c := srv.Client(t)
	c.ClearToken()
	s, err := c.Logical().Write("auth/approle/login", map[string]any{"role_id": "rid", "secret_id": "sid"})
	if err != nil || s.Auth == nil || s.Auth.LeaseDuration != 60 || !s.Auth.Renewable {
		t.Fatalf("api login = %+v, %v", s, err)
	}

	log := srv.LogFor("auth/approle/login")
	if len(log) != 5 || log[0].Body["secret_id"] != "<redacted>" || log[0].Body["role_id"] != "rid" || log[0].Status != 200 || log[1].Status != 400 {
		t.Errorf("log = %+v", log)
	}
}

func TestKubernetesLogin(t *testing.T) {
	srv := vaulttest.New(t, token)
	srv.AddKubernetesRole("k8s", "cqgate", vaulttest.KubernetesRole{JWT: "jwt-1", ServiceAccountName: "sa", ServiceAccountNamespace: "ns", Token: vaulttest.TokenOptions{TTL: time.Hour}})
	code, body := call(t, srv, "POST", "auth/k8s/login", "", map[string]any{"role": "cqgate", "jwt": "jwt-1"})
	if code != 200 {
		t.Fatalf("login = %d %v", code, body)
	}
	md := body["auth"].(map[string]any)["metadata"].(map[string]any)
	if md["role"] != "cqgate" || md["service_account_name"] != "sa" || md["service_account_namespace"] != "ns" || md["service_account_uid"] == "" {
		t.Errorf("metadata = %v", md)
	}
	for _, tc := range []struct {
		body map[string]any
		code int
		errs []string
	}{
		{map[string]any{"role": "cqgate", "jwt": "other"}, 403, []string{"permission denied"}},
		{map[string]any{"role": "nope", "jwt": "jwt-1"}, 400, []string{`invalid role name "nope"`}},
		{map[string]any{"jwt": "jwt-1"}, 400, []string{"missing role"}},
		{map[string]any{"role": "cqgate"}, 400, []string{"missing jwt"}},
	} {
		code, body := call(t, srv, "POST", "auth/k8s/login", "", tc.body)
		if code != tc.code || !reflect.DeepEqual(errorsOf(body), tc.errs) {
			t.Errorf("login %v = %d %v, want %d %v", tc.body, code, body, tc.code, tc.errs)
		}
	}
	if r := srv.LogFor("auth/k8s/login")[0]; r.Body["jwt"] != "<redacted>" {
		t.Errorf("jwt not redacted in the log: %v", r.Body)
	}
}

func TestTokenLifecycle(t *testing.T) {
	srv := vaulttest.New(t, token)
	short := srv.CreateToken(vaulttest.TokenOptions{TTL: 10 * time.Second, MaxTTL: 15 * time.Second, Renewable: true})
	fixed := srv.CreateToken(vaulttest.TokenOptions{TTL: time.Hour})
	forever := srv.CreateToken(vaulttest.TokenOptions{})

	// lookup-self
	code, body := call(t, srv, "GET", "auth/token/lookup-self", short, nil)
	data := body["data"].(map[string]any)
	if code != 200 || data["ttl"].(float64) < 9 || data["creation_ttl"] != float64(10) || data["explicit_max_ttl"] != float64(15) || data["renewable"] != true || data["expire_time"] == nil {
		t.Errorf("lookup-self = %d %v", code, data)
	}
	_, body = call(t, srv, "GET", "auth/token/lookup-self", forever, nil)
	if data := body["data"].(map[string]any); data["ttl"] != float64(0) || data["expire_time"] != nil || !reflect.DeepEqual(data["policies"], []any{"default"}) {
		t.Errorf("lookup-self of a token that never expires = %v", data)
	}

	// renew-self: capped at the max TTL with Vault's warning.
	code, body = call(t, srv, "PUT", "auth/token/renew-self", short, map[string]any{"increment": 60})
	auth := body["auth"].(map[string]any)
	if code != 200 || auth["lease_duration"].(float64) > 15 || auth["lease_duration"].(float64) < 13 || auth["client_token"] != short {
		t.Errorf("renew-self = %d %v", code, body)
	}
	if w, _ := body["warnings"].([]any); len(w) != 1 || !strings.Contains(w[0].(string), "exceeded the effective max_ttl") {
		t.Errorf("warnings = %v", body["warnings"])
	}
	code, body = call(t, srv, "POST", "auth/token/renew-self", fixed, map[string]any{})
	if code != 400 || !reflect.DeepEqual(errorsOf(body), []string{"lease is not renewable"}) {
		t.Errorf("renew-self of a non-renewable token = %d %v", code, body)
	}

	// Through the api package, as LifetimeWatcher renews.
	c := srv.Client(t)
	s, err := c.Auth().Token().RenewTokenAsSelf(short, 5)
	if err != nil || s.Auth.LeaseDuration != 5 || !s.Auth.Renewable {
		t.Errorf("RenewTokenAsSelf = %+v, %v", s, err)
	}

	// Expiry and revocation.
	expiring := srv.CreateToken(vaulttest.TokenOptions{TTL: 50 * time.Millisecond})
	if code, _ := call(t, srv, "GET", "auth/token/lookup-self", expiring, nil); code != 200 {
		t.Errorf("fresh token = %d", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for srv.TokenValid(expiring) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := call(t, srv, "GET", "auth/token/lookup-self", expiring, nil); code != 403 || !reflect.DeepEqual(errorsOf(body), []string{"permission denied"}) {
		t.Errorf("expired token = %d %v", code, body)
	}
	srv.RevokeToken(fixed)
	if code, _ := call(t, srv, "GET", "secret/data/x", fixed, nil); code != 403 {
		t.Errorf("revoked token = %d", code)
	}
	if entries := srv.LogFor("auth/token/renew-self"); entries[0].Accessor != srv.Accessor(short) || entries[0].Body["increment"] != json.Number("60") {
		t.Errorf("log = %+v", entries[0])
	}
}

func TestTransitKeys(t *testing.T) {
	srv := vaulttest.New(t, token)
	pub := srv.AddTransitKey("transit", "ec", vaulttest.KeyTypeECDSAP256)
	srv.AddTransitKey("transit", "aes", vaulttest.KeyTypeAES256)
	srv.ImportTransitKey("transit", "rsa", rsaKey())

	code, body := call(t, srv, "GET", "transit/keys/ec", token, nil)
	if code != 200 || body["mount_type"] != "transit" {
		t.Fatalf("read = %d %v", code, body)
	}
	data := body["data"].(map[string]any)
	wantKeysInclude(t, data, "name", "type", "derived", "deletion_allowed", "min_available_version", "min_decryption_version",
		"min_encryption_version", "latest_version", "exportable", "allow_plaintext_backup", "supports_encryption",
		"supports_decryption", "supports_signing", "supports_derivation", "auto_rotate_period", "imported_key", "keys")
	if data["type"] != "ecdsa-p256" || data["latest_version"] != float64(1) || data["supports_signing"] != true || data["supports_encryption"] != false {
		t.Errorf("data = %v", data)
	}
	v1 := data["keys"].(map[string]any)["1"].(map[string]any)
	wantKeys(t, v1, "certificate_chain", "creation_time", "name", "public_key")
	if v1["name"] != "P-256" || !publicKeyPEMIs(t, v1["public_key"].(string), pub) {
		t.Errorf("version 1 = %v", v1)
	}
	_, body = call(t, srv, "GET", "transit/keys/rsa", token, nil)
	rsaV1 := body["data"].(map[string]any)["keys"].(map[string]any)["1"].(map[string]any)
	if rsaV1["name"] != "rsa-2048" || !publicKeyPEMIs(t, rsaV1["public_key"].(string), rsaKey().Public()) {
		t.Errorf("rsa version 1 = %v", rsaV1)
	}
	_, body = call(t, srv, "GET", "transit/keys/aes", token, nil)
	if k := body["data"].(map[string]any)["keys"].(map[string]any)["1"]; reflect.TypeOf(k).Kind() != reflect.Float64 {
		t.Errorf("symmetric key version = %v, want a creation timestamp", k)
	}
	if code, body := call(t, srv, "GET", "transit/keys/nope", token, nil); code != 404 || len(errorsOf(body)) != 0 {
		t.Errorf("missing key = %d %v", code, body)
	}

	// Rotation, over HTTP and in Go.
	code, body = call(t, srv, "POST", "transit/keys/ec/rotate", token, nil)
	if code != 200 || body["data"].(map[string]any)["latest_version"] != float64(2) {
		t.Errorf("rotate = %d %v", code, body)
	}
	if v := srv.RotateTransitKey("transit", "ec", nil); v != 3 {
		t.Errorf("RotateTransitKey = %d", v)
	}
	if srv.TransitPublicKey("transit", "ec", 1).(*ecdsa.PublicKey).Equal(srv.TransitPublicKey("transit", "ec", 3)) {
		t.Error("rotation kept the key")
	}
	if srv.TransitPublicKey("transit", "ec", 9) != nil || srv.TransitPublicKey("transit", "nope", 0) != nil {
		t.Error("TransitPublicKey of a missing version or key is not nil")
	}

	// Mounts and key creation over HTTP, as the real-Vault suite does.
	c := srv.Client(t)
	if err := c.Sys().Mount("t2", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sys().Mount("t2", &api.MountInput{Type: "transit"}); err == nil || !strings.Contains(err.Error(), "path is already in use at t2/") {
		t.Errorf("mounting twice: %v", err)
	}
	if _, err := c.Logical().Write("t2/keys/k", map[string]any{"type": "ecdsa-p384"}); err != nil {
		t.Fatal(err)
	}
	if s, err := c.Logical().Read("t2/keys/k"); err != nil || s.Data["type"] != "ecdsa-p384" {
		t.Errorf("created key = %v, %v", s, err)
	}
	if _, err := c.Logical().Write("t2/keys/bad", map[string]any{"type": "rsa-1024"}); err == nil || !strings.Contains(err.Error(), `unknown key type "rsa-1024"`) {
		t.Errorf("bad type: %v", err)
	}
	if _, err := c.Logical().Delete("t2/keys/k"); err == nil || !strings.Contains(err.Error(), "deletion is not allowed") {
		t.Errorf("delete without deletion_allowed: %v", err)
	}
	if _, err := c.Logical().Write("t2/keys/k/config", map[string]any{"deletion_allowed": true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Delete("t2/keys/k"); err != nil {
		t.Errorf("delete: %v", err)
	}
	if err := c.Sys().Unmount("t2"); err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, srv, "GET", "t2/keys/k", token, nil); code != 404 || errorsOf(body)[0] != `no handler for route "t2/keys/k". route entry not found.` {
		t.Errorf("read after unmount = %d %v", code, body)
	}
	if err := c.Sys().Mount("kv2", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KVv2("kv2").Put(context.Background(), "a", map[string]any{"b": "c"}); err != nil {
		t.Errorf("KV on a mount enabled over HTTP: %v", err)
	}
}

func publicKeyPEMIs(t *testing.T, s string, want crypto.PublicKey) bool {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Errorf("public_key %q is not a PUBLIC KEY PEM block", s)
		return false
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Error(err)
		return false
	}
	return pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(want)
}

func TestTransitSign(t *testing.T) {
	srv := vaulttest.New(t, token)
	ecPub := srv.AddTransitKey("transit", "ec", vaulttest.KeyTypeECDSAP256).(*ecdsa.PublicKey)
	ec384 := srv.AddTransitKey("transit", "ec384", vaulttest.KeyTypeECDSAP384).(*ecdsa.PublicKey)
	edPub := srv.AddTransitKey("transit", "ed", vaulttest.KeyTypeEd25519).(ed25519.PublicKey)
	srv.AddTransitKey("transit", "aes", vaulttest.KeyTypeAES256)
	srv.ImportTransitKey("transit", "rsa", rsaKey())
	rsaPub := &rsaKey().PublicKey
	input := []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0")
	in := base64.StdEncoding.EncodeToString(input)
	sum256, sum384 := sha256.Sum256(input), sha512.Sum384(input)

	sign := func(path string, body map[string]any) (int, map[string]any) {
		t.Helper()
		return call(t, srv, "POST", path, token, body)
	}
	decode := func(t *testing.T, sig, prefix string, enc *base64.Encoding) []byte {
		t.Helper()
		rest, ok := strings.CutPrefix(sig, prefix)
		if !ok {
			t.Fatalf("signature %q lacks %q", sig, prefix)
		}
		raw, err := enc.DecodeString(rest)
		if err != nil {
			t.Fatalf("signature %q: %v", sig, err)
		}
		return raw
	}

	t.Run("RSA PKCS #1 v1.5, sha2-256", func(t *testing.T) {
		code, body := sign("transit/sign/rsa", map[string]any{"input": in, "hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15"})
		data := body["data"].(map[string]any)
		if code != 200 || data["key_version"] != float64(1) {
			t.Fatalf("sign = %d %v", code, body)
		}
		raw := decode(t, data["signature"].(string), "vault:v1:", base64.StdEncoding)
		if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, sum256[:], raw); err != nil {
			t.Error(err)
		}
	})
	t.Run("RSA PKCS #1 v1.5, sha2-384 in the URL", func(t *testing.T) {
		_, body := sign("transit/sign/rsa/sha2-384", map[string]any{"input": in, "hash_algorithm": "sha2-256", "signature_algorithm": "pkcs1v15"})
		raw := decode(t, body["data"].(map[string]any)["signature"].(string), "vault:v1:", base64.StdEncoding)
		if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA384, sum384[:], raw); err != nil {
			t.Error(err)
		}
	})
	t.Run("RSA PSS by default", func(t *testing.T) {
		_, body := sign("transit/sign/rsa", map[string]any{"input": in})
		raw := decode(t, body["data"].(map[string]any)["signature"].(string), "vault:v1:", base64.StdEncoding)
		if err := rsa.VerifyPSS(rsaPub, crypto.SHA256, sum256[:], raw, nil); err != nil {
			t.Error(err)
		}
	})
	t.Run("ECDSA ASN.1 by default", func(t *testing.T) {
		_, body := sign("transit/sign/ec", map[string]any{"input": in})
		raw := decode(t, body["data"].(map[string]any)["signature"].(string), "vault:v1:", base64.StdEncoding)
		if !ecdsa.VerifyASN1(ecPub, sum256[:], raw) {
			t.Error("ASN.1 signature does not verify")
		}
	})
	t.Run("ECDSA JWS r||s, URL-safe base64 without padding", func(t *testing.T) {
		for _, tc := range []struct {
			key  string
			pub  *ecdsa.PublicKey
			hash string
			sum  []byte
			size int
		}{{"ec", ecPub, "sha2-256", sum256[:], 32}, {"ec384", ec384, "sha2-384", sum384[:], 48}} {
			for range 20 { // r or s with leading zero bytes must keep their width
				_, body := sign("transit/sign/"+tc.key, map[string]any{"input": in, "hash_algorithm": tc.hash, "marshaling_algorithm": "jws"})
				sig := body["data"].(map[string]any)["signature"].(string)
				if strings.ContainsAny(sig, "+/=") {
					t.Fatalf("jws signature %q is not unpadded URL-safe base64", sig)
				}
				raw := decode(t, sig, "vault:v1:", base64.RawURLEncoding)
				if len(raw) != 2*tc.size {
					t.Fatalf("r||s is %d bytes, want %d", len(raw), 2*tc.size)
				}
				r, s := new(big.Int).SetBytes(raw[:tc.size]), new(big.Int).SetBytes(raw[tc.size:])
				if !ecdsa.Verify(tc.pub, tc.sum, r, s) {
					t.Fatal("jws signature does not verify")
				}
			}
		}
	})
	t.Run("Ed25519 signs the input itself", func(t *testing.T) {
		_, body := sign("transit/sign/ed", map[string]any{"input": in})
		raw := decode(t, body["data"].(map[string]any)["signature"].(string), "vault:v1:", base64.StdEncoding)
		if !ed25519.Verify(edPub, input, raw) {
			t.Error("ed25519 signature does not verify")
		}
	})
	t.Run("key_version pins a rotated key", func(t *testing.T) {
		next, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if v := srv.RotateTransitKey("transit", "ec", next); v != 2 {
			t.Fatalf("rotated to %d", v)
		}
		_, body := sign("transit/sign/ec", map[string]any{"input": in, "marshaling_algorithm": "jws", "key_version": "1"})
		data := body["data"].(map[string]any)
		raw := decode(t, data["signature"].(string), "vault:v1:", base64.RawURLEncoding)
		if data["key_version"] != float64(1) || !ecdsa.Verify(ecPub, sum256[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
			t.Errorf("key_version 1 answer %v does not verify with version 1", data)
		}
		_, body = sign("transit/sign/ec", map[string]any{"input": in, "marshaling_algorithm": "jws"})
		raw = decode(t, body["data"].(map[string]any)["signature"].(string), "vault:v2:", base64.RawURLEncoding)
		if !ecdsa.Verify(&next.PublicKey, sum256[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
			t.Error("latest signature does not verify with version 2")
		}
	})

	for _, tc := range []struct {
		name string
		path string
		body map[string]any
		want string
	}{
		{"missing key", "transit/sign/nope", map[string]any{"input": in}, "signing key not found"},
		{"symmetric key", "transit/sign/aes", map[string]any{"input": in}, "key type aes256-gcm96 does not support signing"},
		{"version too high", "transit/sign/ec", map[string]any{"input": in, "key_version": 9}, "requested version for signing is higher than the latest key version"},
		{"negative version", "transit/sign/ec", map[string]any{"input": in, "key_version": -1}, "requested version for signing is negative"},
		{"bad hash", "transit/sign/ec", map[string]any{"input": in, "hash_algorithm": "md5"}, `invalid hash algorithm "md5"`},
		{"bad marshaling", "transit/sign/ec", map[string]any{"input": in, "marshaling_algorithm": "der"}, `invalid marshaling type "der"`},
		{"input not base64", "transit/sign/ec", map[string]any{"input": "%%%"}, "unable to decode input as base64: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := sign(tc.path, tc.body)
			if code != 400 || len(errorsOf(body)) != 1 || !strings.HasPrefix(errorsOf(body)[0], tc.want) {
				t.Errorf("= %d %v, want 400 %q", code, body, tc.want)
			}
		})
	}
	t.Run("below min_encryption_version", func(t *testing.T) {
		if code, body := call(t, srv, "POST", "transit/keys/ec/config", token, map[string]any{"min_encryption_version": 2}); code != 200 {
			t.Fatalf("config = %d %v", code, body)
		}
		code, body := sign("transit/sign/ec", map[string]any{"input": in, "key_version": 1})
		if code != 400 || errorsOf(body)[0] != "requested version for signing is less than the minimum encryption key version" {
			t.Errorf("= %d %v", code, body)
		}
	})
	t.Run("needs a token; SetDenied and SetDown apply", func(t *testing.T) {
		if code, _ := call(t, srv, "POST", "transit/sign/ec", "", map[string]any{"input": in}); code != 403 {
			t.Errorf("no token = %d", code)
		}
		srv.SetDenied("/v1/transit/sign/", true)
		if code, body := sign("transit/sign/ec", map[string]any{"input": in}); code != 403 || errorsOf(body)[0] != "permission denied" {
			t.Errorf("denied = %d %v", code, body)
		}
		if code, _ := call(t, srv, "GET", "transit/keys/ec", token, nil); code != 200 {
			t.Errorf("keys read while only sign is denied = %d", code)
		}
		srv.SetDenied("transit/sign/", false)
		srv.SetDown(true)
		if code, body := sign("transit/sign/ec", map[string]any{"input": in}); code != 503 || errorsOf(body)[0] != "Vault is sealed" {
			t.Errorf("sealed = %d %v", code, body)
		}
		srv.SetDown(false)
	})

	var last vaulttest.Request
	for _, r := range srv.Log() {
		if r.Path == "transit/sign/ec" && r.Status == 200 {
			last = r
		}
	}
	if last.Accessor != srv.Accessor(token) || last.Method != "POST" || last.Body["input"] != in {
		t.Errorf("last logged sign = %+v", last)
	}
}

func TestBadRequests(t *testing.T) {
	srv := vaulttest.New(t, token)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/secret/data/x", strings.NewReader("{not json"))
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 400 || !strings.HasPrefix(errorsOf(body)[0], "failed to parse JSON input") {
		t.Errorf("bad JSON = %d %v", resp.StatusCode, body)
	}
	var re *api.ResponseError
	_, err = srv.Client(t).Logical().Write("sys/mounts/x", map[string]any{"type": "pki"})
	if !errors.As(err, &re) || re.StatusCode != 400 {
		t.Errorf("unsupported engine: %v", err)
	}
}
