// Package vault is cqgate's way of talking to HashiCorp Vault: connection,
// login, token renewal, KV v2 access. It is built on
// github.com/hashicorp/vault/api: New starts from api.DefaultConfig(), so
// the standard VAULT_* environment variables apply, and overrides it with
// the non-empty fields of Config.
//
// # Login and renewal
//
//	c, err := vault.New(vault.Config{
//		Address: "https://vault.internal:8200",
//		Auth: vault.AuthConfig{Method: "approle", RoleID: roleID, SecretIDFile: "/run/secrets/secret-id"},
//	}, vault.WithLogger(log))
//	if err != nil { ... }                 // every configuration problem at once
//	if err := c.Start(ctx); err != nil { // the first login failed ...
//		log.WithError(err).Warn("not logged in to Vault yet") // ... and is retried in the background
//	}
//	s, err := c.ReadKV(ctx, "secret", "cqgate/signing")
//
// Three auth methods are supported: "token" (a static token from Token,
// TokenFile or VAULT_TOKEN; lookup-self tells whether it is renewable),
// "approle" (github.com/hashicorp/vault/api/auth/approle) and "kubernetes"
// (github.com/hashicorp/vault/api/auth/kubernetes). Files (TokenFile,
// SecretIDFile, ServiceAccountTokenFile) are read again at every login, so
// a token written by Vault Agent or a projected service account token that
// the kubelet rotates is picked up.
//
// Start logs in once and returns that attempt's error; whatever the outcome
// it leaves a goroutine running until ctx ends that keeps the client logged
// in: failed logins are retried with capped exponential backoff and
// jitter; after a login the token is kept alive with api.LifetimeWatcher,
// which renews it at about two thirds of each lease, and when renewal ends
// (the token reached its max TTL, or renewing failed) the client logs in
// again. A token that never expires (TTL 0, e.g. a root token) is not
// watched. Status and Ready tell whether the client is logged in, until
// when, and the last error, for readiness checks and metrics. A caller
// that wants to fail hard instead cancels ctx when Start returns an error;
// Done is closed once the goroutine has ended.
//
// With the token method the token is usable as soon as New returns, even
// without Start; Start then only adds the lookup and renewal.
//
// # Secrets
//
// Tokens, secret IDs and service account JWTs never appear in an error, a
// log entry or a String/GoString result of this package. Errors name the
// Vault path and the status Vault answered with. Every response body is
// read through a size limit and every request is bounded by Config.Timeout.
package vault
