package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cqgate/cqgate/internal/failure"
)

// Operations, as StoreError.Op and Observer's op label.
const (
	OpLoad        = "load"
	OpStore       = "store"
	OpInvalidate  = "invalidate"
	OpLock        = "lock"
	OpRelease     = "release"
	OpExtend      = "extend"
	OpWait        = "wait"
	OpMinInterval = "min_interval"
	OpRateLimit   = "rate_limit"
	OpEvent       = "event"
)

// StoreError says a Redis operation failed: Redis did not answer in
// time, refused, or held a value that does not open. It never contains a
// token, a key or a Redis key name.
type StoreError struct {
	// Op is one of the Op constants.
	Op string
	// Err is the cause: a go-redis or network error, a context error, or
	// one of ErrNotSealed, ErrUnknownKey (*KeyIDError), ErrTampered.
	Err error
}

func (e *StoreError) Error() string { return "cluster: redis " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *StoreError) Unwrap() error { return e.Err }

// Observer counts failed operations; the gateway maps it to
// cqgate_cluster_store_errors_total{op}. It is called synchronously and
// must not block.
type Observer interface {
	StoreError(op string, err error)
}

type nopObserver struct{}

func (nopObserver) StoreError(string, error) {}

// Option configures a Cluster.
type Option func(*Cluster)

// WithObserver sets where failed operations are counted.
func WithObserver(o Observer) Option { return func(c *Cluster) { c.obs = o } }

// WithClock sets the clock Store measures a token's remaining lifetime
// with; time.Now by default.
func WithClock(now func() time.Time) Option { return func(c *Cluster) { c.now = now } }

// WithStoreMargin sets how long before its expiry a stored value leaves
// Redis, so that no replica loads a value about to expire (and clocks
// that differ a little between replicas do not matter);
// DefaultStoreMargin by default.
func WithStoreMargin(d time.Duration) Option { return func(c *Cluster) { c.margin = d } }

// DefaultStoreMargin is the default of WithStoreMargin.
const DefaultStoreMargin = 5 * time.Second

// Cluster is cqgate's shared state in Redis: sealed tokens (L2), locks
// for one exchange at a time fleet-wide, minimum-interval markers, rate
// budgets, and the notifications between replicas. It is safe for
// concurrent use.
type Cluster struct {
	rdb     *redis.Client
	keys    *Keyring
	prefix  string
	channel string
	timeout time.Duration
	poll    time.Duration
	margin  time.Duration
	obs     Observer
	now     func() time.Time

	sub  *redis.PubSub
	done chan struct{}

	mu       sync.Mutex
	waiters  map[string]map[chan struct{}]struct{} // ref -> waiters
	handlers map[*func(Invalidation)]struct{}
}

// New connects to the Redis of cfg. It does not wait for Redis to
// answer: a replica starts and serves (from its own memory) while Redis
// is down, and its operations fail with *StoreError until Redis is back.
// The configuration is checked first (Validate); every problem comes back
// in a *failure.ConfigError.
func New(cfg Config, opts ...Option) (*Cluster, error) {
	if !cfg.Enabled() {
		return nil, &failure.ConfigError{Component: "cluster", Problems: []error{errors.New("cluster.redis.url: not set")}}
	}
	if problems := Validate(cfg); len(problems) > 0 {
		return nil, &failure.ConfigError{Component: "cluster", Problems: problems}
	}
	ropts, err := redisOptions(cfg.Redis)
	if err != nil {
		return nil, &failure.ConfigError{Component: "cluster", Problems: []error{err}}
	}
	keys, err := NewKeyring(cfg.EncryptionKey, cfg.PreviousEncryptionKeys...)
	if err != nil {
		return nil, &failure.ConfigError{Component: "cluster", Problems: []error{err}}
	}
	c := &Cluster{
		keys:     keys,
		prefix:   cfg.prefix(),
		timeout:  cfg.timeout(),
		poll:     cfg.pollInterval(),
		margin:   DefaultStoreMargin,
		obs:      nopObserver{},
		now:      time.Now,
		done:     make(chan struct{}),
		waiters:  map[string]map[chan struct{}]struct{}{},
		handlers: map[*func(Invalidation)]struct{}{},
	}
	c.channel = c.prefix + "events"
	for _, o := range opts {
		o(c)
	}
	// Every operation runs under its own short deadline (ctx). Unless the
	// URL says otherwise, socket and pool waits are bounded by the same
	// timeout, and a failed command is retried once, quickly, so that
	// the first command on a connection Redis dropped (restart,
	// failover) does not fail.
	ropts.ContextTimeoutEnabled = true
	if ropts.ReadTimeout == 0 {
		ropts.ReadTimeout = c.timeout
	}
	if ropts.WriteTimeout == 0 {
		ropts.WriteTimeout = c.timeout
	}
	if ropts.PoolTimeout == 0 {
		ropts.PoolTimeout = c.timeout
	}
	if ropts.MaxRetries == 0 {
		ropts.MaxRetries = 1
		ropts.MinRetryBackoff = time.Millisecond
		ropts.MaxRetryBackoff = 10 * time.Millisecond
	}
	c.rdb = redis.NewClient(ropts)

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	c.sub = c.rdb.Subscribe(ctx, c.channel) // reconnects and resubscribes by itself
	go c.dispatch(c.sub.Channel(redis.WithChannelSize(1024)))
	return c, nil
}

// Close ends the subscription and closes the connections.
func (c *Cluster) Close() error {
	err := c.sub.Close()
	<-c.done
	return errors.Join(err, c.rdb.Close())
}

// Ping asks Redis for PONG, within the operation timeout.
func (c *Cluster) Ping(ctx context.Context) error {
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	return c.rdb.Ping(ctx).Err()
}

// Keyring is the keyring values are sealed with.
func (c *Cluster) Keyring() *Keyring { return c.keys }

// Ref is the name of key in Redis: the hex SHA-256 of key. Key names in
// Redis never contain a cache key itself, which may name a client or a
// context digest.
func Ref(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (c *Cluster) tokenName(ref string) string    { return c.prefix + "tok:" + ref }
func (c *Cluster) lockName(ref string) string     { return c.prefix + "lock:" + ref }
func (c *Cluster) intervalName(ref string) string { return c.prefix + "min:" + ref }

// rateName is the key redis_rate is given; it stores the budget under
// "rate:" + rateName(oid).
func (c *Cluster) rateName(oid string) string { return c.prefix + oid }

func (c *Cluster) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// fail wraps err for op, counts it and returns it.
func (c *Cluster) fail(op string, err error) error {
	se := &StoreError{Op: op, Err: err}
	c.obs.StoreError(op, err)
	return se
}
