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
//
// BenchmarkHandler measures the same gateway handler without any socket:
// every outbound call (directory, metadata, token, FHIR read) is answered
// by the benchmark upstream's handler in memory, and one request and
// ResponseWriter are served again and again, so its allocations per
// request are cqgate's own plus the stub's (BenchmarkHandler/stub-only):
//
//	go test -run=NONE -bench=Handler -benchmem -memprofile mem.prof -memprofilerate=1 ./bench/gatewaybench
//	go tool pprof -sample_index=alloc_objects -top bench/gatewaybench/gatewaybench.test mem.prof
package gatewaybench
