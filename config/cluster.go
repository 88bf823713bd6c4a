package config

import (
	"time"

	"github.com/cqgate/cqgate/internal/cluster"
)

// Cluster is the state replicas share in Redis or Valkey (cluster.*).
// Without cluster.redis.url every replica keeps its own tokens and rate
// budgets, as a single cqgate does.
type Cluster struct {
	Redis ClusterRedis `yaml:"redis"`
	// EncryptionKey seals everything cqgate keeps in Redis: 32 random
	// bytes, base64, optionally "id:BASE64" (env
	// CQGATE_CLUSTER_ENCRYPTION_KEY). Required with cluster.redis.url,
	// unless EncryptionKeyVault names it.
	EncryptionKey string `yaml:"encryption_key"`
	// EncryptionKeyVault reads the key from a field of a Vault KV v2
	// secret at startup instead.
	EncryptionKeyVault KVField `yaml:"encryption_key_vault"`
	// PreviousEncryptionKeys are still read, never sealed with (key
	// rotation).
	PreviousEncryptionKeys []string `yaml:"previous_encryption_keys"`
	// Prefix starts every Redis key and channel; replicas that share
	// tokens share it.
	Prefix string `yaml:"prefix"`
	// Timeout bounds each Redis operation; past it a replica carries on
	// alone.
	Timeout time.Duration `yaml:"timeout"`
	// PollInterval is how often a replica waiting for another's token
	// exchange looks whether it is done, should a notification be lost.
	PollInterval time.Duration `yaml:"poll_interval"`
	// LockTTL is how long the fleet-wide exchange lock of a crashed
	// replica blocks the others.
	LockTTL time.Duration `yaml:"lock_ttl"`
}

// ClusterRedis says how to reach Redis (cluster.redis.*).
type ClusterRedis struct {
	// URL is redis://[user[:password]@]host[:port][/db] or rediss://
	// (env CQGATE_CLUSTER_REDIS_URL).
	URL string `yaml:"url"`
	// Username and Password replace the URL's (e.g. from the
	// environment: CQGATE_CLUSTER_REDIS_PASSWORD).
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// CACert verifies a rediss:// server; the system pool when empty.
	CACert string `yaml:"ca_cert"`
}

// Enabled reports whether replicas share state.
func (c Cluster) Enabled() bool { return c.Redis.URL != "" }

// ClusterConfig is c as the cluster package takes it, with key as the
// encryption key (c.EncryptionKey, or the one read from Vault).
func (c Cluster) ClusterConfig(key string) cluster.Config {
	return cluster.Config{
		Redis:                  cluster.RedisConfig{URL: c.Redis.URL, Username: c.Redis.Username, Password: c.Redis.Password, CACert: c.Redis.CACert},
		EncryptionKey:          key,
		PreviousEncryptionKeys: c.PreviousEncryptionKeys,
		Prefix:                 c.Prefix,
		Timeout:                c.Timeout,
		PollInterval:           c.PollInterval,
	}
}

// validateCluster checks cluster.*: the URL and the key come together.
func (c *Config) validateCluster(add adder) {
	cl := c.Cluster
	fromVault := cl.EncryptionKeyVault.Path != ""
	if fromVault && cl.EncryptionKey != "" {
		add("cluster.encryption_key_vault: set together with cluster.encryption_key; use one")
	}
	if fromVault && cl.EncryptionKeyVault.Field == "" {
		add("cluster.encryption_key_vault.field: required (the field of the KV secret holding the key)")
	}
	if !cl.Enabled() && fromVault {
		add("cluster.redis.url: not set, but cluster.encryption_key_vault is: set both to share state through Redis, or neither")
	}
	key := cl.EncryptionKey
	if fromVault && key == "" {
		// Read at startup; checked then. A placeholder lets the rest of
		// the section be checked now.
		key = placeholderKey
	}
	for _, err := range cluster.Validate(cl.ClusterConfig(key)) {
		add("%v", err)
	}
	notNegative(add, "cluster.lock_ttl", cl.LockTTL)
}

// placeholderKey is a well-formed key that is never used.
const placeholderKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
