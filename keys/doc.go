// Package keys provides the organization's Carequality signing key and
// X.509 certificate chain behind the small Source interface. Sources read
// the key from HashiCorp Vault (through the vault package) or from PEM
// files, or sign in Vault without the key ever leaving it; a Holder keeps
// the current material behind an atomic pointer so that a failed reload
// keeps the old key, and picks up rotations without a restart.
//
// # Sources
//
//   - VaultKV reads one KV v2 secret whose "certificate" field holds the PEM
//     chain (leaf first) and whose "private_key" field holds the PEM key.
//     Its Client is a *vault.Client (see vault.New), which logs in with a
//     token, AppRole or Kubernetes and keeps its token renewed.
//   - VaultTransit signs with a key of Vault's transit engine, pinned to the
//     key version it loaded, and reads the certificate chain for that key
//     from a KV v2 secret. Material.Signer is nil and Material.Opaque signs;
//     sign through Material.JOSESigner. A failure to sign in Vault is a
//     *SignError, which the outcome package maps to 502.
//   - PEMFiles reads a chain file and a key file.
//   - Static returns Material built by the caller, e.g. from
//     GenerateSelfSigned in development mode.
//
// The PEM sources parse with ParsePEM, which accepts RSA keys of at least
// 2048 bits and ECDSA keys on P-256 or P-384, checks that the key belongs
// to the leaf certificate, puts the other certificates in certification
// order (each certified by the next, as x5c must list them; a chain with
// a gap or a certificate that belongs to none of it is ErrChainOrder), and
// derives Material.KeyID as the RFC 7638 JWK thumbprint. VaultTransit
// accepts the same key types and orders its chain the same way.
//
// # Holder
//
//	h := keys.NewHolder(&keys.VaultKV{Client: client, Path: "cqgate/signing"},
//		keys.HolderOptions{Logger: log})
//	if _, err := h.Reload(ctx); err != nil { ... } // at start-up: fail hard, or retry
//	go h.Watch(ctx, time.Minute)                    // rotation without restart
//	m := h.Current()                                // per request, lock free
//	st := h.Status()                                // for readiness and metrics
//
// Watch calls Poll periodically. Sources that implement Versioner (VaultKV:
// the KV metadata's current_version; VaultTransit: the transit key's latest
// version and the certificate's KV version; PEMFiles: the files' modification
// times and sizes) are asked for their version first, and loaded only when
// it changed, so an idle poll is one small request. Material that fails to
// load or validate (bad PEM, a key that does not match the certificate, an
// expired or not yet valid certificate) never replaces the material in
// service; the failure is logged and recorded in Status, and tried again at
// the next poll. A leaf certificate that expires within
// HolderOptions.ExpiryWarning (30 days by default) is warned about when
// loaded and then daily.
//
// # Secrets
//
// Private keys, PEM text, signing inputs and Vault tokens never appear in an
// error, a log entry or a String/GoString result of this package: errors
// name files, Vault mounts, paths, fields and key versions, never their
// content.
package keys
