package e2e

import (
	"os"
	"testing"
)

// TestVaultBackend says which Vault the end-to-end tests used, so a run's
// output shows whether the opt-in real-Vault path ran.
func TestVaultBackend(t *testing.T) {
	if os.Getenv("VAULT_ADDR") == "" || os.Getenv("VAULT_TOKEN") == "" {
		t.Skip("real Vault not used: VAULT_ADDR and VAULT_TOKEN are not set, so the end-to-end tests read the key from a test server that answers as Vault's KV v2 API does")
	}
	t.Logf("end-to-end tests read the signing key from the real Vault at %s", os.Getenv("VAULT_ADDR"))
}
