// Package setup builds what the benchmark's processes are started with:
// a self-signed signing certificate and key, cqgate's and nginx's
// configuration files, and the bare reverse proxy baseline. The
// command-line benchmark (bench/cmd/benchrun) and the in-process profiling
// harness (bench/gatewaybench) share them, so both measure the same setup.
package setup
