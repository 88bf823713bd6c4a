package load

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/cqgate/cqgate/bench/internal/loopback"
)

// maxBody bounds one response body; a larger one is an error.
const maxBody = 16 << 20

// Request is a GET prepared for sending on raw connections.
type Request struct {
	addr string // host:port to dial
	raw  []byte // the request line and headers
}

// NewRequest prepares a GET of rawURL with the extra header fields. The
// URL must be http and on loopback.
func NewRequest(rawURL string, header http.Header) (*Request, error) {
	u, err := loopback.CheckURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	var b strings.Builder
	b.WriteString("GET ")
	b.WriteString(u.RequestURI())
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(u.Host)
	b.WriteString("\r\nUser-Agent: cqgate-bench\r\n")
	for k, vs := range header {
		if strings.ContainsAny(k, "\r\n:") {
			return nil, fmt.Errorf("load: malformed header name %q", k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				return nil, fmt.Errorf("load: header %s has a line break", k)
			}
			b.WriteString(http.CanonicalHeaderKey(k))
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	return &Request{addr: addr, raw: []byte(b.String())}, nil
}

// Conn sends a Request repeatedly over one keep-alive connection,
// reconnecting after an error or a "Connection: close". It is not safe
// for concurrent use; use one per goroutine.
type Conn struct {
	req  *Request
	conn net.Conn
	br   *bufio.Reader
}

// NewConn returns a Conn for req; it connects on first use or Dial.
func NewConn(req *Request) *Conn { return &Conn{req: req} }

// Dial connects now, if not connected yet.
func (c *Conn) Dial(deadline time.Time) error {
	if c.conn != nil {
		return nil
	}
	d := net.Dialer{Deadline: deadline}
	conn, err := d.Dial("tcp", c.req.addr)
	if err != nil {
		return fmt.Errorf("load: dial %s: %w", c.req.addr, err)
	}
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

// Do sends the request and reads the whole response before deadline,
// returning its status code.
func (c *Conn) Do(deadline time.Time) (int, error) { return c.Send(c.req, deadline) }

// Send is Do with another request to the same address.
func (c *Conn) Send(req *Request, deadline time.Time) (int, error) {
	if req.addr != c.req.addr {
		return 0, fmt.Errorf("load: %s is not on this connection's %s", req.addr, c.req.addr)
	}
	if err := c.Dial(deadline); err != nil {
		return 0, err
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		c.Close()
		return 0, fmt.Errorf("load: %w", err)
	}
	if _, err := c.conn.Write(req.raw); err != nil {
		c.Close()
		return 0, fmt.Errorf("load: write: %w", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.Close()
		return 0, fmt.Errorf("load: read response: %w", err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody+1))
	resp.Body.Close()
	switch {
	case err != nil:
		c.Close()
		return 0, fmt.Errorf("load: read body: %w", err)
	case n > maxBody:
		c.Close()
		return 0, errors.New("load: response body too large")
	case resp.Close:
		c.Close()
	}
	return resp.StatusCode, nil
}

// Close closes the connection; the next Do reconnects.
func (c *Conn) Close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}
