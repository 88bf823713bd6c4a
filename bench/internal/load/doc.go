// Package load is a small closed-loop HTTP/1.1 load generator for the
// benchmark, used where wrk is not installed, for the cold-start burst
// (many concurrent first requests released at once), and by the in-process
// profiling harness.
//
// Each connection sends the same GET again and again on one keep-alive TCP
// connection and waits for the whole answer before the next request, as
// wrk does. Every latency is kept and the percentiles are computed by
// sorting them, so they are exact rather than bucketed. Runs are bounded:
// at most MaxConnections connections, MaxDuration long, MaxSamples
// latencies kept, and only loopback targets.
package load
