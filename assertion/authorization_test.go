package assertion

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A token the Cache hands out carries its Authorization value prebuilt
// (one value for every request sent with it, no allocation); any other
// token builds it; neither reveals it when printed.
func TestTokenAuthorization(t *testing.T) {
	c := NewCache(CacheConfig{})
	src := tokenSourceFunc(func(context.Context) (*Token, error) {
		return &Token{AccessToken: "secret-abc", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}, nil
	})
	key := Key{TokenURL: "https://as.example/token", ClientID: "c"}
	tests := []struct {
		name     string
		tok      func(t *testing.T) *Token
		prebuilt bool
	}{
		{"from the cache", func(t *testing.T) *Token {
			tok, err := c.Token(context.Background(), key, src)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, true},
		{"made elsewhere", func(*testing.T) *Token { return &Token{AccessToken: "secret-abc"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.tok(t)
			v := tok.Authorization()
			if len(v) != 1 || v[0] != "Bearer secret-abc" {
				t.Fatalf("Authorization = %q", v)
			}
			again := tok.Authorization()
			if shared := &again[0] == &v[0]; shared != tt.prebuilt {
				t.Errorf("shared value %v, want %v", shared, tt.prebuilt)
			}
			if allocs := testing.AllocsPerRun(100, func() { tok.Authorization() }); tt.prebuilt && allocs != 0 {
				t.Errorf("a prebuilt value allocates %v times", allocs)
			}
			for _, s := range []string{fmt.Sprintf("%v", tok), fmt.Sprintf("%+v", *tok), fmt.Sprintf("%#v", tok)} {
				if strings.Contains(s, "secret-abc") {
					t.Errorf("printed token reveals it: %s", s)
				}
			}
		})
	}
	if hit, err := c.Token(context.Background(), key, src); err != nil || &hit.Authorization()[0] != &tests[0].tok(t).Authorization()[0] {
		t.Errorf("cache hits do not share one value (err %v)", err)
	}
}
