// Package gatewaybench runs cqgate's HTTP handler in-process, built by
// gateway.New exactly as cmd/cqgate builds it, behind a real loopback HTTP
// server and in front of the benchmark upstream (bench/internal/fhirstub),
// so that `go test -bench -cpuprofile` can show where cqgate spends its
// CPU under load. It has no non-test code.
//
// Every goroutine that serves the gateway (its HTTP server, the proxy's
// outbound connections, token exchanges) carries the pprof label
// role=gateway; the upstream and the load generator's do not. So
//
//	go test -run=NONE -bench=Gateway -benchtime=10s -cpuprofile cpu.prof ./bench/gatewaybench
//	go tool pprof -top -tagfocus=role=gateway bench/gatewaybench/gatewaybench.test cpu.prof
//
// shows cqgate's own share. BenchmarkBareProxy and BenchmarkDirect run
// the same load through the bare reverse proxy baseline and straight to
// the upstream, for comparison in the same process.
package gatewaybench
