package callerauth

import (
	"net/http"
	"testing"
)

func TestCanonicalAPIKeyHeader(t *testing.T) {
	if c := http.CanonicalHeaderKey(HeaderAPIKey); c != canonicalAPIKeyHeader {
		t.Fatalf("canonical form of %s is %s, not %s", HeaderAPIKey, c, canonicalAPIKeyHeader)
	}
}
