// Package connlimit caps how many connections a server holds open at
// once, as nginx's worker_connections does, so that a flood of
// connections costs a bounded amount of memory: every connection
// net/http serves holds a goroutine and its read and write buffers
// (about 21 KiB) for as long as it is open, idle keep-alive ones
// included.
//
// A Listener hands out at most Max connections at a time. When all of
// them are taken and a new connection arrives, it makes room by closing
// the connection that has been idle the longest (a keep-alive connection
// between requests, as net/http's ConnState reports it), or, with none
// idle, the oldest connection that has not sent a complete first request
// within Config.Grace (1 s): callers send their request as soon as they
// connect, so such a connection is stalled or hostile (slow headers),
// and must not keep the callers behind it out. Otherwise it waits until
// a connection closes or the oldest grace runs out. The connections
// beyond Max wait in the kernel's accept queue, where they cost cqgate
// nothing; the one Accept holds costs a file descriptor.
//
// Closing an idle keep-alive connection is allowed by HTTP/1.1 at any
// time (RFC 9112, section 9.6); a request the caller sends at the same
// instant is lost with the connection, and HTTP clients retry it when it
// is idempotent, as they do when a server's idle timeout fires.
//
// The Listener must be the one under TLS (tls.NewListener wraps it), and
// the http.Server's ConnState must call Listener.ConnState:
//
//	capped := connlimit.New(ln, connlimit.Config{Max: 512})
//	srv := &http.Server{Handler: h, ConnState: capped.ConnState}
//	srv.Serve(tls.NewListener(capped, tlsConfig))
package connlimit
