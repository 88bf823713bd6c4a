// Package loopback keeps the benchmark tools on this machine: every address
// they listen on or send traffic to must be in 127.0.0.0/8, ::1, or the
// name localhost. A target anywhere else is refused before any connection
// is made.
package loopback
