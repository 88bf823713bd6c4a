package vault_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/cqgate/cqgate/internal/clocktest"
	"github.com/cqgate/cqgate/internal/vault"
	"github.com/cqgate/cqgate/internal/vaulttest"
)

// fast keeps failed-login retries quick in tests.
var fast = vault.WithLoginBackoff(10*time.Millisecond, 100*time.Millisecond)

// start starts c with a context canceled at the end of the test, which
// then waits for the background goroutine to end.
func start(t *testing.T, c *vault.Client) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.Done():
		case <-time.After(30 * time.Second):
			t.Error("the client's goroutine did not end after its context")
		}
	})
	return c.Start(ctx)
}

// tokensSeen collects every token the client held while a test waited, for
// secret checks.
type tokensSeen struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *tokensSeen) add(c *vault.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]bool{}
	}
	if tok := c.API().Token(); tok != "" {
		s.m[tok] = true
	}
}

func (s *tokensSeen) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.m {
		out = append(out, k)
	}
	return out
}

func TestTokenMethod(t *testing.T) {
	clearVaultEnv(t)
	ctx := context.Background()

	t.Run("long-lived token", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		logs := newMemLog()
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: rootToken}}, vault.WithLogger(logs), fast)
		if err != nil {
			t.Fatal(err)
		}
		if err := start(t, c); err != nil {
			t.Fatalf("Start: %v", err)
		}
		st := c.Status()
		if !st.LoggedIn || !st.Renewable || st.Logins != 1 || st.Method != "token" || st.TokenExpiry.Before(time.Now().Add(700*time.Hour)) {
			t.Errorf("Status = %+v", st)
		}
		if n := srv.RequestsFor("auth/token/lookup-self"); n != 1 {
			t.Errorf("%d lookup-self requests, want 1", n)
		}
		if err := c.Start(ctx); err == nil {
			t.Error("a second Start succeeded")
		}
		assertNoSecrets(t, "log", logs.text(), rootToken)
	})

	t.Run("token that never expires is not watched", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		forever := srv.CreateToken(vaulttest.TokenOptions{Renewable: false})
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: forever}}, fast)
		if err != nil {
			t.Fatal(err)
		}
		if err := start(t, c); err != nil {
			t.Fatal(err)
		}
		if st := c.Status(); !st.LoggedIn || st.Renewable || !st.TokenExpiry.IsZero() {
			t.Errorf("Status = %+v", st)
		}
		if n := srv.RequestsFor("auth/token/renew-self"); n != 0 {
			t.Errorf("%d renewals of a token that never expires", n)
		}
	})

	t.Run("renewal, then a new token from the file", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		short := srv.CreateToken(vaulttest.TokenOptions{TTL: 2 * time.Second, MaxTTL: 4 * time.Second, Renewable: true})
		next := srv.CreateToken(vaulttest.TokenOptions{TTL: time.Hour, Renewable: true})
		file := writeFile(t, t.TempDir(), "token", short)
		logs := newMemLog()
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{TokenFile: file}}, vault.WithLogger(logs), fast, vault.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		if err := start(t, c); err != nil {
			t.Fatal(err)
		}
		// Wait for the client to have recorded the renewal, not for the
		// server to have answered it: the server logs its answer before
		// the client has read it (the flake under load).
		waitFor(t, "the client to record a renewal", func() bool { return c.Status().Renewals >= 1 })
		if st := c.Status(); st.LastRenewal.IsZero() || c.API().Token() != short {
			t.Errorf("after a renewal Status = %+v", st)
		}
		shortAccessor, renewed := srv.Accessor(short), false
		for _, r := range srv.LogFor("auth/token/renew-self") {
			renewed = renewed || (r.Accessor == shortAccessor && r.Status == 200)
		}
		if !renewed {
			t.Error("the client recorded a renewal the server did not grant to the short token")
		}
		// Vault Agent writes a new token; when the short one can no
		// longer be renewed the client reads the file again. The client
		// sets the token before its status: wait for the status that
		// only the new token's login gives (an expiry an hour away).
		writeFile(t, file[:strings.LastIndex(file, "/")], "token", next+"\n")
		waitFor(t, "the client to switch to the new token", func() bool {
			return c.API().Token() == next && c.Status().TokenExpiry.After(time.Now().Add(50*time.Minute))
		})
		if st := c.Status(); !st.LoggedIn || st.Logins < 2 {
			t.Errorf("after the switch Status = %+v", st)
		}
		assertNoSecrets(t, "log", logs.text(), rootToken, short, next)
	})

	t.Run("refused token, fixed in the file", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		file := writeFile(t, t.TempDir(), "token", "hvs.bogus-token-must-not-leak")
		logs := newMemLog()
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{TokenFile: file}}, vault.WithLogger(logs), fast, vault.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		err = start(t, c)
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 403 || !strings.Contains(err.Error(), "auth/token/lookup-self") {
			t.Fatalf("Start = %v, want a 403 from lookup-self", err)
		}
		st := c.Status()
		if st.LoggedIn || st.LastError != err.Error() || st.LastErrorAt.IsZero() {
			t.Errorf("Status = %+v", st)
		}
		ready := c.Ready()
		if !errors.Is(ready, vault.ErrNotLoggedIn) || !strings.Contains(ready.Error(), "Vault refused the token") || !strings.Contains(ready.Error(), "permission denied") {
			t.Errorf("Ready = %v", ready)
		}
		writeFile(t, file[:strings.LastIndex(file, "/")], "token", rootToken)
		waitFor(t, "the retried login", func() bool { return c.Status().LoggedIn })
		if err := c.Ready(); err != nil {
			t.Errorf("Ready after the fix: %v", err)
		}
		for _, s := range []string{err.Error(), ready.Error(), logs.text()} {
			assertNoSecrets(t, "error or log", s, "hvs.bogus-token-must-not-leak", rootToken)
		}
	})

	t.Run("expiry by the injected clock", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		tok := srv.CreateToken(vaulttest.TokenOptions{TTL: time.Hour})
		clock := clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: tok}}, vault.WithClock(clock.Now), fast)
		if err != nil {
			t.Fatal(err)
		}
		if err := start(t, c); err != nil {
			t.Fatal(err)
		}
		st := c.Status()
		if want := clock.Now().Add(time.Hour); st.TokenExpiry.Before(want.Add(-time.Minute)) || st.TokenExpiry.After(want) || st.Renewable {
			t.Errorf("Status = %+v, want a non-renewable token expiring about %s", st, want)
		}
		clock.Advance(2 * time.Hour)
		if c.Status().LoggedIn {
			t.Error("LoggedIn after the token expired")
		}
		if err := c.Ready(); err == nil || !strings.Contains(err.Error(), "the token expired at 2030-01-01T0") {
			t.Errorf("Ready = %v", err)
		}
	})
}

