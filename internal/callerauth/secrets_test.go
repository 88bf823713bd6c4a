package callerauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cqgate/cqgate/internal/callerauth"
)

// TestNoSecretsInErrors presents an API key in every way that fails and
// checks that no error string, challenge or String/GoString output shows
// it (or a recognizable part of it).
func TestNoSecretsInErrors(t *testing.T) {
	const secret = "sk_live_Zq8Xv2Lm4Np6Rt0Yw3Ub5Ke7Hg9Jd1Fc"
	k := newKeys(t, map[string]string{"billing-svc": callerauth.HashKey(billingKey)}, &scriptedSource{results: []loadResult{
		{err: errors.New("vault: permission denied")},
		{m: map[string]string{"billing-svc": secret}}, // the key itself pasted into Vault
	}})

	var outputs []string
	record := func(what string, err error) {
		if err == nil {
			t.Errorf("%s: no error", what)
			return
		}
		outputs = append(outputs, err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), callerauth.Challenge(err))
		var ae *callerauth.AuthError
		if errors.As(err, &ae) {
			outputs = append(outputs, fmt.Sprintf("%+v", *ae))
		}
	}
	presentations := [][][2]string{
		{{"Authorization", "Bearer " + secret}},
		{{"X-API-Key", secret}},
		{{"Authorization", "Basic " + secret}},
		{{"Authorization", secret}},
		{{"Authorization", "Bearer " + secret + " trailing"}},
		{{"X-API-Key", secret + "\x00"}},
		{{"X-API-Key", secret + strings.Repeat("x", 600)}},
		{{"Authorization", "Bearer " + secret}, {"X-API-Key", billingKey}},
		{{"Authorization", "Bearer " + billingKey}, {"X-API-Key", secret}},
		{{"X-API-Key", secret}, {"X-API-Key", secret}},
	}
	for i, hs := range presentations {
		r := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3.4/Patient/1", nil)
		for _, h := range hs {
			r.Header.Add(h[0], h[1])
		}
		_, err := k.Authenticate(r)
		record(fmt.Sprintf("presentation %d", i), err)
	}
	// A key configured where its hash belongs.
	_, err := callerauth.NewAPIKeys(map[string]string{"billing-svc": secret}, nil)
	record("NewAPIKeys", err)
	record("Replace", k.Replace(map[string]string{"billing-svc": secret}))
	record("Refresh failing", k.Refresh(context.Background()))
	record("Refresh loading a key", k.Refresh(context.Background()))
	outputs = append(outputs, k.String(), fmt.Sprintf("%v", k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k))

	// An accepted key shows up only as a fingerprint.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-API-Key", billingKey)
	id, err := k.Authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, id.String(), fmt.Sprintf("%+v", *id), fmt.Sprintf("%#v", id))

	for _, out := range outputs {
		for _, key := range []string{secret, billingKey} {
			for _, part := range []string{key, key[len(key)-16:]} {
				if strings.Contains(out, part) {
					t.Errorf("output shows a key: %q", out)
				}
			}
		}
	}
}

// FuzzAPIKeyAuthenticate checks that any header values yield an identity
// or an authentication error, never a panic, and that the error text is
// one of a fixed set: nothing of the presented values can reach it.
func FuzzAPIKeyAuthenticate(f *testing.F) {
	f.Add("Bearer "+billingKey, "")
	f.Add("", billingKey)
	f.Add("Bearer "+billingKey, reportKey)
	f.Add("bearer\t"+billingKey, " ")
	f.Add("Basic Zm9vOmJhcg==", "\x00")
	k, err := callerauth.NewAPIKeys(map[string]string{"billing-svc": callerauth.HashKey(billingKey), "reports": callerauth.HashKey(reportKey)}, nil)
	if err != nil {
		f.Fatal(err)
	}
	fixed := map[string]bool{}
	for _, s := range []string{
		"callerauth: unauthenticated: api_key: no Authorization or X-API-Key header",
		"callerauth: invalid credentials: api_key: more than one Authorization header",
		"callerauth: invalid credentials: api_key: more than one X-API-Key header",
		`callerauth: invalid credentials: api_key: Authorization header is not "Bearer <key>"`,
		"callerauth: invalid credentials: api_key: malformed bearer key",
		"callerauth: invalid credentials: api_key: malformed X-API-Key header",
		"callerauth: invalid credentials: api_key: Authorization and X-API-Key carry different keys",
		"callerauth: invalid credentials: api_key: unknown key",
	} {
		fixed[s] = true
	}
	f.Fuzz(func(t *testing.T, authz, xkey string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if authz != "" {
			r.Header["Authorization"] = []string{authz}
		}
		if xkey != "" {
			r.Header["X-Api-Key"] = []string{xkey}
		}
		id, err := k.Authenticate(r)
		if err != nil {
			if !fixed[err.Error()] {
				t.Fatalf("unexpected error text %q", err)
			}
			if !errors.Is(err, callerauth.ErrUnauthenticated) && !errors.Is(err, callerauth.ErrBadCredentials) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if id.Name != "billing-svc" && id.Name != "reports" {
			t.Fatalf("identity %+v", id)
		}
	})
}
