// Package vaulttest runs an in-process HTTP server that answers like
// HashiCorp Vault's HTTP API for the parts cqgate uses: the KV version 2
// secrets engine (data and metadata endpoints), sys/health and
// auth/token/lookup-self. Response bodies, status codes and headers follow
// https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2, so the
// real github.com/hashicorp/vault/api client can be tested against it.
//
// It is a test double, not a Vault: one token with every permission, no
// policies, leases, namespaces or persistence.
package vaulttest
