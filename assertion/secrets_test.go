package assertion

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSecretsStayOutOfErrorsAndLogs walks the paths added for retries,
// holding, throttling, background refresh and registration and checks
// that no access token, assertion or software statement shows up in an
// error, a formatted value or a log line.
func TestSecretsStayOutOfErrorsAndLogs(t *testing.T) {
	clock := newFakeClock()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))

	// A server that issues a token once, then fails while echoing it and
	// the assertion back.
	var issued string
	ts := newTokenServer(t, sequence(
		jsonResponse(200, `{"access_token":"`+testAccessToken+`","token_type":"Bearer","expires_in":570}`),
		func(w http.ResponseWriter, _ *http.Request, form url.Values) {
			w.Header().Set("X-Request-Id", "r-"+testAccessToken)
			jsonResponse(500, fmt.Sprintf(`{"access_token":%q,"error":"server_error","error_description":"token %s for %s"}`,
				testAccessToken, testAccessToken, form.Get("client_assertion")))(w, nil, nil)
		},
	))
	e := newExchanger(t, clock, ts.Client())
	c := NewCache(CacheConfig{Clock: clock.Now, OnRefreshError: func(k Key, err error) {
		log.Error("background refresh failed", "key", k.String(), "err", err)
	}})
	r := Request{TokenURL: ts.URL + "/token", ClientID: "c", UDAP: true, B2B: fullB2B()}
	tok, err := c.Token(context.Background(), r.Key(), e.Source(r))
	if err != nil {
		t.Fatal(err)
	}
	issued = tok.AccessToken
	log.Info("got token", "token", tok, "key", r.Key())

	clock.Advance(400 * time.Second) // background refresh, which fails
	if _, err := c.Token(context.Background(), r.Key(), e.Source(r)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refresh failure to be logged", func() bool { return c.Stats().Failures == 1 })
	clock.Advance(200 * time.Second) // past the refresh point: foreground, fails
	_, fgErr := c.Token(context.Background(), r.Key(), e.Source(r))
	_, heldErr := c.Token(context.Background(), r.Key(), e.Source(r))
	if fgErr == nil || heldErr != fgErr {
		t.Fatalf("foreground %v, held %v", fgErr, heldErr)
	}
	var re *RetrieveError
	if !errors.As(fgErr, &re) || re.ErrorDescription != "token [REDACTED] for [REDACTED]" || re.RequestID != "r-[REDACTED]" {
		t.Errorf("RetrieveError = %#v", re)
	}
	log.Error("exchange failed", "err", fgErr)

	secrets := []string{issued}
	for _, f := range ts.forms {
		a := f.Get("client_assertion")
		secrets = append(secrets, a, strings.Split(a, ".")[2])
	}
	checkNoLeaks(t, fgErr, tok, secrets...)
	assertNoSecrets(t, "logs", logs.String(), secrets...)
	assertNoSecrets(t, "stats", fmt.Sprintf("%+v", c.Stats()), secrets...)

	// Registration: the software statement stays out of the result.
	srv := newUDAPServer(t)
	reg, err := (&Registrar{Signer: &Signer{Keys: staticKeys{newMaterial(t, p256Key())}}}).Register(context.Background(), testRegistration(srv.RegistrationURL))
	if err != nil {
		t.Fatal(err)
	}
	statement := srv.Statements()[0]
	assertNoSecrets(t, "Registered", fmt.Sprintf("%+v %#v", reg, reg), statement, strings.Split(statement, ".")[2])
}
