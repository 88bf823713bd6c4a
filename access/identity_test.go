package access_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cqgate/cqgate/access"
)

func TestNone(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3.4/Patient/1", nil)
	r.Header.Set("Authorization", "Bearer whatever") // ignored
	id, err := access.None{}.Authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	if id.Name != access.AnonymousCaller || id.Method != access.MethodNone {
		t.Fatalf("identity = %+v", id)
	}
	// Each call gets its own Identity.
	id.Name = "changed"
	if again, _ := (access.None{}).Authenticate(r); again.Name != access.AnonymousCaller {
		t.Fatalf("second identity = %+v", again)
	}
}

func TestChallenge(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("boom"), ""},
		{access.ErrUnauthenticated, ""}, // a bare sentinel has no method
		{&access.AuthError{Method: access.MethodAPIKey, Reason: "r", Err: access.ErrUnauthenticated}, `Bearer realm="cqgate"`},
		{fmt.Errorf("api: %w", &access.AuthError{Method: access.MethodAPIKey, Reason: "r", Err: access.ErrBadCredentials}), `Bearer realm="cqgate", error="invalid_token"`},
		{&access.AuthError{Method: access.MethodMTLS, Reason: "r", Err: access.ErrUnauthenticated}, `TLS-Client-Certificate realm="cqgate"`},
	}
	for _, tt := range tests {
		if got := access.Challenge(tt.err); got != tt.want {
			t.Errorf("Challenge(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	err := &access.AuthError{Method: access.MethodAPIKey, Reason: "unknown key", Err: access.ErrBadCredentials}
	if got := err.Error(); got != "access: invalid credentials: api_key: unknown key" {
		t.Errorf("Error() = %q", got)
	}
	var nilID *access.Identity
	if got := nilID.String(); got != "<nil>" {
		t.Errorf("nil Identity String = %q", got)
	}
}
