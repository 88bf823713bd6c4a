package connlimit

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

type countingObserver struct{ idle, noRequest atomic.Int64 }

func (o *countingObserver) ConnClosedForRoom(idle bool) {
	if idle {
		o.idle.Add(1)
	} else {
		o.noRequest.Add(1)
	}
}

// server serves "ok" through a Listener with max connections on
// loopback, plain or over TLS.
type server struct {
	l    *Listener
	srv  *http.Server
	addr string
	tls  *tls.Config // the client's, when the server speaks TLS
	obs  *countingObserver
}

func newServer(t *testing.T, max int, useTLS bool) *server {
	t.Helper()
	return newServerWith(t, Config{Max: max}, useTLS)
}

func newServerWith(t *testing.T, cfg Config, useTLS bool) *server {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	obs := &countingObserver{}
	cfg.Observer = obs
	s := &server{l: New(raw, cfg), addr: raw.Addr().String(), obs: obs}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}),
		ConnState:         s.l.ConnState,
		ReadHeaderTimeout: 10 * time.Second,
	}
	var ln net.Listener = s.l
	if useTLS {
		ts := httptest.NewTLSServer(http.NotFoundHandler()) // only for its certificate
		cert := ts.TLS.Certificates[0]
		s.tls = &tls.Config{RootCAs: ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"}
		ts.Close()
		ln = tls.NewListener(s.l, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close(); <-done })
	return s
}

// client is one raw keep-alive connection to the server.
type client struct {
	net.Conn
	r *bufio.Reader
}

func (s *server) dial(t *testing.T) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.tls != nil {
		c = tls.Client(c, s.tls)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{Conn: c, r: bufio.NewReader(c)}
}

// get sends one keep-alive request and reads its answer.
func (c *client) get(t *testing.T) error {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Fatalf("answer %d %q, want 200 ok", res.StatusCode, body)
	}
	return nil
}

// closedByServer reports whether the server closed c: a read ends at
// once with EOF (or a reset) rather than timing out.
func (c *client) closedByServer(t *testing.T, wait time.Duration) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestAtTheCapTheLongestIdleConnectionMakesRoom(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			s := newServer(t, 2, useTLS)
			older, newer := s.dial(t), s.dial(t)
			// older goes idle first: the server reports a connection idle
			// after the client has its answer, so wait for each report
			// before the next request (else the two can swap, as they did
			// on a loaded CI machine).
			for i, c := range []*client{older, newer} {
				if err := c.get(t); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the connection to go idle", func() bool { return s.idleCount() == i+1 })
			}

			s.newcomerMakesRoom(t, older, newer, 1, 0)
			if n := s.l.Open(); n != 2 {
				t.Errorf("Open() = %d, want 2", n)
			}
		})
	}
}

// newcomerMakesRoom has a new connection served at the cap and checks
// that victim was closed for it while kept was not and still serves, and
// that the observer counted idle and noRequest closes.
func (s *server) newcomerMakesRoom(t *testing.T, victim, kept *client, idle, noRequest int64) {
	t.Helper()
	if err := s.dial(t).get(t); err != nil {
		t.Fatalf("newcomer at the cap: %v", err)
	}
	if !victim.closedByServer(t, 2*time.Second) {
		t.Error("the connection that should make room was not closed")
	}
	if kept.closedByServer(t, 100*time.Millisecond) {
		t.Error("the connection that should be kept was closed too")
	}
	if err := kept.get(t); err != nil {
		t.Errorf("the kept connection no longer serves: %v", err)
	}
	if n, m := s.obs.idle.Load(), s.obs.noRequest.Load(); n != idle || m != noRequest {
		t.Errorf("observer counted %d idle and %d fresh connections closed, want %d and %d", n, m, idle, noRequest)
	}
}

func (s *server) idleCount() int {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	return s.l.idle.len()
}

func (q *connList) len() int {
	n := 0
	for c := q.head; c != nil; c = c.next {
		n++
	}
	return n
}

// A connection that has not sent a complete first request within Grace
// (a stalled caller, or slow headers) is closed for a newcomer, so that
// such connections cannot keep every caller out; the one with a request
// underway since less than Grace is kept.
func TestAStalledConnectionIsClosedForRoomAfterItsGrace(t *testing.T) {
	s := newServerWith(t, Config{Max: 2, Grace: 300 * time.Millisecond}, false)
	stalled := s.dial(t)
	waitFor(t, "the stalled connection to be handed out", func() bool { return s.l.Open() == 1 })
	_, _ = io.WriteString(stalled, "GET / HTTP/1.1\r\nHost: x\r\n") // headers never finished
	time.Sleep(400 * time.Millisecond)
	young := s.dial(t)
	waitFor(t, "the young connection to be handed out", func() bool { return s.l.Open() == 2 })

	start := time.Now()
	s.newcomerMakesRoom(t, stalled, young, 0, 1)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the newcomer waited %s", d)
	}
}

// With every connection fresh and within its grace, a newcomer waits
// until the oldest is past it, then gets its slot.
func TestANewcomerWaitsForTheOldestGraceToRunOut(t *testing.T) {
	s := newServerWith(t, Config{Max: 1, Grace: 300 * time.Millisecond}, false)
	first := s.dial(t)
	waitFor(t, "the first connection to be handed out", func() bool { return s.l.Open() == 1 })
	start := time.Now()
	second := s.dial(t)
	if err := second.get(t); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("the newcomer was served after %s, before the first connection's grace ran out", d)
	}
	if !first.closedByServer(t, 2*time.Second) {
		t.Error("the first connection, past its grace, was not closed for room")
	}
}

