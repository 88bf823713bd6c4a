// Package vaulttest runs an in-process HTTP server that answers like
// HashiCorp Vault's HTTP API for the parts cqgate uses, so that the real
// github.com/hashicorp/vault/api client (and code built on it) can be
// tested against it:
//
//   - the KV version 2 secrets engine: data reads and writes, soft delete,
//     metadata reads and deletes
//     (https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2);
//   - the transit secrets engine's key read, create, config and rotate
//     endpoints and its sign endpoint, which signs with Go's crypto in
//     Vault's output format: "vault:v<N>:" followed by standard base64 of
//     an RSA PKCS #1 v1.5 or PSS signature or an ASN.1 ECDSA signature, or
//     URL-safe unpadded base64 of the JWS r||s form when
//     marshaling_algorithm=jws
//     (https://developer.hashicorp.com/vault/api-docs/secret/transit);
//   - AppRole and Kubernetes logins, auth/token/lookup-self and
//     auth/token/renew-self with real leases: tokens expire, renewals are
//     capped by the token's max TTL, so api.LifetimeWatcher behaves as
//     against a real Vault when TTLs are a few seconds;
//   - sys/health and sys/mounts (enable and disable KV v2 and transit).
//
// Responses carry Vault's status codes and JSON shapes: every error body is
// {"errors":[...]}, a missing or invalid X-Vault-Token is 403
// {"errors":["permission denied"]}, a sealed server (SetDown) answers 503
// {"errors":["Vault is sealed"]}. Every request is recorded (Log) with
// credentials in its body redacted.
//
// It is a test double, not a Vault: no policies beyond SetDenied, no
// namespaces, no persistence. Every valid token may do everything.
package vaulttest
