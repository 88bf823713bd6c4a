package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/cqgate/cqgate/assertion"
	"github.com/cqgate/cqgate/internal/cluster"
	"github.com/cqgate/cqgate/internal/metrics"
)

// buildCluster connects to the Redis the replicas share (cluster.*), or
// returns nil when none is configured. It does not wait for Redis: a
// replica starts, and serves alone, while Redis is down.
func (g *Gateway) buildCluster(ctx context.Context) (*cluster.Cluster, error) {
	cc := g.cfg.Cluster
	if !cc.Enabled() {
		return nil, nil
	}
	key := cc.EncryptionKey
	if kv := cc.EncryptionKeyVault; kv.Path != "" {
		if g.vault == nil {
			return nil, fmt.Errorf("gateway: cluster.encryption_key_vault needs Vault")
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		sec, err := g.vault.ReadKV(rctx, kv.Mount, kv.Path)
		if err != nil {
			return nil, fmt.Errorf("gateway: cluster.encryption_key_vault: %w", err)
		}
		s, ok := sec.Data[kv.Field].(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("gateway: cluster.encryption_key_vault: %s/%s has no string field %q", kv.Mount, kv.Path, kv.Field)
		}
		key = s
	}
	obs := &clusterObserver{log: g.log.WithField("component", "cluster")}
	if g.Metrics != nil {
		obs.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Name: "cluster_store_errors_total",
			Help: "Failed operations on the Redis the replicas share, by operation; each was carried on without it.",
		}, []string{"op"})
		if err := g.Metrics.Register(obs.errors); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	cl, err := cluster.New(cc.ClusterConfig(key), cluster.WithObserver(obs), cluster.WithClock(g.clock))
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return cl, nil
}

// clusterObserver counts failed Redis operations
// (cqgate_cluster_store_errors_total{op}) and logs them, at most once a
// second per operation: with Redis down every request would otherwise
// log. Errors hold no token, key or Redis key name (cluster.StoreError).
type clusterObserver struct {
	log    logrus.FieldLogger
	errors *prometheus.CounterVec // nil without metrics

	mu     sync.Mutex
	logged map[string]time.Time
}

var _ cluster.Observer = (*clusterObserver)(nil)

func (o *clusterObserver) StoreError(op string, err error) {
	if o.errors != nil {
		o.errors.WithLabelValues(op).Inc()
	}
	now := time.Now()
	o.mu.Lock()
	if o.logged == nil {
		o.logged = map[string]time.Time{}
	}
	quiet := now.Sub(o.logged[op]) < time.Second
	if !quiet {
		o.logged[op] = now
	}
	o.mu.Unlock()
	if !quiet {
		o.log.WithError(err).WithField("op", op).Warn("gateway: the shared Redis failed; this replica carries on alone (local tokens, local exchange, local rate limit)")
	}
}

// sharedTier is the token tier the replicas share, nil without a
// cluster (an interface holding a nil *Cluster would not be nil).
func (g *Gateway) sharedTier() assertion.SharedTier {
	if g.cluster == nil {
		return nil
	}
	return g.cluster
}
