package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// README ("check a file without starting with cqgate -config FILE
// -check") and docs/onboarding.md ("every problem at once"): -check
// reports what keeps cqgate from starting, the Vault login's credentials
// included (what internal/vault.New would refuse), and starting reports
// them with the other problems.
func TestCheckReportsVaultProblems(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("VAULT_ADDR", "")
	dir := t.TempDir()
	base := "listen: 127.0.0.1:0\ndirectory:\n  url: http://127.0.0.1:2/fhir\n  api_key: k\nclient:\n  client_id: gw.example.org\n" +
		"keys:\n  source: vault\n  vault:\n    path: cqgate/signing\n"
	cases := map[string]string{
		"token method, no token":       "vault:\n  address: http://127.0.0.1:1\n  auth:\n    method: token\n",
		"approle with a token too":     "vault:\n  address: http://127.0.0.1:1\n  auth:\n    method: approle\n    role_id: r\n    secret_id: s\n    token: t\n",
		"approle, unreadable file":     "vault:\n  address: http://127.0.0.1:1\n  auth:\n    method: approle\n    role_id: r\n    secret_id_file: " + filepath.Join(dir, "nope") + "\n",
		"kubernetes, no service token": "vault:\n  address: http://127.0.0.1:1\n  auth:\n    method: kubernetes\n    role: r\n    service_account_token_file: " + filepath.Join(dir, "nope") + "\n",
	}
	lookup := func(string) (string, bool) { return "", false }
	for name, vaultYAML := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(base+vaultYAML), 0o600); err != nil {
				t.Fatal(err)
			}
			// -check refuses it, naming the Vault problem ...
			var out, errOut bytes.Buffer
			checkErr := run(context.Background(), []string{"-config", path, "-check"}, &out, &errOut, lookup)
			if checkErr == nil || !strings.Contains(checkErr.Error(), "vault.") {
				t.Errorf("-check: %v (printed %q); want the Vault problem", checkErr, strings.TrimSpace(out.String()))
			}
			// ... and so does starting, before connecting anywhere.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			out.Reset()
			errOut.Reset()
			if startErr := run(ctx, []string{"-config", path}, &out, &errOut, lookup); startErr == nil || !strings.Contains(startErr.Error(), "vault.") {
				t.Errorf("start: %v; want the Vault problem", startErr)
			}
		})
	}
}
