package connlimit

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultGrace is Config.Grace when it is zero.
const DefaultGrace = time.Second

// Config says how many connections a Listener hands out.
type Config struct {
	// Max is how many connections are open at once; it must be more
	// than 0.
	Max int
	// Grace is how long a connection may go without a complete first
	// request before it may be closed for room; 0 means DefaultGrace.
	// Callers send their request as soon as they connect, so a
	// connection still without one after Grace is stalled or hostile
	// (slow headers), and must not keep the callers behind it out.
	Grace time.Duration
	// Observer counts the connections closed to make room; nil counts
	// none.
	Observer Observer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Observer counts connections closed to admit a new one; *metrics.Metrics
// is one. idle is true for a keep-alive connection between requests,
// false for one that had not sent a complete first request within
// Config.Grace.
type Observer interface {
	ConnClosedForRoom(idle bool)
}

// Listener is a net.Listener that hands out at most Config.Max
// connections at a time. Accept is meant for one serving loop.
type Listener struct {
	net.Listener
	obs   Observer
	grace time.Duration
	now   func() time.Time
	slots chan struct{} // one token per open connection
	done  chan struct{} // closed by Close
	once  sync.Once

	// waiting is set while Accept holds a connection and waits for room;
	// wake tells it that a connection went idle.
	waiting atomic.Bool
	wake    chan struct{}

	mu    sync.Mutex
	idle  connList // idle between requests, the longest idle first
	fresh connList // without a complete first request yet, oldest first
}

// New returns a Listener that hands out at most cfg.Max of ln's
// connections at a time. It panics if cfg.Max is not more than 0, which
// config validation rules out.
func New(ln net.Listener, cfg Config) *Listener {
	if cfg.Max <= 0 {
		panic("connlimit: Config.Max must be more than 0")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Listener{
		Listener: ln,
		obs:      cfg.Observer,
		grace:    cfg.Grace,
		now:      cfg.Now,
		slots:    make(chan struct{}, cfg.Max),
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
}

// Accept waits for the next connection and returns it once it may be
// served: at once below Max; else after closing the connection idle the
// longest or, with none idle, the oldest one still without a complete
// first request after Grace; else when one closes.
func (l *Listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
		return l.handOut(nc), nil
	default:
	}
	l.waiting.Store(true)
	defer l.waiting.Store(false)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		victim, idle, wait := l.pickVictim()
		var expired <-chan time.Time
		if victim != nil {
			_ = victim.Close() // gives its slot back
			if l.obs != nil {
				l.obs.ConnClosedForRoom(idle)
			}
		} else if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			expired = timer.C
		}
		select {
		case l.slots <- struct{}{}:
			return l.handOut(nc), nil
		case <-l.wake:
		case <-expired:
		case <-l.done:
			_ = nc.Close()
			return nil, net.ErrClosed
		}
	}
}

// handOut wraps a connection that got a slot; it is fresh until the
// server reports it active or idle.
func (l *Listener) handOut(nc net.Conn) *conn {
	c := &conn{Conn: nc, l: l, since: l.now()}
	l.mu.Lock()
	l.fresh.pushBack(c)
	l.mu.Unlock()
	return c
}

// pickVictim takes the connection to close for room off its list: the
// longest idle, else the oldest fresh one past its grace. With neither,
// wait is how long until the oldest fresh one is past it (0: none).
func (l *Listener) pickVictim() (victim *conn, idle bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.idle.head; c != nil {
		l.idle.remove(c)
		return c, true, 0
	}
	c := l.fresh.head
	if c == nil {
		return nil, false, 0
	}
	if age := l.now().Sub(c.since); age < l.grace {
		return nil, false, l.grace - age
	}
	l.fresh.remove(c)
	return c, false, 0
}

// Close stops accepting: an Accept waiting for room returns
// net.ErrClosed. Connections already handed out stay open.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Open is how many connections are handed out and not yet closed.
func (l *Listener) Open() int { return len(l.slots) }

// ConnState is the http.Server's ConnState hook: it tells the Listener
// which connections are idle between requests. Connections that are not
// the Listener's (or a TLS connection over one) are ignored.
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = u.NetConn()
	}
	c, ok := nc.(*conn)
	if !ok || c.l != l {
		return
	}
	switch state {
	case http.StateIdle:
		l.mu.Lock()
		if !c.closed {
			c.list.remove(c)
			l.idle.pushBack(c)
		}
		l.mu.Unlock()
		if l.waiting.Load() {
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
	case http.StateActive, http.StateHijacked, http.StateClosed:
		l.mu.Lock()
		c.list.remove(c)
		l.mu.Unlock()
	}
}

// conn is a connection handed out by a Listener; closing it gives its
// slot back, once.
type conn struct {
	net.Conn
	l     *Listener
	since time.Time // handed out at

	// Guarded by l.mu.
	closed     bool
	list       *connList // the list it is on, nil for none
	prev, next *conn
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	first := !c.closed
	c.closed = true
	c.list.remove(c)
	c.l.mu.Unlock()
	if first {
		<-c.l.slots
	}
	return err
}

// connList is an intrusive doubly linked list of connections, the
// oldest at head; a connection is on one list at most. It allocates
// nothing.
type connList struct{ head, tail *conn }

// pushBack appends c, which must be on no list.
func (q *connList) pushBack(c *conn) {
	if c.list != nil {
		return
	}
	c.list, c.prev, c.next = q, q.tail, nil
	if q.tail != nil {
		q.tail.next = c
	} else {
		q.head = c
	}
	q.tail = c
}

// remove takes c off the list it is on; it does nothing for a connection
// on no list. It may be called on a nil list.
func (q *connList) remove(c *conn) {
	if c == nil || c.list == nil {
		return
	}
	q = c.list
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		q.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		q.tail = c.prev
	}
	c.list, c.prev, c.next = nil, nil, nil
}
