package assertion

import (
	"context"
	"crypto"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/cqgate/cqgate/internal/clocktest"
)

// BenchmarkCacheHit is the hot path: Token on a warm key, with a B2B
// context in the key, as every proxied request does.
func BenchmarkCacheHit(b *testing.B) {
	c := NewCache(CacheConfig{})
	src := &countingSource{clock: clocktest.New(time.Now()), expiresIn: time.Hour}
	key := Request{TokenURL: "https://fhir-ehr.example.com/r4/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca/Authorization/token",
		ClientID: "gateway.example.org", Scope: "system/Patient.read system/Observation.read", B2B: fullB2B()}.Key()
	ctx := context.Background()
	if _, err := c.Token(ctx, key, src); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Token(ctx, key, src); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Token(ctx, key, src); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	if n := src.n.Load(); n != 1 {
		b.Fatalf("%d exchanges on a warm key", n)
	}
}

// BenchmarkKeyString is what keying the cache by Key.String() would add
// to every hit; the cache is keyed by the Key struct instead.
func BenchmarkKeyString(b *testing.B) {
	key := Request{TokenURL: "https://fhir-ehr.example.com/r4/0b8a0111-e8e6-4c26-a91c-5069cbc6b1ca/Authorization/token",
		ClientID: "gateway.example.org", Scope: "system/Patient.read system/Observation.read", B2B: fullB2B()}.Key()
	b.ReportAllocs()
	for b.Loop() {
		_ = key.String()
	}
}

// BenchmarkB2BDigest is the cost of Request.Key with a B2B context;
// callers with a fixed context can compute the Key once.
func BenchmarkB2BDigest(b *testing.B) {
	ctx := fullB2B()
	b.ReportAllocs()
	for b.Loop() {
		_ = ctx.Digest()
	}
}

func BenchmarkSign(b *testing.B) {
	for _, bc := range []struct {
		alg jose.SignatureAlgorithm
		key crypto.Signer
	}{
		{jose.RS256, rsaKey()},
		{jose.RS384, rsaKey()},
		{jose.ES256, p256Key()},
		{jose.ES384, p384Key()},
	} {
		b.Run(string(bc.alg), func(b *testing.B) {
			s := &Signer{Keys: staticKeys{newMaterial(b, bc.key)}}
			c := Claims{ClientID: "gateway.example.org", Audience: testAud, Algorithm: bc.alg}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(context.Background(), c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseTokenResponse(b *testing.B) {
	body := []byte(`{"access_token":"eyJraWQiOiIyMDIzLTA0LTE3VDE0OjQ0OjQ4LjE0NS5lYyIsImFsZyI6IkVTMjU2In0.eyJzdWIiOiJnYXRld2F5LmV4YW1wbGUub3JnIn0.c2lnbmF0dXJl","scope":"system/Patient.read system/Observation.read","token_type":"Bearer","expires_in":570}`)
	sent := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		re := &RetrieveError{TokenURL: testAud, StatusCode: 200}
		if _, err := tokenFromResponse(re, "application/json;charset=UTF-8", body, sent, ""); err != nil {
			b.Fatal(err)
		}
	}
}
