package assertion

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
)

func TestSignJKU(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &Signer{Keys: staticKeys{newMaterial(t, key)}}
	tests := []struct {
		name, jku string
		want      any // the jku header, nil for none
		errHas    string
	}{
		{name: "none", jku: "", want: nil},
		{name: "https", jku: "https://cqgate.example.org/.well-known/jwks.json", want: "https://cqgate.example.org/.well-known/jwks.json"},
		{name: "relative", jku: "/.well-known/jwks.json", errHas: `assertion: jku "/.well-known/jwks.json" is not an absolute http(s) URL`},
		{name: "other scheme", jku: "file:///etc/jwks.json", errHas: "is not an absolute http(s) URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := s.Sign(context.Background(), Claims{ClientID: "client", Audience: testAud, JKU: tc.jku})
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Sign = %v, want an error containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h, _ := rawSegments(t, tok)
			if h["jku"] != tc.want {
				t.Errorf("jku header = %v, want %v", h["jku"], tc.want)
			}
			if h["kid"] != "test-kid" || h["x5c"] == nil || h["typ"] != "JWT" {
				t.Errorf("header lost kid, x5c or typ: %v", h)
			}
		})
	}
}
