package connlimit

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Config says how many connections a Listener hands out.
type Config struct {
	// Max is how many connections are open at once; it must be more
	// than 0.
	Max int
	// Observer counts the idle connections closed to make room; nil
	// counts none.
	Observer Observer
}

// Observer counts idle connections closed to admit a new one;
// *metrics.Metrics is one.
type Observer interface {
	IdleConnClosed()
}

// Listener is a net.Listener that hands out at most Config.Max
// connections at a time. Accept is meant for one serving loop.
type Listener struct {
	net.Listener
	obs   Observer
	slots chan struct{} // one token per open connection
	done  chan struct{} // closed by Close
	once  sync.Once

	// waiting is set while Accept holds a connection and waits for room;
	// wake tells it that a connection went idle.
	waiting atomic.Bool
	wake    chan struct{}

	mu   sync.Mutex
	idle idleList // idle connections, the longest idle first
}

// New returns a Listener that hands out at most cfg.Max of ln's
// connections at a time. It panics if cfg.Max is not more than 0, which
// config validation rules out.
func New(ln net.Listener, cfg Config) *Listener {
	if cfg.Max <= 0 {
		panic("connlimit: Config.Max must be more than 0")
	}
	return &Listener{
		Listener: ln,
		obs:      cfg.Observer,
		slots:    make(chan struct{}, cfg.Max),
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
}

// Accept waits for the next connection and returns it once it may be
// served: at once below Max, else after closing the connection idle the
// longest, or after one closes.
func (l *Listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
		return &conn{Conn: nc, l: l}, nil
	default:
	}
	l.waiting.Store(true)
	defer l.waiting.Store(false)
	for {
		if victim := l.popIdle(); victim != nil {
			_ = victim.Close() // gives its slot back
			if l.obs != nil {
				l.obs.IdleConnClosed()
			}
		}
		select {
		case l.slots <- struct{}{}:
			return &conn{Conn: nc, l: l}, nil
		case <-l.wake:
		case <-l.done:
			_ = nc.Close()
			return nil, net.ErrClosed
		}
	}
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
		l.idle.remove(c)
		l.mu.Unlock()
	}
}

// popIdle takes the connection idle the longest off the idle list.
func (l *Listener) popIdle() *conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.idle.head
	l.idle.remove(c)
	return c
}

// conn is a connection handed out by a Listener; closing it gives its
// slot back, once.
type conn struct {
	net.Conn
	l *Listener

	// Guarded by l.mu.
	closed     bool
	idle       bool
	prev, next *conn
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	first := !c.closed
	c.closed = true
	c.l.idle.remove(c)
	c.l.mu.Unlock()
	if first {
		<-c.l.slots
	}
	return err
}

// idleList is an intrusive doubly linked list of idle connections, the
// oldest at head; it allocates nothing.
type idleList struct{ head, tail *conn }

func (q *idleList) pushBack(c *conn) {
	if c.idle {
		return
	}
	c.idle, c.prev, c.next = true, q.tail, nil
	if q.tail != nil {
		q.tail.next = c
	} else {
		q.head = c
	}
	q.tail = c
}

// remove takes c off the list; it does nothing for nil or a connection
// that is not on it.
func (q *idleList) remove(c *conn) {
	if c == nil || !c.idle {
		return
	}
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
	c.idle, c.prev, c.next = false, nil, nil
}