func TestAppRole(t *testing.T) {
	clearVaultEnv(t)
	ctx := context.Background()

	t.Run("login, renewal, login again at max TTL", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		srv.Put("secret", "app", map[string]any{"k": "v"})
		srv.AddAppRole("", "cqgate", vaulttest.AppRole{RoleID: roleID, SecretID: secretID,
			Token: vaulttest.TokenOptions{TTL: 2 * time.Second, MaxTTL: 4 * time.Second, Renewable: true}})
		file := writeFile(t, t.TempDir(), "secret-id", secretID+"\n")
		logs := newMemLog()
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "approle", RoleID: roleID, SecretIDFile: file}},
			vault.WithLogger(logs), fast, vault.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadKV(ctx, "secret", "app"); !errors.Is(err, vault.ErrNotLoggedIn) {
			t.Errorf("ReadKV before Start err = %v, want ErrNotLoggedIn", err)
		}
		if err := c.Ready(); err == nil || !strings.Contains(err.Error(), "no login has succeeded yet") {
			t.Errorf("Ready before Start = %v", err)
		}
		if srv.Requests() != 0 {
			t.Errorf("%d requests before Start", srv.Requests())
		}
		if err := start(t, c); err != nil {
			t.Fatalf("Start: %v", err)
		}
		var seen tokensSeen
		seen.add(c)
		first := c.API().Token()
		if s, err := c.ReadKV(ctx, "secret", "app"); err != nil || s.Data["k"] != "v" {
			t.Fatalf("ReadKV after login = %v, %v", s, err)
		}
		waitFor(t, "a renewal", func() bool { seen.add(c); return c.Status().Renewals >= 1 })
		waitFor(t, "a second login after the max TTL", func() bool { seen.add(c); return c.Status().Logins >= 2 })
		if c.API().Token() == first {
			t.Error("the second login kept the first token")
		}
		if _, err := c.ReadKV(ctx, "secret", "app"); err != nil {
			t.Errorf("ReadKV after the second login: %v", err)
		}
		logins := srv.LogFor("auth/approle/login")
		for _, r := range logins {
			if r.Accessor != "" {
				t.Errorf("a login carried a token (accessor %s)", r.Accessor)
			}
			if r.Body["secret_id"] != "<redacted>" || r.Body["role_id"] != roleID {
				t.Errorf("login body %v", r.Body)
			}
		}
		if renewals := srv.LogFor("auth/token/renew-self"); len(renewals) == 0 || renewals[0].Accessor != srv.Accessor(first) {
			t.Errorf("renewals %v, want the first token renewed as itself", renewals)
		}
		assertNoSecrets(t, "log", logs.text(), append(seen.list(), rootToken, secretID, roleID)...)
	})

	t.Run("custom mount and inline secret ID", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		srv.AddAppRole("ci-approle", "cqgate", vaulttest.AppRole{RoleID: roleID, SecretID: secretID, Token: vaulttest.TokenOptions{TTL: time.Hour, Renewable: true}})
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "approle", Mount: "auth/ci-approle/", RoleID: roleID, SecretID: secretID}}, fast)
		if err != nil {
			t.Fatal(err)
		}
		if err := start(t, c); err != nil {
			t.Fatal(err)
		}
		if n := srv.RequestsFor("auth/ci-approle/login"); n != 1 {
			t.Errorf("%d logins at auth/ci-approle/login, want 1", n)
		}
		if st := c.Status(); !st.LoggedIn || !st.Renewable || st.Method != "approle" {
			t.Errorf("Status = %+v", st)
		}
	})

	t.Run("wrong secret ID, fixed in the file", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		srv.AddAppRole("", "cqgate", vaulttest.AppRole{RoleID: roleID, SecretID: secretID, Token: vaulttest.TokenOptions{TTL: time.Hour}})
		file := writeFile(t, t.TempDir(), "secret-id", "wrong-secret-id-must-not-leak")
		logs := newMemLog()
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "approle", RoleID: roleID, SecretIDFile: file}},
			vault.WithLogger(logs), fast, vault.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		err = start(t, c)
		if err == nil || !strings.Contains(err.Error(), "invalid role or secret ID") || !strings.Contains(err.Error(), "auth/approle/login") {
			t.Fatalf("Start = %v, want the login error", err)
		}
		if c.Status().LoggedIn {
			t.Error("LoggedIn after a failed login")
		}
		waitFor(t, "a retried login", func() bool { return srv.RequestsFor("auth/approle/login") >= 3 })
		writeFile(t, file[:strings.LastIndex(file, "/")], "secret-id", secretID)
		waitFor(t, "the login with the fixed secret ID", func() bool { return c.Status().LoggedIn })
		if st := c.Status(); st.Logins != 1 || !strings.Contains(st.LastError, "invalid role or secret ID") {
			t.Errorf("Status = %+v", st)
		}
		if !strings.Contains(logs.text(), "retry_in") {
			t.Error("failed logins were not logged with their retry delay")
		}
		for _, s := range []string{err.Error(), logs.text(), c.Status().LastError} {
			assertNoSecrets(t, "error or log", s, "wrong-secret-id-must-not-leak", secretID, roleID, c.API().Token())
		}
	})

	t.Run("renewal fails while sealed, login again after", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		srv.AddAppRole("", "cqgate", vaulttest.AppRole{RoleID: roleID, SecretID: secretID, Token: vaulttest.TokenOptions{TTL: 2 * time.Second, Renewable: true}})
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "approle", RoleID: roleID, SecretID: secretID}}, fast, vault.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		if err := start(t, c); err != nil {
			t.Fatal(err)
		}
		srv.SetDown(true)
		waitFor(t, "a failure while sealed", func() bool { return strings.Contains(c.Status().LastError, "Vault is sealed") })
		srv.SetDown(false)
		waitFor(t, "a login after unsealing", func() bool { return c.Status().Logins >= 2 })
		if !c.Status().LoggedIn {
			t.Errorf("Status = %+v", c.Status())
		}
	})
}