func TestAConnectionWithoutARequestIsNotClosedForRoomWithinItsGrace(t *testing.T) {
	s := newServerWith(t, Config{Max: 1, Grace: time.Minute}, false)
	first := s.dial(t) // accepted, has sent nothing: not idle
	waitFor(t, "the first connection to be handed out", func() bool { return s.l.Open() == 1 })

	second := s.dial(t)
	answered := make(chan error, 1)
	go func() { answered <- second.get(t) }()
	select {
	case err := <-answered:
		t.Fatalf("the second connection was served while the first held the only slot (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	// The first one still works: it was not closed for room.
	if err := first.get(t); err != nil {
		t.Fatalf("the first connection was closed for room: %v", err)
	}
	// Now it is idle, so the waiting one gets its slot.
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("second connection: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting connection was not served once the first went idle")
	}
	if !first.closedByServer(t, 2*time.Second) {
		t.Error("the idle first connection was not closed to make room")
	}
}

func TestAWaitingConnectionIsServedWhenOneCloses(t *testing.T) {
	s := newServer(t, 1, false)
	first := s.dial(t)
	waitFor(t, "the first connection to be handed out", func() bool { return s.l.Open() == 1 })
	second := s.dial(t)
	answered := make(chan error, 1)
	go func() { answered <- second.get(t) }()
	time.Sleep(50 * time.Millisecond)
	_ = first.Close() // the caller hangs up before sending anything
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting connection was not served after the other closed")
	}
	if n, m := s.obs.idle.Load(), s.obs.noRequest.Load(); n != 0 || m != 0 {
		t.Errorf("observer counted %d idle and %d fresh connections closed, want none", n, m)
	}
}

func TestCloseEndsAnAcceptWaitingForRoom(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, Config{Max: 1})
	held := make(chan net.Conn, 1)
	go func() {
		c, _ := net.Dial("tcp", raw.Addr().String())
		held <- c
		c2, _ := net.Dial("tcp", raw.Addr().String())
		held <- c2
	}()
	first, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	defer func() {
		for range 2 {
			if c := <-held; c != nil {
				c.Close()
			}
		}
	}()
	errc := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	_ = l.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waits after Close")
	}
}

func TestClosingTwiceGivesOneSlotBack(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, Config{Max: 2})
	defer l.Close()
	var peers []net.Conn
	defer func() {
		for _, p := range peers {
			p.Close()
		}
	}()
	var got []net.Conn
	for range 2 {
		p, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p)
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	if n := l.Open(); n != 2 {
		t.Fatalf("Open() = %d, want 2", n)
	}
	_ = got[0].Close()
	_ = got[0].Close()
	if n := l.Open(); n != 1 {
		t.Fatalf("Open() after closing one connection twice = %d, want 1", n)
	}
	l.ConnState(got[0], http.StateIdle) // a late report for a closed connection
	if n := l.idle.len(); n != 0 {
		t.Error("a closed connection was put on the idle list")
	}
	if n := l.fresh.len(); n != 1 {
		t.Errorf("%d fresh connections listed, want the one still open", n)
	}
	_ = got[1].Close()
}

func TestConnStateIgnoresOtherConnections(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, Config{Max: 1})
	defer l.Close()
	other := New(raw, Config{Max: 1})
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	for _, c := range []net.Conn{a, &conn{Conn: b, l: other}} {
		l.ConnState(c, http.StateIdle)
	}
	if n := l.idle.len(); n != 0 {
		t.Error("a connection that is not the Listener's was put on its idle list")
	}
}

func TestConnListKeepsOrder(t *testing.T) {
	var q, other connList
	cs := make([]*conn, 4)
	for i := range cs {
		cs[i] = &conn{}
		q.pushBack(cs[i])
	}
	q.pushBack(cs[0])     // already on it: no change
	other.pushBack(cs[1]) // on another list: no change
	q.remove(cs[2])
	q.remove(cs[2])
	q.remove(nil)
	var order []int
	for c := q.head; c != nil; c = c.next {
		for i := range cs {
			if cs[i] == c {
				order = append(order, i)
			}
		}
	}
	if want := []int{0, 1, 3}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if q.tail != cs[3] || other.head != nil {
		t.Error("tail is not the last pushed connection, or the other list got one")
	}
	other.remove(cs[3]) // removes from the list it is on
	if q.tail != cs[1] || cs[3].list != nil {
		t.Error("remove through another list did not take it off its own")
	}
}

func TestNewRefusesNoCap(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New with Max 0 did not panic")
		}
	}()
	New(nil, Config{})
}

// HTTP/2 connections report idle once their last stream ends, so they
// make room like HTTP/1.1 keep-alive ones; a client whose connection was
// closed dials again.
func TestHTTP2ConnectionsMakeRoomWhenIdle(t *testing.T) {
	s := newServer(t, 2, true)
	clients := make([]*http.Client, 3)
	for i := range clients {
		tr := &http.Transport{TLSClientConfig: s.tls.Clone(), ForceAttemptHTTP2: true}
		clients[i] = &http.Client{Transport: tr, Timeout: 5 * time.Second}
		defer tr.CloseIdleConnections()
	}
	get := func(c *http.Client) {
		t.Helper()
		resp, err := c.Get("https://" + s.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "ok" || resp.ProtoMajor != 2 {
			t.Fatalf("answer %s %d %q, want HTTP/2 200 ok", resp.Proto, resp.StatusCode, body)
		}
	}
	get(clients[0])
	get(clients[1])
	waitFor(t, "two idle HTTP/2 connections", func() bool { return s.idleCount() == 2 })
	get(clients[2])
	if n := s.obs.idle.Load(); n != 1 {
		t.Errorf("observer counted %d idle connections closed, want 1", n)
	}
	get(clients[0]) // its connection was closed: it dials again
	if n := s.l.Open(); n > 2 {
		t.Errorf("Open() = %d, above the cap", n)
	}
}
