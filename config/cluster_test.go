package config

import (
	"strings"
	"testing"
)

const testClusterKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes

// cluster.redis.url and cluster.encryption_key come together; each
// problem is named by its key and never shows the key or password.
func TestValidateCluster(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // a problem containing this; "" for none
	}{
		{name: "off", env: nil},
		{name: "url and key", env: map[string]string{"CQGATE_CLUSTER_REDIS_URL": "redis://127.0.0.1:6379/0", "CQGATE_CLUSTER_ENCRYPTION_KEY": testClusterKey}},
		{name: "url without key", env: map[string]string{"CQGATE_CLUSTER_REDIS_URL": "redis://127.0.0.1:6379/0"},
			want: "cluster.encryption_key: required when cluster.redis.url is set"},
		{name: "key without url", env: map[string]string{"CQGATE_CLUSTER_ENCRYPTION_KEY": testClusterKey},
			want: "cluster.redis.url: not set"},
		{name: "short key", env: map[string]string{"CQGATE_CLUSTER_REDIS_URL": "redis://127.0.0.1:6379/0", "CQGATE_CLUSTER_ENCRYPTION_KEY": "c2hvcnQ="},
			want: "must be 32"},
		{name: "not redis", env: map[string]string{"CQGATE_CLUSTER_REDIS_URL": "http://u:hunter2@127.0.0.1/", "CQGATE_CLUSTER_ENCRYPTION_KEY": testClusterKey},
			want: "cluster.redis.url:"},
		{name: "key from Vault", env: map[string]string{"CQGATE_CLUSTER_REDIS_URL": "redis://127.0.0.1:6379/0",
			"CQGATE_CLUSTER_ENCRYPTION_KEY_VAULT_PATH": "cqgate/cluster", "CQGATE_CLUSTER_ENCRYPTION_KEY_VAULT_FIELD": "key", "CQGATE_VAULT_ADDRESS": "https://vault.example.org"}},
		{name: "key twice", env: map[string]string{"CQGATE_CLUSTER_REDIS_URL": "redis://127.0.0.1:6379/0", "CQGATE_CLUSTER_ENCRYPTION_KEY": testClusterKey,
			"CQGATE_CLUSTER_ENCRYPTION_KEY_VAULT_PATH": "cqgate/cluster", "CQGATE_CLUSTER_ENCRYPTION_KEY_VAULT_FIELD": "key", "CQGATE_VAULT_ADDRESS": "https://vault.example.org"},
			want: "cluster.encryption_key_vault: set together with cluster.encryption_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			if err := ApplyEnv(c, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want a problem containing %q", err, tc.want)
			}
			if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), testClusterKey)) {
				t.Errorf("a secret in %v", err)
			}
		})
	}
}