func TestKubernetes(t *testing.T) {
	clearVaultEnv(t)

	t.Run("login with a rotating service account token", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		srv.AddKubernetesRole("", "cqgate", vaulttest.KubernetesRole{JWT: saJWT, ServiceAccountName: "cqgate", ServiceAccountNamespace: "gateway",
			Token: vaulttest.TokenOptions{TTL: 2 * time.Second, MaxTTL: 3 * time.Second, Renewable: true}})
		file := writeFile(t, t.TempDir(), "token", saJWT)
		logs := newMemLog()
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "kubernetes", Role: "cqgate", ServiceAccountTokenFile: file}},
			vault.WithLogger(logs), fast, vault.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		if err := start(t, c); err != nil {
			t.Fatalf("Start: %v", err)
		}
		var seen tokensSeen
		seen.add(c)
		if st := c.Status(); !st.LoggedIn || st.Method != "kubernetes" {
			t.Errorf("Status = %+v", st)
		}
		r := srv.LogFor("auth/kubernetes/login")[0]
		if r.Body["role"] != "cqgate" || r.Body["jwt"] != "<redacted>" || r.Accessor != "" {
			t.Errorf("login request %+v", r)
		}

		// The kubelet rotates the projected token; Vault accepts only the new one.
		rotated := "eyJhbGciOiJSUzI1NiJ9.rotated-service-account-jwt.sig"
		srv.AddKubernetesRole("", "cqgate", vaulttest.KubernetesRole{JWT: rotated, Token: vaulttest.TokenOptions{TTL: time.Hour, Renewable: true}})
		writeFile(t, file[:strings.LastIndex(file, "/")], "token", rotated)
		waitFor(t, "a login with the rotated service account token", func() bool { seen.add(c); return c.Status().Logins >= 2 })
		if st := c.Status(); !st.LoggedIn || st.LastError != "" {
			t.Errorf("Status = %+v", st)
		}
		assertNoSecrets(t, "log", logs.text(), append(seen.list(), saJWT, rotated, rootToken)...)
	})

	for _, tc := range []struct {
		name, role, jwt string
		want            []string
	}{
		{"wrong jwt", "cqgate", "eyJ.wrong-jwt-must-not-leak.sig", []string{"permission denied", "auth/kubernetes/login", "Code: 403"}},
		{"unknown role", "nobody", saJWT, []string{`invalid role name \"nobody\"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := vaulttest.New(t, rootToken)
			srv.AddKubernetesRole("", "cqgate", vaulttest.KubernetesRole{JWT: saJWT, Token: vaulttest.TokenOptions{TTL: time.Hour}})
			file := writeFile(t, t.TempDir(), "token", tc.jwt)
			c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "kubernetes", Role: tc.role, ServiceAccountTokenFile: file}}, fast, vault.WithMaxRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			err = start(t, c)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			msg := fmt.Sprintf("%q", err.Error())
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("err = %s\nwant it to contain %s", msg, w)
				}
			}
			assertNoSecrets(t, "error", err.Error(), tc.jwt, saJWT, rootToken)
		})
	}

	t.Run("service account token file removed", func(t *testing.T) {
		srv := vaulttest.New(t, rootToken)
		file := writeFile(t, t.TempDir(), "token", saJWT)
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Method: "kubernetes", Role: "cqgate", ServiceAccountTokenFile: file}}, fast)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		if err := start(t, c); err == nil || !strings.Contains(err.Error(), "reading the service account token: open "+file) {
			t.Errorf("Start = %v", err)
		}
	})
}

// TestNoGoroutineLeak starts clients in every state (logged in and
// renewing, failing to log in, never expiring), ends them, and checks that
// neither their loops nor LifetimeWatchers keep running.
func TestNoGoroutineLeak(t *testing.T) {
	clearVaultEnv(t)
	if leaked := leakedGoroutines(); len(leaked) != 0 {
		t.Fatalf("goroutines left by earlier tests:\n%s", strings.Join(leaked, "\n\n"))
	}
	srv := vaulttest.New(t, rootToken)
	srv.AddAppRole("", "cqgate", vaulttest.AppRole{RoleID: roleID, SecretID: secretID, Token: vaulttest.TokenOptions{TTL: 2 * time.Second, Renewable: true}})
	configs := []vault.AuthConfig{
		{Method: "approle", RoleID: roleID, SecretID: secretID},
		{Method: "approle", RoleID: roleID, SecretID: "wrong"},
		{Token: rootToken},
		{Token: srv.CreateToken(vaulttest.TokenOptions{})},
	}
	var clients []*vault.Client
	ctx, cancel := context.WithCancel(context.Background())
	for _, a := range configs {
		c, err := vault.New(vault.Config{Address: srv.URL, Auth: a}, fast, vault.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Start(ctx)
		clients = append(clients, c)
	}
	waitFor(t, "the approle client to renew", func() bool { return clients[0].Status().Renewals >= 1 })
	cancel()
	for i, c := range clients {
		select {
		case <-c.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("client %d did not stop", i)
		}
	}
	waitFor(t, "the watchers to end", func() bool { return len(leakedGoroutines()) == 0 })
}

func TestStartCanceled(t *testing.T) {
	clearVaultEnv(t)
	srv := vaulttest.New(t, rootToken)
	c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: rootToken}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a canceled context = %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the goroutine did not end")
	}
}

// TestTokenAtMaxTTLDoesNotSpin: a static token that can no longer be
// extended is looked up again with backoff, not in a tight loop, until it
// expires; then the failures are retried with backoff too.
func TestTokenAtMaxTTLDoesNotSpin(t *testing.T) {
	clearVaultEnv(t)
	srv := vaulttest.New(t, rootToken)
	tok := srv.CreateToken(vaulttest.TokenOptions{TTL: 2 * time.Second, MaxTTL: 2 * time.Second, Renewable: true})
	c, err := vault.New(vault.Config{Address: srv.URL, Auth: vault.AuthConfig{Token: tok}},
		vault.WithLoginBackoff(50*time.Millisecond, time.Second), vault.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := start(t, c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the token to expire and be refused", func() bool { return strings.Contains(c.Status().LastError, "permission denied") })
	time.Sleep(time.Second) // let a spinning loop show itself
	n := srv.RequestsFor("auth/token/lookup-self") + srv.RequestsFor("auth/token/renew-self")
	t.Logf("%d lookups and renewals", n)
	if n > 60 {
		t.Errorf("%d lookups and renewals of one expiring token: the client spins", n)
	}
	if c.Status().LoggedIn || c.Ready() == nil {
		t.Errorf("Status %+v after the token expired", c.Status())
	}
}
