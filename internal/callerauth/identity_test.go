package callerauth_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cqgate/cqgate/internal/callerauth"
)

func TestNone(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/fhir/1.2.3.4/Patient/1", nil)
	r.Header.Set("Authorization", "Bearer whatever") // ignored
	id, err := callerauth.None{}.Authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	if id.Name != callerauth.AnonymousCaller || id.Method != callerauth.MethodNone {
		t.Fatalf("identity = %+v", id)
	}
	// Each call gets its own Identity.
	id.Name = "changed"
	if again, _ := (callerauth.None{}).Authenticate(r); again.Name != callerauth.AnonymousCaller {
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
		{callerauth.ErrUnauthenticated, ""}, // a bare sentinel has no method
		{&callerauth.AuthError{Method: callerauth.MethodAPIKey, Reason: "r", Err: callerauth.ErrUnauthenticated}, `Bearer realm="cqgate"`},
		{fmt.Errorf("api: %w", &callerauth.AuthError{Method: callerauth.MethodAPIKey, Reason: "r", Err: callerauth.ErrBadCredentials}), `Bearer realm="cqgate", error="invalid_token"`},
		{&callerauth.AuthError{Method: callerauth.MethodMTLS, Reason: "r", Err: callerauth.ErrUnauthenticated}, `TLS-Client-Certificate realm="cqgate"`},
	}
	for _, tt := range tests {
		if got := callerauth.Challenge(tt.err); got != tt.want {
			t.Errorf("Challenge(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	err := &callerauth.AuthError{Method: callerauth.MethodAPIKey, Reason: "unknown key", Err: callerauth.ErrBadCredentials}
	if got := err.Error(); got != "callerauth: invalid credentials: api_key: unknown key" {
		t.Errorf("Error() = %q", got)
	}
	var nilID *callerauth.Identity
	if got := nilID.String(); got != "<nil>" {
		t.Errorf("nil Identity String = %q", got)
	}
}
