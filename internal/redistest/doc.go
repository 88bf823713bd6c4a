// Package redistest runs a real redis-server (Debian's redis-server
// package, or Valkey's binary of the same name) for tests, on a free
// loopback port, without persistence:
//
//	srv := redistest.Start(t)          // PING answered; stopped in t.Cleanup
//	opts := &redis.Options{Addr: srv.Addr()}
//	srv.Kill()                         // SIGKILL: clients see connection errors
//	srv.Restart()                      // same port, empty data set
//	srv.Freeze(); srv.Thaw()           // SIGSTOP/SIGCONT: a slow or hung server
//
// The server runs with --save "" --appendonly no --bind 127.0.0.1, so
// nothing is written to disk and nothing listens beyond loopback.
//
// When no redis-server is installed, Start skips the test with the install
// hint, except when the environment variable CI is "true": there a missing
// server fails the test, so CI never passes by skipping the Redis tests.
package redistest
