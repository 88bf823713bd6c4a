package gateway

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/cqgate/cqgate/internal/egress"
)

// TransportOptions shape a transport from NewTransport.
type TransportOptions struct {
	// ResponseHeaderTimeout bounds the wait for response headers.
	ResponseHeaderTimeout time.Duration
	// Guard refuses connections to addresses that are not public unless
	// the request's context allows them (egress.AllowPrivate), also
	// behind an HTTP proxy (see egress.Dialer).
	Guard bool
	// Private, with Guard, makes the transport of organizations allowed
	// private addresses: it refuses nothing, whatever the request's
	// context (egress.NewPrivateDialer). Only NewGuardedTransport's
	// Private pool is one.
	Private bool
	// MaxConnsPerHost caps connections per host (0: no cap); requests
	// beyond it wait for one.
	MaxConnsPerHost int
	// MaxIdleConnsPerHost is how many idle connections per host are kept
	// (default 64).
	MaxIdleConnsPerHost int
	// MaxIdleConns is how many idle connections are kept for all hosts
	// together: 0 means DefaultMaxIdleConns, a negative number no cap.
	// Past it the connection idle longest is closed, so with more hosts
	// in use than this, requests keep opening connections.
	MaxIdleConns int
	// Conns, when set, counts the connections the transport opens and
	// those still open.
	Conns *ConnStats
	// MaxResponseHeaderBytes bounds a response's header block (0: Go's
	// default, 10 MB).
	MaxResponseHeaderBytes int64
	// ReadIdleTimeout bounds every wait for the peer to send more: a
	// response that stalls halfway through its body fails (the caller's
	// answer ends, truncated) instead of holding the caller, a goroutine
	// and a connection for as long as the peer likes. Time spent writing
	// to a slow caller does not count. A wait is cut between the bound
	// and 1.5 times it (idleConn). An idle pooled connection is closed
	// after it too. Zero means no bound.
	ReadIdleTimeout time.Duration
	// Proxy chooses the HTTP proxy for a request, as http.Transport's
	// Proxy does; http.ProxyFromEnvironment (HTTPS_PROXY, HTTP_PROXY,
	// NO_PROXY) when nil.
	Proxy func(*http.Request) (*url.URL, error)
	// Resolver looks host names up; net.DefaultResolver when nil. With
	// Guard, destinations reached through a proxy are resolved with it
	// and checked; when set, direct connections resolve through it too.
	Resolver egress.Resolver
}

// maxIdleConns is TransportOptions.MaxIdleConns for proxy.max_idle_conns,
// whose 0 means no cap.
func maxIdleConns(configured int) int {
	if configured == 0 {
		return -1
	}
	return configured
}

// TLSSessions is how many TLS sessions (one per host) a transport from
// NewTransport keeps for resumption.
const TLSSessions = 1024

// DefaultMaxIdleConns is TransportOptions.MaxIdleConns's default.
const DefaultMaxIdleConns = 512

// NewTransport returns a transport for outbound calls: pooled keep-alive
// connections per host, HTTP/2 where offered, and bounded connect, TLS
// and response-header waits.
func NewTransport(o TransportOptions) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	proxy := o.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	dialContext := d.DialContext
	if o.Guard {
		// Proxy settings never switch the guard off: direct connections
		// are checked at connect time, proxied destinations before the
		// proxy is asked.
		ed := egress.NewDialer(d, o.Resolver)
		if o.Private {
			ed = egress.NewPrivateDialer(d, o.Resolver)
		}
		dialContext, proxy = ed.DialContext, ed.Proxy(proxy)
	}
	idle := o.MaxIdleConnsPerHost
	if idle <= 0 {
		idle = 64
	}
	idleAll := o.MaxIdleConns
	switch {
	case idleAll == 0:
		idleAll = DefaultMaxIdleConns
	case idleAll < 0:
		idleAll = 0 // http.Transport: no limit
	}
	dial := dialContext
	if o.ReadIdleTimeout > 0 || o.Conns != nil {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if o.Conns != nil {
				c = o.Conns.track(c)
			}
			if o.ReadIdleTimeout > 0 {
				c = &idleConn{Conn: c, idle: o.ReadIdleTimeout}
			}
			return c, nil
		}
	}
	return &http.Transport{
		Proxy:       proxy,
		DialContext: dial,
		// Resumed TLS sessions: a new connection to a host seen before
		// skips the certificate chain's transfer and verification, and
		// with TLS 1.2 a round trip. The cache is keyed by server name,
		// and Go checks a resumed session's certificate against the host
		// name and its expiry again.
		TLSClientConfig:        &tls.Config{ClientSessionCache: tls.NewLRUClientSessionCache(TLSSessions)},
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           idleAll,
		MaxIdleConnsPerHost:    idle,
		MaxConnsPerHost:        o.MaxConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		ResponseHeaderTimeout:  o.ResponseHeaderTimeout,
		MaxResponseHeaderBytes: o.MaxResponseHeaderBytes,
	}
}

// idleConn keeps its read deadline ahead of every Read, so that only a
// peer that stays silent fails a read: silent for at least idle from
// the start of a Read, at most 1.5 × idle. The deadline is moved only
// when less than idle is left, to 1.5 × idle ahead: one SetReadDeadline
// (the poller's lock and a timer update) per idle/2 of traffic, not per
// Read. Writes do not move it: on an HTTP/2 connection a partner that
// answers nothing would otherwise be kept, with its stalled streams, for
// as long as new requests are written to it. It is per connection, not
// per request: nothing is allocated on the hot path. Reads come from
// one goroutine (the transport's reader).
type idleConn struct {
	net.Conn
	idle time.Duration
	// until is the read deadline set last.
	until time.Time
}

func (c *idleConn) Read(p []byte) (int, error) {
	now := time.Now()
	if c.until.Sub(now) < c.idle {
		c.until = now.Add(c.idle + c.idle/2)
		if err := c.Conn.SetReadDeadline(c.until); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(p)
}

// NewGuardedTransport is NewTransport with Guard, its connections kept
// in two pools (egress.Pools): one for organizations allowed private
// addresses (chosen by the request's context, egress.AllowPrivate, or
// by the caller, Pools.For), which refuses nothing, and one for the
// others. The guard runs when a connection is dialled, so one shared
// pool would hand a connection an allowed organization opened to a
// private address to an organization that is not allowed one.
func NewGuardedTransport(o TransportOptions) egress.Pools {
	o.Guard = true
	private := o
	private.Private = true
	return egress.Pools{Public: NewTransport(o), Private: NewTransport(private)}
}

// ConnStats counts the connections one or more transports opened
// (TransportOptions.Conns), and how many of them are still open: idle
// keep-alive connections included. Opened climbing with the request rate
// means connections are not reused: more hosts are in use than
// MaxIdleConns keeps connections for, or the hosts close them. Safe for
// concurrent use.
type ConnStats struct {
	opened, closed atomic.Int64
}

// Opened is how many connections were opened.
func (s *ConnStats) Opened() int64 { return s.opened.Load() }

// Open is how many of them are not closed yet.
func (s *ConnStats) Open() int64 { return s.opened.Load() - s.closed.Load() }

// track counts c as opened, and as closed at its first Close.
func (s *ConnStats) track(c net.Conn) net.Conn {
	s.opened.Add(1)
	return &trackedConn{Conn: c, stats: s}
}

// trackedConn is a connection ConnStats counts.
type trackedConn struct {
	net.Conn
	stats  *ConnStats
	closed atomic.Bool
}

func (c *trackedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.stats.closed.Add(1)
	}
	return c.Conn.Close()
}
