// Package keys provides the organization's Carequality signing key and
// X.509 certificate chain behind the small Source interface. Sources read
// the key from HashiCorp Vault (KV v2, through github.com/hashicorp/vault/api)
// or from PEM files; a Holder keeps the current material behind an atomic
// pointer so that a failed reload keeps the old key.
//
// # Sources
//
//   - VaultKV reads one KV v2 secret whose "certificate" field holds the PEM
//     chain (leaf first) and whose "private_key" field holds the PEM key.
//     Build its client with NewVaultClient, which starts from
//     api.DefaultConfig() and so honours VAULT_ADDR, VAULT_TOKEN,
//     VAULT_CACERT and the other standard variables.
//   - PEMFiles reads a chain file and a key file.
//   - Static returns Material built by the caller, e.g. from
//     GenerateSelfSigned in development mode.
//
// All of them parse with ParsePEM, which accepts RSA keys of at least 2048
// bits and ECDSA keys on P-256 or P-384, checks that the key belongs to the
// leaf certificate, and derives Material.KeyID as the RFC 7638 JWK
// thumbprint.
//
// # Holder
//
//	h := keys.NewHolder(&keys.VaultKV{Client: client, Path: "cqgate/signing"},
//		keys.HolderOptions{Logger: log})
//	if _, err := h.Reload(ctx); err != nil { ... } // at start-up: fail hard
//	...
//	_, err := h.Reload(ctx) // periodically: on error the old key stays
//	m := h.Current()        // per request, lock free
//
// # Secrets
//
// Private keys, PEM text and Vault tokens never appear in an error, a log
// entry or a String/GoString result of this package: errors name files,
// Vault mounts, paths and fields, never their content.
package keys
